"""Authentication and topic ACL, against the embedded broker (amqtt) and Mosquitto."""

import asyncio
import contextlib
import os
import queue
import signal
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from conftest import free_port, mosquitto_for_store, stop, wait_until
from fleetmind.devices import model
from fleetmind.devices.service import DeviceService, write_mosquitto_files
from fleetmind.devices.store import DeviceStore
from fleetmind.hub.broker import EmbeddedBroker
from fleetmind.hub.registry import create_engine, migrate
from fleetmind.transport.paho import AsyncClient

HUB_SECRET = model.new_secret()


@dataclass
class Broker:
    kind: str
    port: int
    devices: DeviceService
    store: DeviceStore
    secrets: dict[str, str]
    directory: Path

    def credentials_changed(self) -> None:
        """What the hub does after a registry change (Mosquitto reads files on SIGHUP)."""
        if self.kind == "mosquitto":
            write_mosquitto_files(self.directory, self.store, model.hash_secret(HUB_SECRET))
            pid = int((self.directory / "mosquitto.pid").read_text())
            os.kill(pid, signal.SIGHUP)
            time.sleep(0.5)


@pytest.fixture(params=["amqtt", "mosquitto"])
def broker(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Broker]:
    url = f"sqlite:///{tmp_path / 'registry.db'}"
    engine = create_engine(url)
    migrate(engine)
    store = DeviceStore(engine)
    devices = DeviceService(store)
    secrets = {name: devices.add(name).secret for name in ("d1", "d2")}
    if request.param == "amqtt":
        port = free_port()
        embedded = EmbeddedBroker("127.0.0.1", port, url, model.hash_secret(HUB_SECRET))
        embedded.start()

        def listening() -> bool:
            with socket.socket() as probe:
                return probe.connect_ex(("127.0.0.1", port)) == 0

        wait_until(listening)
        yield Broker("amqtt", port, devices, store, secrets, tmp_path)
        embedded.stop()
    else:
        mosquitto = mosquitto_for_store(tmp_path, store, HUB_SECRET)
        yield Broker("mosquitto", mosquitto.port, devices, store, secrets, tmp_path)
        stop(mosquitto.process)


class Client:
    """A synchronous paho client that records what it receives."""

    def __init__(self, port: int, username: str | None, password: str | None) -> None:
        self.received: queue.Queue[tuple[str, bytes]] = queue.Queue()
        self.refused: str | None = None
        self._connected = queue.Queue[bool]()
        self.mqtt = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"{username}-{time.time()}")
        if username is not None:
            self.mqtt.username_pw_set(username, password)
        self.mqtt.on_connect = self._on_connect
        self.mqtt.on_message = lambda _c, _u, m: self.received.put((m.topic, m.payload))
        self.mqtt.on_disconnect = lambda *_: self._connected.put(False)
        self.mqtt.connect("127.0.0.1", port)
        self.mqtt.loop_start()
        self.ok = self._connected.get(timeout=10)

    def _on_connect(self, _c: object, _u: object, _f: object, reason: object, _p: object) -> None:
        failed = getattr(reason, "is_failure", False)
        self.refused = str(reason) if failed else None
        self._connected.put(not failed)

    def publish(self, topic: str, payload: bytes) -> None:
        self.mqtt.publish(topic, payload, qos=1).wait_for_publish(timeout=5)

    def subscribe(self, topic_filter: str) -> None:
        done = queue.Queue[None]()
        self.mqtt.on_subscribe = lambda *_: done.put(None)
        self.mqtt.subscribe(topic_filter, qos=1)
        done.get(timeout=5)

    def drain(self, until: bytes, timeout: float = 10) -> list[tuple[str, bytes]]:
        """Everything received up to and including the payload ``until``."""
        seen: list[tuple[str, bytes]] = []
        deadline = time.monotonic() + timeout
        while True:
            topic, payload = self.received.get(timeout=max(0.01, deadline - time.monotonic()))
            seen.append((topic, payload))
            if payload == until:
                return seen

    def close(self) -> None:
        self.mqtt.disconnect()
        self.mqtt.loop_stop()


