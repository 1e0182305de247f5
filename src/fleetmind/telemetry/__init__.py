"""Telemetry on the hub: columnar ingest, the TelemetryStore seam and its queries."""
