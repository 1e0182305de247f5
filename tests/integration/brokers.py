"""Both brokers, set up as the hub sets them up, for tests that must hold on each: the embedded
broker (amqtt) in its child process and a Mosquitto of the test's own, with the registry's
devices d1 and d2 (passwords and certificates) and the hub's identity on its own listener."""

import contextlib
import queue
import socket
import ssl
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from conftest import free_port, mosquitto_for, stop, wait_until
from fleetmind.agent.credentials import Credentials
from fleetmind.devices import model, mosquitto
from fleetmind.devices.ca import CertificateAuthority
from fleetmind.devices.service import DeviceService
from fleetmind.devices.store import DeviceStore
from fleetmind.hub.broker import BrokerError, BrokerLimits, EmbeddedBroker, TlsListener
from fleetmind.hub.registry import create_engine, migrate

HUB_SECRET = model.new_secret()


@dataclass
class Broker:
    kind: str
    port: int
    #: the hub's own listener
    hub_port: int
    devices: DeviceService
    store: DeviceStore
    secrets: dict[str, str]
    directory: Path
    tls_port: int
    #: the devices' mutual-TLS identities
    tls: dict[str, Credentials]

    def credentials_changed(self) -> None:
        """What the hub does after a registry change (Mosquitto reads files on SIGHUP)."""
        if self.kind == "mosquitto":
            mosquitto.write_files(self.directory, self.devices, model.hash_secret(HUB_SECRET))
            mosquitto.reload(self.directory)
            time.sleep(0.5)

    def hub(self, client_id: str = "_hub-test") -> "Client":
        """The hub's identity on its listener, subscribed to every device's uplink."""
        client = Client(self.hub_port, model.HUB_USERNAME, HUB_SECRET, client_id=client_id)
        assert client.ok, client.refused
        client.subscribe("fm/v1/d/+/up/#")
        return client


#: small enough for an attacker test to reach
LIMITS = BrokerLimits(max_connections=200, connect_timeout_s=3.0, max_queued_bytes=1024**2)


@pytest.fixture(params=["amqtt", "mosquitto"])
def broker(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Broker]:
    with running(request.param, tmp_path) as started:
        yield started


@contextmanager
def running(kind: str, tmp_path: Path) -> Iterator[Broker]:
    """The broker of ``kind`` (amqtt or mosquitto) over a registry with devices d1 and d2."""
    url = f"sqlite:///{tmp_path / 'registry.db'}"
    engine = create_engine(url)
    migrate(engine)
    store = DeviceStore(engine)
    devices = DeviceService(store, ca=CertificateAuthority.open(tmp_path / "ca"))
    created = {name: devices.add(name) for name in ("d1", "d2")}
    secrets = {name: item.secret for name, item in created.items()}
    tls_port = free_port()
    tls = {
        name: Credentials.from_device(
            {"id": name, "mqtts": {"host": "127.0.0.1", "port": tls_port,
                                   "ca": item.ca.decode(), "certificate": item.certificate.decode(),
                                   "private_key": item.private_key.decode()}}  # type: ignore[union-attr]
        )
        for name, item in created.items()
    }  # fmt: skip
    if kind == "amqtt":
        assert devices.ca is not None
        files = devices.ca.server_files(tmp_path / "tls", ["127.0.0.1"])
        embedded = _embedded(url, files, tls_port)
        port, hub_port = embedded.port or 0, embedded.hub_port
        wait_until(lambda: all(listening(p) for p in (port, tls_port, hub_port)))
        try:
            yield Broker("amqtt", port, hub_port, devices, store, secrets, tmp_path, tls_port, tls)
        finally:
            embedded.stop()
    else:
        mosquitto_process = mosquitto_for(
            tmp_path, devices, HUB_SECRET, tls_port, max_connections=LIMITS.max_connections
        )
        try:
            yield Broker(
                "mosquitto", mosquitto_process.port, mosquitto_process.hub_port, devices, store,
                secrets, tmp_path, tls_port, tls,
            )  # fmt: skip
        finally:
            stop(mosquitto_process.process)


def _embedded(url: str, files: tuple[Path, Path, Path], tls_port: int) -> EmbeddedBroker:
    """The embedded broker on free ports; again on others if one was taken meanwhile (a port
    found free can be given to a client's connection before the broker binds it)."""
    for attempt in range(3):
        embedded = EmbeddedBroker(
            "127.0.0.1", free_port(), url, model.hash_secret(HUB_SECRET),
            TlsListener(tls_port, *files), limits=LIMITS,
        )  # fmt: skip
        try:
            embedded.start()
        except BrokerError:
            if attempt == 2:
                raise
            continue
        return embedded
    raise AssertionError("unreachable")


def listening(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) == 0


class Client:
    """A synchronous paho client that records what it receives."""

    def __init__(
        self,
        port: int,
        username: str | None,
        password: str | None,
        tls: ssl.SSLContext | None = None,
        *,
        client_id: str | None = None,
        clean_session: bool = True,
        will: tuple[str, bytes, int, bool] | None = None,
        keepalive: int = 60,
    ) -> None:
        self.received: queue.Queue[tuple[str, bytes]] = queue.Queue()
        self.refused: str | None = None
        self._connected = queue.Queue[bool]()
        self.mqtt = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=client_id if client_id is not None else f"{username}-{time.time()}",
            clean_session=clean_session,
        )
        if will is not None:
            self.mqtt.will_set(*will)
        if username is not None:
            self.mqtt.username_pw_set(username, password)
        if tls is not None:
            self.mqtt.tls_set_context(tls)
        self.mqtt.on_connect = self._on_connect
        self.mqtt.on_message = self._on_message
        #: (topic, payload, retain flag) of every message received
        self.flags: list[tuple[str, bytes, bool]] = []
        self.mqtt.on_disconnect = lambda *_: self._connected.put(False)
        try:
            self.mqtt.connect("127.0.0.1", port, keepalive=keepalive)
        except OSError as exc:  # a refused TLS handshake
            self.refused, self.ok = str(exc), False
            return
        self.mqtt.loop_start()
        self.ok = self._connected.get(timeout=10)

    def lost(self, timeout: float) -> bool:
        """True if the broker drops the connection within ``timeout``."""
        try:
            return not self._connected.get(timeout=timeout)
        except queue.Empty:
            return False

    def _on_connect(self, _c: object, _u: object, _f: object, reason: object, _p: object) -> None:
        failed = getattr(reason, "is_failure", False)
        self.refused = str(reason) if failed else None
        self._connected.put(not failed)

    def _on_message(self, _c: object, _u: object, message: mqtt.MQTTMessage) -> None:
        self.flags.append((message.topic, message.payload, bool(message.retain)))
        self.received.put((message.topic, message.payload))

    def publish(self, topic: str, payload: bytes, *, retain: bool = False) -> None:
        self.mqtt.publish(topic, payload, qos=1, retain=retain).wait_for_publish(timeout=5)

    def drain_all(self) -> list[tuple[str, bytes]]:
        """Everything received and not yet drained."""
        seen: list[tuple[str, bytes]] = []
        with contextlib.suppress(queue.Empty):
            while True:
                seen.append(self.received.get_nowait())
        return seen

    def drain_flags(self) -> list[tuple[str, bytes, bool]]:
        """Every message received so far, with its retain flag."""
        return list(self.flags)

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