def test_anonymous_and_wrong_credentials_are_refused(broker: Broker) -> None:
    for username, password in [
        (None, None),
        ("d1", "wrong"),
        ("d1", broker.secrets["d2"]),
        ("nobody", broker.secrets["d1"]),
        ("_hub", broker.secrets["d1"]),
    ]:
        client = Client(broker.port, username, password)
        assert not client.ok, f"{username} got in"
        client.close()
    client = Client(broker.port, "d1", broker.secrets["d1"])
    assert client.ok
    client.close()


def test_a_deleted_device_cannot_connect(broker: Broker) -> None:
    broker.devices.delete("d2")
    broker.credentials_changed()
    client = Client(broker.port, "d2", broker.secrets["d2"])
    assert not client.ok
    client.close()


def test_a_device_publishes_only_under_its_own_up(broker: Broker) -> None:
    hub = Client(broker.port, "_hub", HUB_SECRET)
    hub.subscribe("fm/v1/d/+/up/#")
    d1 = Client(broker.port, "d1", broker.secrets["d1"])
    d1.publish("fm/v1/d/d2/up/telemetry", b"forged")
    d1.publish("fm/v1/d/d1/down/command", b"forged-down")
    d1.publish("fm/v1/d/d1/up/telemetry", b"mine")
    seen = hub.drain(until=b"mine")
    assert seen == [("fm/v1/d/d1/up/telemetry", b"mine")]
    hub.close()
    d1.close()


def test_a_device_reads_only_its_own_down(broker: Broker) -> None:
    hub = Client(broker.port, "_hub", HUB_SECRET)
    d1 = Client(broker.port, "d1", broker.secrets["d1"])
    for topic_filter in ("fm/v1/d/d2/down/#", "fm/v1/d/+/up/#", "#"):
        with contextlib.suppress(queue.Empty):  # a broker may also drop the request
            d1.subscribe(topic_filter)
    d1.subscribe("fm/v1/d/d1/down/#")
    d1.subscribe("fm/v1/fleet/down/#")
    d2 = Client(broker.port, "d2", broker.secrets["d2"])
    d2.publish("fm/v1/d/d2/up/telemetry", b"d2-telemetry")
    hub.publish("fm/v1/d/d2/down/command", b"for-d2")
    hub.publish("fm/v1/fleet/down/announce", b"for-all")
    hub.publish("fm/v1/d/d1/down/command", b"for-d1")
    seen = d1.drain(until=b"for-d1")
    assert seen == [
        ("fm/v1/fleet/down/announce", b"for-all"),
        ("fm/v1/d/d1/down/command", b"for-d1"),
    ]
    for client in (hub, d1, d2):
        client.close()


def test_acknowledged_messages_survive_an_abrupt_disconnect(broker: Broker) -> None:
    """Every message the broker acknowledged reaches the hub, even when the device vanishes
    right after the last acknowledgement."""
    hub = Client(broker.port, "_hub", HUB_SECRET)
    hub.subscribe("fm/v1/d/+/up/#")

    async def burst() -> None:
        device = AsyncClient(
            client_id="d1", username="d1", password=broker.secrets["d1"], max_inflight=200
        )
        await device.connect("127.0.0.1", broker.port)
        topic = "fm/v1/d/d1/up/telemetry"
        await asyncio.gather(*(device.publish(topic, b"%d" % n) for n in range(2000)))
        device.abort()

    asyncio.run(burst())
    received = {payload for _, payload in hub.drain(until=b"1999", timeout=30)}
    deadline = time.monotonic() + 10
    while len(received) < 2000 and time.monotonic() < deadline:
        with contextlib.suppress(queue.Empty):
            received.add(hub.received.get(timeout=0.5)[1])
    assert len(received) == 2000
    hub.close()
