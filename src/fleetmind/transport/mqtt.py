"""The MQTT connections FleetMind needs, as protocols.

An agent holds one :class:`MqttClient` at a time, made for each connection attempt by a
:class:`Connector`: :class:`~fleetmind.transport.paho_client.PahoClient` over the network, or a
:class:`~fleetmind.transport.loopback.LoopbackBroker`'s clients in unit tests of other domains.
The hub takes the whole uplink through a :class:`Subscriber`:
:class:`~fleetmind.transport.subscriber.BatchSubscriber` over the network, or the loopback's.
"""

import asyncio
import ssl
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True, slots=True)
class Will:
    """The message the broker publishes when a client vanishes without saying goodbye
    (QoS 1; retained, as an agent's offline status is)."""

    topic: str
    payload: bytes
    retain: bool = True


@dataclass(frozen=True, slots=True)
class Received:
    topic: str
    payload: bytes
    mid: int
    qos: int
    #: a retained message the broker replays at subscription (not a live one)
    retain: bool = False
    #: the connection it came on: an acknowledgement is only valid on that connection
    connection: int = 0


class MqttClient(Protocol):
    """One connection. ``publish`` returns when the broker acknowledged (QoS 1) and raises
    :class:`~fleetmind.transport.errors.TransportError` when the connection drops first."""

    #: set once the connection is gone
    closed: asyncio.Event
    #: called with (topic, payload) for every message received
    on_message: Callable[[str, bytes], None] | None

    async def connect(self, host: str, port: int, *, keepalive: int = 30) -> None: ...

    async def publish(
        self, topic: str, payload: bytes, *, qos: int = 1, retain: bool = False
    ) -> None: ...

    async def subscribe(self, topic_filter: str, qos: int = 1) -> None: ...

    async def disconnect(self) -> None:
        """Say goodbye: the broker does not publish the will."""
        ...

    def abort(self) -> None:
        """Drop the connection: the broker publishes the will."""
        ...


class Connector(Protocol):
    """Makes the client of one connection attempt."""

    def __call__(
        self,
        *,
        client_id: str,
        username: str,
        password: str,
        will: Will | None = None,
        tls: ssl.SSLContext | None = None,
        max_inflight: int = 100,
    ) -> MqttClient: ...


class Subscriber(Protocol):
    """The hub's connection: every uplink message goes to its handler in batches, and is
    acknowledged once the handler returned (a handler that raises acknowledges nothing)."""

    @property
    def connected(self) -> bool: ...

    @property
    def healthy(self) -> bool:
        """Connected, and the last batch was taken."""
        ...

    def start(self, timeout: float = 15.0) -> None: ...

    def stop(self) -> None: ...

    def publish(self, topic: str, payload: bytes, retain: bool = False, qos: int = 1) -> None:
        """To devices (QoS 1 unless said); ConnectionError when the broker is away."""
        ...
