"""The edge agent: sensors, pipeline, outbox and uplink in one asyncio TaskGroup."""
