"""What the embedded broker lets clients do: the bounds on what they can make it hold, and
which topics may be published to and retained."""

from dataclasses import dataclass

from fleetmind.devices import model
from fleetmind.wire import topics


@dataclass(frozen=True, slots=True)
class BrokerLimits:
    """Bounds on what clients can make the broker hold."""

    max_connections: int = 10_000
    connect_timeout_s: float = 10.0
    max_packet_bytes: int = 256 * 1024
    #: QoS 1 messages a device may have waiting for their PUBACK
    max_held_per_connection: int = 1000
    #: messages in flight to one hub connection
    hub_inflight: int = 10_000
    #: bytes of uplink waiting for the hub (beyond: QoS 0 dropped, QoS 1 refused)
    max_queued_bytes: int = 256 * 1024**2


def is_uplink(topic: str) -> bool:
    """``fm/v1/d/{id}/up/...``: what devices send, for the hub."""
    parts = topic.split("/", 5)
    return len(parts) == 6 and parts[:3] == ["fm", "v1", "d"] and parts[4] == "up"


def valid_topic(topic: str) -> bool:
    """A topic a message may be published to: not empty, no wildcard, no ``$`` (MQTT 4.7)."""
    return bool(topic) and "#" not in topic and "+" not in topic and not topic.startswith("$")


def retains(username: str | None, topic: str) -> bool:
    """A device's uplink is retained only on its own ``up/status`` (its birth and last will):
    retained telemetry would be replayed to the hub at every subscription, and anything else a
    device retains would stay in the broker's memory."""
    if username == model.HUB_USERNAME or not is_uplink(topic):
        return True
    return username is not None and topic == topics.status(username)
