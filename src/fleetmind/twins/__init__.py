"""Device twins: desired (hub to device) and reported (device to hub) documents with versions."""
