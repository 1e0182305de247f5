"""The MQTT seam: paho-mqtt clients for the hub (batching subscriber) and agents (asyncio)."""
