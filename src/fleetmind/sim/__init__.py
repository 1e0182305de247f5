"""The fleet simulator: many real agents in one process against a real hub."""
