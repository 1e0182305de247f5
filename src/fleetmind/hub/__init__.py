"""The hub: assembles the domains into one server (API, dashboard, ingest, broker)."""
