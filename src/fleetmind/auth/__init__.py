"""Who may use the hub's API: bearer tokens, stored hashed."""
