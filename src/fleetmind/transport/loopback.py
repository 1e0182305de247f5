"""An in-memory broker for unit tests of other domains: no socket, no thread, no timing.

Its clients implement :class:`~fleetmind.transport.mqtt.MqttClient` (made by
:meth:`LoopbackBroker.connector`), its subscribers :class:`~fleetmind.transport.mqtt.Subscriber`.
It keeps what matters to the code above it: topic filters with ``+`` and ``#``, retained
messages, wills published when a client vanishes and not when it says goodbye, a broker that
goes down and comes back, and FleetMind's contract that a device's QoS 1 publish is
acknowledged only once the hub's handler took it (a handler that raises refuses it: the
publisher sees the connection drop, as it would). It enforces no ACL: the brokers' own tests do.

    >>> broker = LoopbackBroker()
    >>> taken = []
    >>> hub = broker.subscriber("fm/v1/d/+/up/#", taken.extend)
    >>> async def device() -> None:
    ...     client = broker.connector(client_id="d1", username="d1", password="x")
    ...     await client.connect("loopback", 0)
    ...     await client.publish("fm/v1/d/d1/up/telemetry", b"pack")
    >>> asyncio.run(device())
    >>> [(m.topic, m.payload) for m in taken]
    [('fm/v1/d/d1/up/telemetry', b'pack')]
"""

import asyncio
import itertools
import ssl
from collections.abc import Callable
from dataclasses import dataclass, field

from fleetmind.transport.errors import TransportError
from fleetmind.transport.mqtt import Received, Will


def matches(topic: str, topic_filter: str) -> bool:
    """MQTT topic matching (``+`` one level, ``#`` the rest).

    >>> matches("a/b/c", "a/+/c"), matches("a/b/c", "a/#"), matches("a/b", "a/b/c")
    (True, True, False)
    """
    levels, wanted = topic.split("/"), topic_filter.split("/")
    for index, level in enumerate(wanted):
        if level == "#":
            return True
        if index >= len(levels) or level not in ("+", levels[index]):
            return False
    return len(levels) == len(wanted)


class LoopbackBroker:
    def __init__(self) -> None:
        self.up = True
        self.retained: dict[str, bytes] = {}
        self.clients: set[LoopbackClient] = set()
        self.subscribers: list[LoopbackSubscriber] = []
        self._mids = itertools.count(1)

    def connector(
        self,
        *,
        client_id: str,
        username: str,
        password: str,
        will: Will | None = None,
        tls: ssl.SSLContext | None = None,
        max_inflight: int = 100,
    ) -> "LoopbackClient":
        """A :class:`~fleetmind.transport.mqtt.Connector`: a client of this broker."""
        return LoopbackClient(self, client_id, will)

    def subscriber(
        self, topic_filter: str, handler: Callable[[list[Received]], None]
    ) -> "LoopbackSubscriber":
        """A hub connection, started: ``handler`` takes each message as a batch of one."""
        subscriber = LoopbackSubscriber(self, topic_filter, handler)
        subscriber.start()
        return subscriber

    def stop(self) -> None:
        """The broker goes away: every client loses its connection (their wills fire)."""
        self.up = False
        for client in list(self.clients):
            client.abort()

    def start(self) -> None:
        self.up = True

    def publish(self, topic: str, payload: bytes, *, retain: bool = False) -> None:
        """Route a message; raise TransportError if a hub handler refused it."""
        if retain:
            if payload:
                self.retained[topic] = payload
            else:
                self.retained.pop(topic, None)
        for subscriber in self.subscribers:
            if subscriber.running and matches(topic, subscriber.topic_filter):
                subscriber.take(Received(topic, payload, next(self._mids), 1))
        for client in list(self.clients):
            if any(matches(topic, wanted) for wanted in client.filters):
                client.deliver(topic, payload)


@dataclass(eq=False)
class LoopbackClient:
    broker: LoopbackBroker
    client_id: str
    will: Will | None
    filters: list[str] = field(default_factory=list)
    closed: asyncio.Event = field(default_factory=asyncio.Event)
    on_message: Callable[[str, bytes], None] | None = None

    async def connect(self, host: str, port: int, *, keepalive: int = 30) -> None:
        if not self.broker.up:
            raise TransportError(f"cannot reach broker {host}:{port}: the loopback is down")
        for other in list(self.broker.clients):  # one client id, one connection
            if other.client_id == self.client_id:
                other.will = None
                other.abort()
        self.closed.clear()
        self.broker.clients.add(self)

    async def publish(
        self, topic: str, payload: bytes, *, qos: int = 1, retain: bool = False
    ) -> None:
        if self.closed.is_set() or self not in self.broker.clients:
            raise TransportError("not connected")
        try:
            self.broker.publish(topic, payload, retain=retain)
        except TransportError:
            self.abort()
            raise

    async def subscribe(self, topic_filter: str, qos: int = 1) -> None:
        self.filters.append(topic_filter)
        for topic, payload in list(self.broker.retained.items()):
            if matches(topic, topic_filter):
                self.deliver(topic, payload)

    def deliver(self, topic: str, payload: bytes) -> None:
        if self.on_message is not None:
            asyncio.get_running_loop().call_soon(self.on_message, topic, payload)

    async def disconnect(self) -> None:
        self._leave()

    def abort(self) -> None:
        will = self.will
        if self._leave() and will is not None and self.broker.up:
            self.broker.publish(will.topic, will.payload, retain=will.retain)

    def _leave(self) -> bool:
        was_connected = self in self.broker.clients
        self.broker.clients.discard(self)
        self.closed.set()
        return was_connected


@dataclass(eq=False)
class LoopbackSubscriber:
    broker: LoopbackBroker
    topic_filter: str
    handler: Callable[[list[Received]], None]
    running: bool = False
    #: why the last message could not be taken (None: it was)
    failure: str | None = None
    published: list[tuple[str, bytes, bool]] = field(default_factory=list)

    @property
    def connected(self) -> bool:
        return self.running and self.broker.up

    @property
    def healthy(self) -> bool:
        return self.connected and self.failure is None

    def start(self, timeout: float = 15.0) -> None:
        if self not in self.broker.subscribers:
            self.broker.subscribers.append(self)
        self.running = True

    def stop(self) -> None:
        self.running = False

    def take(self, message: Received) -> None:
        try:
            self.handler([message])
        except Exception as exc:
            self.failure = f"{type(exc).__name__}: {exc}"
            raise TransportError(f"the hub could not take it: {exc}") from exc
        self.failure = None

    def publish(self, topic: str, payload: bytes, retain: bool = False, qos: int = 1) -> None:
        if not self.connected:
            raise TransportError("the loopback is down")
        self.published.append((topic, payload, retain))
        self.broker.publish(topic, payload, retain=retain)
