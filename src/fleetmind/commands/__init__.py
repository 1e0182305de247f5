"""Commands: hub-to-device requests with an id, a timeout and a result."""
