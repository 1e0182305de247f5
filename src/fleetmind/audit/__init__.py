"""The audit log: every security-relevant event, who did it, from where, and how it ended."""
