"""Authentication and topic ACL, against the embedded broker (amqtt) and Mosquitto, with
passwords on the plain listener and certificates on the mutual-TLS one."""

import asyncio
import contextlib
import os
import queue
import signal
import socket
import ssl
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from conftest import free_port, mosquitto_for, stop, wait_until
from fleetmind.agent.credentials import Credentials
from fleetmind.audit.model import AuditQuery
from fleetmind.audit.service import AuditService
from fleetmind.audit.store import AuditStore
from fleetmind.devices import model
from fleetmind.devices.ca import CertificateAuthority
from fleetmind.devices.model import DeviceState
from fleetmind.devices.service import DeviceService, NewDevice, write_mosquitto_files
from fleetmind.devices.store import DeviceStore
from fleetmind.hub.broker import SWEEP_S, EmbeddedBroker, RegistryAuthPlugin, TlsListener
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
    tls_port: int
    #: the devices' mutual-TLS identities
    tls: dict[str, Credentials]

    def credentials_changed(self) -> None:
        """What the hub does after a registry change (Mosquitto reads files on SIGHUP)."""
        if self.kind == "mosquitto":
            write_mosquitto_files(self.directory, self.devices, model.hash_secret(HUB_SECRET))
            pid = int((self.directory / "mosquitto.pid").read_text())
            os.kill(pid, signal.SIGHUP)
            time.sleep(0.5)


@pytest.fixture(params=["amqtt", "mosquitto"])
def broker(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Broker]:
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
    if request.param == "amqtt":
        port = free_port()
        assert devices.ca is not None
        files = devices.ca.server_files(tmp_path / "tls", ["127.0.0.1"])
        embedded = EmbeddedBroker(
            "127.0.0.1", port, url, model.hash_secret(HUB_SECRET), TlsListener(tls_port, *files)
        )
        embedded.start()

        def listening(port: int) -> bool:
            with socket.socket() as probe:
                return probe.connect_ex(("127.0.0.1", port)) == 0

        wait_until(lambda: listening(port) and listening(tls_port))
        yield Broker("amqtt", port, devices, store, secrets, tmp_path, tls_port, tls)
        embedded.stop()
    else:
        mosquitto = mosquitto_for(tmp_path, devices, HUB_SECRET, tls_port)
        yield Broker("mosquitto", mosquitto.port, devices, store, secrets, tmp_path, tls_port, tls)
        stop(mosquitto.process)


class Client:
    """A synchronous paho client that records what it receives."""

    def __init__(
        self,
        port: int,
        username: str | None,
        password: str | None,
        tls: ssl.SSLContext | None = None,
    ) -> None:
        self.received: queue.Queue[tuple[str, bytes]] = queue.Queue()
        self.refused: str | None = None
        self._connected = queue.Queue[bool]()
        self.mqtt = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"{username}-{time.time()}")
        if username is not None:
            self.mqtt.username_pw_set(username, password)
        if tls is not None:
            self.mqtt.tls_set_context(tls)
        self.mqtt.on_connect = self._on_connect
        self.mqtt.on_message = lambda _c, _u, m: self.received.put((m.topic, m.payload))
        self.mqtt.on_disconnect = lambda *_: self._connected.put(False)
        try:
            self.mqtt.connect("127.0.0.1", port)
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


# -- mutual TLS ------------------------------------------------------------------------------


def _context(identity: Credentials) -> ssl.SSLContext:
    context = identity.ssl_context()
    assert context is not None
    return context


def test_a_certificate_is_the_identity_whatever_username_is_sent(broker: Broker) -> None:
    hub = Client(broker.port, "_hub", HUB_SECRET)
    hub.subscribe("fm/v1/d/+/up/#")
    d1 = Client(broker.tls_port, "d2", "not-a-secret", _context(broker.tls["d1"]))
    assert d1.ok, d1.refused
    d1.publish("fm/v1/d/d2/up/telemetry", b"forged")  # d1's certificate, d2's topic
    d1.publish("fm/v1/d/d1/up/telemetry", b"mine")
    assert hub.drain(until=b"mine") == [("fm/v1/d/d1/up/telemetry", b"mine")]
    hub.close()
    d1.close()


def test_no_foreign_or_expired_certificate_gets_in(broker: Broker, tmp_path: Path) -> None:
    d1 = broker.tls["d1"]
    anonymous = ssl.create_default_context(cadata=d1.ca)
    foreign = CertificateAuthority.open(tmp_path / "foreign")
    assert broker.devices.ca is not None
    attempts = {"no certificate": anonymous}
    issued, key = foreign.issue_device("d1")
    attempts["foreign CA"] = _replace(d1, issued.pem, key)
    issued, key = broker.devices.ca.issue_device("d1", days=1, now=_days_ago(3))
    attempts["expired"] = _replace(d1, issued.pem, key)
    for what, context in attempts.items():
        client = Client(broker.tls_port, "d1", None, context)
        assert not client.ok, f"{what} got in"
        client.close()


def test_a_plain_password_is_no_way_into_the_tls_listener(broker: Broker) -> None:
    plain = Client(broker.tls_port, "d1", broker.secrets["d1"])
    assert not plain.ok
    plain.close()


