"""Devices: the registry, their credentials, the topic ACL and connectivity."""
