"""FleetMind: a self-hosted AIoT platform (hub, embedded broker, edge agent, simulator)."""

__version__ = "0.1.0"
