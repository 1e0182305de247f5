"""Authentication and topic ACL, against the embedded broker (amqtt) and Mosquitto, with
passwords on the plain listener and certificates on the mutual-TLS one."""

import asyncio
import contextlib
import queue
import ssl
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from brokers import Broker, Client, broker  # noqa: F401 - broker is the fixture

from fleetmind.agent.credentials import Credentials
from fleetmind.audit.model import AuditQuery
from fleetmind.audit.service import AuditService
from fleetmind.audit.store import AuditStore
from fleetmind.devices.ca import CertificateAuthority
from fleetmind.devices.model import DeviceState
from fleetmind.devices.service import NewDevice
from fleetmind.hub.broker import SWEEP_S, RegistryAuthPlugin
from fleetmind.hub.registry import create_engine
from fleetmind.transport.paho_client import PahoClient


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
    hub = broker.hub()
    d1 = Client(broker.port, "d1", broker.secrets["d1"])
    d1.publish("fm/v1/d/d2/up/telemetry", b"forged")
    d1.publish("fm/v1/d/d1/down/command", b"forged-down")
    d1.publish("fm/v1/d/d1/up/telemetry", b"mine")
    seen = hub.drain(until=b"mine")
    assert seen == [("fm/v1/d/d1/up/telemetry", b"mine")]
    hub.close()
    d1.close()


def test_a_device_reads_only_its_own_down(broker: Broker) -> None:
    hub = broker.hub()
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
    hub = broker.hub()

    async def burst() -> None:
        device = PahoClient(
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
    hub = broker.hub()
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
    hub = broker.hub()
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
    hub = broker.hub()
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