def test_revoked_and_suspended_certificates_are_refused(broker: Broker) -> None:
    d1 = _context(broker.tls["d1"])
    connected = Client(broker.tls_port, None, None, d1)
    assert connected.ok
    [certificate] = broker.devices.certificates("d1")
    broker.devices.revoke("d1", certificate.serial)
    broker.credentials_changed()
    if broker.kind == "amqtt":  # the embedded broker also drops a connected revoked device
        assert connected.lost(timeout=SWEEP_S * 3)
    connected.close()
    again = Client(broker.tls_port, None, None, d1)
    assert not again.ok
    again.close()

    d2 = _context(broker.tls["d2"])
    broker.devices.set_state("d2", DeviceState.SUSPENDED)
    broker.credentials_changed()
    suspended = Client(broker.tls_port, None, None, d2)
    assert not suspended.ok
    suspended.close()
    broker.devices.set_state("d2", DeviceState.ACTIVE)
    broker.credentials_changed()
    back = Client(broker.tls_port, None, None, d2)
    assert back.ok, back.refused
    back.close()


def test_a_deleted_device_s_certificate_does_not_open_its_successor(broker: Broker) -> None:
    """d2 is deleted and a new d2 added: the old d2's certificate, valid as X.509 and naming
    d2, is refused (revoked at the deletion, and bound to the record it was issued for); the
    new d2's certificate connects and its data arrives. The embedded broker also drops an old
    connection at once, even though a device of its name is active again."""
    hub = Client(broker.port, "_hub", HUB_SECRET)
    hub.subscribe("fm/v1/d/+/up/#")
    old = _context(broker.tls["d2"])
    connected = Client(broker.tls_port, None, None, old)
    assert connected.ok, connected.refused
    broker.devices.delete("d2")
    created = broker.devices.add("d2")
    broker.credentials_changed()
    if broker.kind == "amqtt":
        assert connected.lost(timeout=SWEEP_S * 3)
    connected.close()

    again = Client(broker.tls_port, None, None, old)
    assert not again.ok, "the deleted d2's certificate got in"
    again.close()
    new = Client(broker.tls_port, None, None, _context(_identity(created, broker.tls_port)))
    assert new.ok, new.refused
    new.publish("fm/v1/d/d2/up/telemetry", b"new-d2")
    assert hub.drain(until=b"new-d2")[-1] == ("fm/v1/d/d2/up/telemetry", b"new-d2")
    new.close()
    hub.close()


def _identity(created: NewDevice, tls_port: int) -> Credentials:
    assert created.ca and created.certificate and created.private_key
    return Credentials.from_device(
        {"id": created.device.id, "mqtts": {
            "host": "127.0.0.1", "port": tls_port, "ca": created.ca.decode(),
            "certificate": created.certificate.decode(),
            "private_key": created.private_key.decode()}}
    )  # fmt: skip


def _replace(identity: Credentials, certificate: bytes, key: bytes | None) -> ssl.SSLContext:
    assert key is not None
    other = Credentials(
        identity.host, identity.port, identity.username, "",
        ca=identity.ca, certificate=certificate.decode(), private_key=key.decode(),
    )  # fmt: skip
    return _context(other)


def _days_ago(days: int) -> datetime:
    return datetime.now(UTC) - timedelta(days=days)


@pytest.mark.parametrize("broker", ["amqtt"], indirect=True)  # Mosquitto has no lockout
def test_repeated_mqtt_auth_failures_lock_the_username(broker: Broker) -> None:
    for _ in range(RegistryAuthPlugin.MAX_FAILURES):
        wrong = Client(broker.port, "d1", "a guess")
        assert not wrong.ok
        wrong.close()
    right = Client(broker.port, "d1", broker.secrets["d1"])
    assert not right.ok  # locked, even with the right secret
    right.close()
    other = Client(broker.port, "d2", broker.secrets["d2"])
    assert other.ok  # only the attacked username is locked
    other.close()
    engine = create_engine(f"sqlite:///{broker.directory / 'registry.db'}")
    events = AuditService(AuditStore(engine)).query(AuditQuery(type_prefix="mqtt."))
    assert events[0].type == "mqtt.lockout" and events[0].actor == "d1"
    assert len([e for e in events if e.type == "mqtt.auth"]) == RegistryAuthPlugin.MAX_FAILURES - 1


def test_a_connected_device_that_is_suspended_is_cut_off(broker: Broker) -> None:
    """The embedded broker drops the connection; Mosquitto keeps it open but, with the ACL it
    rereads, lets nothing through any more."""
    hub = Client(broker.port, "_hub", HUB_SECRET)
    hub.subscribe("fm/v1/d/+/up/#")
    device = Client(broker.tls_port, None, None, _context(broker.tls["d2"]))
    assert device.ok
    device.publish("fm/v1/d/d2/up/telemetry", b"before")
    assert hub.drain(until=b"before")[-1] == ("fm/v1/d/d2/up/telemetry", b"before")
    broker.devices.set_state("d2", DeviceState.SUSPENDED)
    broker.credentials_changed()
    if broker.kind == "amqtt":
        assert device.lost(timeout=SWEEP_S * 3)
    else:
        with contextlib.suppress(RuntimeError, ValueError):  # a broker may drop it instead
            device.publish("fm/v1/d/d2/up/telemetry", b"after")
        d1 = Client(broker.port, "d1", broker.secrets["d1"])
        d1.publish("fm/v1/d/d1/up/telemetry", b"marker")
        seen = hub.drain(until=b"marker")
        assert (("fm/v1/d/d2/up/telemetry", b"after")) not in seen
        d1.close()
    device.close()
    hub.close()
