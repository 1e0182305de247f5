"""The contract of :class:`~fleetmind.transport.mqtt.MqttClient`, held by the paho client against
both brokers and by the loopback that unit tests of other domains use in their place."""

import asyncio
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import pytest
from brokers import Broker, running

from conftest import wait_until
from fleetmind.transport.errors import TransportError
from fleetmind.transport.loopback import LoopbackBroker
from fleetmind.transport.mqtt import Connector, MqttClient, Will
from fleetmind.transport.paho_client import PahoClient
from fleetmind.wire import topics

UP = "fm/v1/d/d1/up/telemetry"
DOWN = "fm/v1/d/d1/down/#"


class Hub(Protocol):
    """The other end: takes the uplink, publishes to devices."""

    def received(self) -> list[tuple[str, bytes]]: ...

    def publish(self, topic: str, payload: bytes, *, retain: bool = False) -> None: ...


class LoopbackHub:
    def __init__(self, loopback: LoopbackBroker) -> None:
        self.taken: list[tuple[str, bytes]] = []
        self.subscriber = loopback.subscriber(topics.UPLINK_FILTER, self._take)

    def _take(self, batch: list[object]) -> None:
        self.taken.extend((m.topic, m.payload) for m in batch)  # type: ignore[attr-defined]

    def received(self) -> list[tuple[str, bytes]]:
        return list(self.taken)

    def publish(self, topic: str, payload: bytes, *, retain: bool = False) -> None:
        self.subscriber.publish(topic, payload, retain)


class PahoHub:
    def __init__(self, broker: Broker) -> None:
        self.client = broker.hub()
        self.seen: list[tuple[str, bytes]] = []

    def received(self) -> list[tuple[str, bytes]]:
        self.seen.extend(self.client.drain_all())
        return list(self.seen)

    def publish(self, topic: str, payload: bytes, *, retain: bool = False) -> None:
        self.client.publish(topic, payload, retain=retain)


@dataclass
class Setup:
    connector: Connector
    port: int
    secret: str
    hub: Hub
    stop_broker: object


@pytest.fixture(params=["loopback", "amqtt", "mosquitto"])
def setup(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Setup]:
    if request.param == "loopback":
        loopback = LoopbackBroker()
        yield Setup(loopback.connector, 0, "secret", LoopbackHub(loopback), loopback.stop)
        return
    with running(request.param, tmp_path) as broker:
        yield Setup(PahoClient, broker.port, broker.secrets["d1"], PahoHub(broker), None)


def _client(setup: Setup, will: Will | None = None) -> MqttClient:
    return setup.connector(client_id="d1", username="d1", password=setup.secret, will=will)


async def _connected(setup: Setup, will: Will | None = None) -> tuple[MqttClient, list]:  # type: ignore[type-arg]
    client = _client(setup, will)
    received: list[tuple[str, bytes]] = []
    client.on_message = lambda topic, payload: received.append((topic, payload))
    await client.connect("127.0.0.1", setup.port)
    await client.subscribe(DOWN)
    await asyncio.sleep(0.2)  # the subscription is in place
    return client, received


def test_a_publish_returns_once_acknowledged_and_the_hub_has_it(setup: Setup) -> None:
    async def run() -> None:
        client, _ = await _connected(setup)
        await asyncio.gather(*(client.publish(UP, b"%d" % n) for n in range(50)))
        await client.disconnect()

    asyncio.run(run())
    wait_until(lambda: len(setup.hub.received()) >= 50)
    assert sorted(p for _, p in setup.hub.received()) == sorted(b"%d" % n for n in range(50))


def test_what_the_hub_sends_arrives_and_a_retained_message_waits(setup: Setup) -> None:
    setup.hub.publish("fm/v1/d/d1/down/desired", b"retained", retain=True)

    async def run() -> list[tuple[str, bytes]]:
        client, received = await _connected(setup)
        setup.hub.publish("fm/v1/d/d1/down/command", b"live")
        for _ in range(50):
            if len(received) >= 2:
                break
            await asyncio.sleep(0.1)
        await client.disconnect()
        return received

    received = asyncio.run(run())
    assert ("fm/v1/d/d1/down/desired", b"retained") in received
    assert ("fm/v1/d/d1/down/command", b"live") in received


def test_the_will_fires_on_abort_and_not_on_goodbye(setup: Setup) -> None:
    async def run() -> None:
        polite, _ = await _connected(setup, Will(topics.status("d1"), b"goodbye-will"))
        await polite.disconnect()
        await asyncio.sleep(0.3)
        rude, _ = await _connected(setup, Will(topics.status("d1"), b"vanished-will"))
        rude.abort()
        assert rude.closed.is_set()

    asyncio.run(run())
    wait_until(lambda: (topics.status("d1"), b"vanished-will") in setup.hub.received())
    assert (topics.status("d1"), b"goodbye-will") not in setup.hub.received()


def test_a_broker_that_is_not_there_is_a_transport_error(setup: Setup) -> None:
    async def run() -> None:
        if setup.stop_broker is None:  # a port nobody listens on
            client = setup.connector(client_id="d1", username="d1", password=setup.secret)
            with pytest.raises(TransportError):
                await client.connect("127.0.0.1", 1)
            return
        setup.stop_broker()  # type: ignore[operator]
        with pytest.raises(TransportError):
            await _client(setup).connect("127.0.0.1", setup.port)

    asyncio.run(run())


def test_a_publish_on_a_lost_connection_is_a_transport_error(setup: Setup) -> None:
    async def run() -> None:
        client, _ = await _connected(setup)
        client.abort()
        with pytest.raises(TransportError):
            await client.publish(UP, b"too late")

    asyncio.run(run())
