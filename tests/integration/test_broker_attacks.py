"""The attacks of the security review, and their variations, against both brokers: each is
refused and leaves nothing changed for anyone else.

Both brokers are set up as the hub sets them up (``brokers.broker``): the embedded broker in its
child process, and a Mosquitto of the test's own with the configuration FleetMind writes.
"""

import contextlib
import json
import queue
import socket
import ssl
import time
from pathlib import Path

import pytest
from brokers import (  # noqa: F401 - broker is the fixture
    HUB_SECRET,
    LIMITS,
    Broker,
    Client,
    broker,
    running,
)
from raw_mqtt import CONNACK_ACCEPTED, RawClient, Will, connect_packet, publish_packet

from fleetmind.devices import model
from fleetmind.devices.model import DeviceState
from fleetmind.hub.broker import SWEEP_S, RegistryAuthPlugin
from fleetmind.wire import messages, status, topics

D1_DOWN = "fm/v1/d/d1/down/#"


def _tls(broker: Broker, device: str) -> ssl.SSLContext:
    context = broker.tls[device].ssl_context()
    assert context is not None
    return context


def _still_served(broker: Broker, victim: Client, hub: Client, device: str, marker: bytes) -> None:
    """The victim still gets what the hub sends it, and the hub still gets what it sends."""
    hub.publish(f"fm/v1/d/{device}/down/command", marker)
    assert victim.drain(until=marker)[-1] == (f"fm/v1/d/{device}/down/command", marker)
    victim.publish(f"fm/v1/d/{device}/up/telemetry", marker + b"-up")
    assert hub.drain(until=marker + b"-up")[-1] == (
        f"fm/v1/d/{device}/up/telemetry", marker + b"-up",
    )  # fmt: skip


def _victim(broker: Broker, device: str = "d1", *, clean: bool = True) -> Client:
    client = Client(broker.port, device, broker.secrets[device], client_id=device,
                    clean_session=clean)  # fmt: skip
    assert client.ok, client.refused
    client.subscribe(f"fm/v1/d/{device}/down/#")
    return client


# -- authentication before anything else -----------------------------------------------------


@pytest.mark.parametrize("clean", [True, False])
def test_a_wrong_password_never_touches_the_session_it_names(broker: Broker, clean: bool) -> None:
    hub = broker.hub()
    victim = _victim(broker, clean=clean)
    for attempt in range(5):
        attacker = RawClient(broker.port)
        code = attacker.connect("d1", "d1", f"guess-{attempt}", clean=clean)
        assert code != CONNACK_ACCEPTED
        attacker.close()
        nobody = RawClient(broker.port)
        assert nobody.connect("d1", clean=clean) != CONNACK_ACCEPTED  # no credentials at all
        nobody.close()
    assert not victim.lost(timeout=0.5)
    _still_served(broker, victim, hub, "d1", b"after-guesses")
    victim.close()
    hub.close()


def test_a_failed_login_over_tls_takes_nothing_over(broker: Broker) -> None:
    """Without a certificate of the hub's CA the TLS handshake fails (with TLS 1.3 the client
    learns it at its first read) before MQTT begins."""
    hub = broker.hub()
    victim = Client(broker.tls_port, None, None, _tls(broker, "d1"), client_id="d1")
    assert victim.ok
    victim.subscribe(D1_DOWN)
    anonymous = ssl.create_default_context(cadata=broker.tls["d1"].ca)
    code: int | None = None
    with contextlib.suppress(OSError):  # no client certificate
        attacker = RawClient(broker.tls_port, anonymous)
        try:
            code = attacker.connect("d1", "d1", broker.secrets["d1"])
        finally:
            attacker.close()
    assert code is None
    _still_served(broker, victim, hub, "d1", b"after-tls-guess")
    victim.close()
    hub.close()


def test_the_hub_s_session_cannot_be_taken_over_or_locked(broker: Broker) -> None:
    hub = broker.hub(client_id="_hub-victim")
    device = _victim(broker, "d2")
    # a device naming the hub's client id gets its own (use_username_as_clientid)
    d1 = RawClient(broker.port)
    assert d1.connect("_hub-victim", "d1", broker.secrets["d1"]) == CONNACK_ACCEPTED
    # the hub's identity is refused on the devices' listeners, a device's on the hub's
    for port, username, secret in [
        (broker.port, model.HUB_USERNAME, HUB_SECRET),
        (broker.hub_port, "d1", broker.secrets["d1"]),
    ]:
        wrong_place = RawClient(port)
        assert wrong_place.connect(f"{username}-x", username, secret) != CONNACK_ACCEPTED
        wrong_place.close()
    # guessing the hub's secret where it may log in locks nothing (and takes nothing over)
    for attempt in range(RegistryAuthPlugin.MAX_FAILURES + 2):
        guess = RawClient(broker.hub_port)
        assert guess.connect("_hub-victim", model.HUB_USERNAME, f"g{attempt}") != CONNACK_ACCEPTED
        guess.close()
    assert not hub.lost(timeout=0.5)
    _still_served(broker, device, hub, "d2", b"hub-kept")
    second = Client(broker.hub_port, model.HUB_USERNAME, HUB_SECRET, client_id="_hub-other")
    assert second.ok, "the hub's identity was locked out"
    for client in (second, device, hub):
        client.close()
    d1.close()


def test_a_certificate_that_names_the_hub_is_worth_nothing_on_the_devices_listener(
    broker: Broker, tmp_path: Path
) -> None:
    """The hub makes itself a certificate of its CA (CN ``_hub``) at every start in production.
    On the devices' mutual-TLS listener such a certificate gets in nowhere (embedded) or may do
    nothing (Mosquitto: the devices' ACL gives ``_hub`` no grant)."""
    hub = broker.hub()
    victim = _victim(broker, "d2")
    assert broker.devices.ca is not None
    cert, key, _ = broker.devices.ca.client_files(tmp_path, model.HUB_USERNAME)
    context = ssl.create_default_context(cadata=broker.tls["d1"].ca)
    context.load_cert_chain(cert, key)
    impostor = Client(broker.tls_port, None, None, context, client_id="_hub-impostor")
    if impostor.ok:
        with contextlib.suppress(queue.Empty):
            impostor.subscribe("fm/v1/d/+/up/#")
        with contextlib.suppress(RuntimeError, ValueError):
            impostor.publish("fm/v1/d/d2/down/command", b"from-the-impostor")
        victim.publish("fm/v1/d/d2/up/telemetry", b"for-the-hub-only")
        time.sleep(1)
        assert b"for-the-hub-only" not in [payload for _, payload in impostor.drain_all()]
        assert b"from-the-impostor" not in [payload for _, payload in victim.drain_all()]
    else:
        assert broker.kind == "amqtt"
    impostor.close()
    victim.close()
    hub.close()


@pytest.mark.parametrize("listener", ["password", "certificate"])
def test_a_device_cannot_take_over_another_device(broker: Broker, listener: str) -> None:
    hub = broker.hub()
    victim = _victim(broker, "d2")
    if listener == "password":
        attacker = Client(broker.port, "d1", broker.secrets["d1"], client_id="d2")
    else:
        attacker = Client(broker.tls_port, "d2", "x", _tls(broker, "d1"), client_id="d2")
    assert attacker.ok  # as d1, under its own client id
    assert not victim.lost(timeout=1.0)
    _still_served(broker, victim, hub, "d2", b"d2-kept-" + listener.encode())
    for client in (attacker, victim, hub):
        client.close()


def test_one_device_holds_one_connection(broker: Broker) -> None:
    """However many times its credentials connect, with whatever client ids: one stays."""
    sockets = []
    for index in range(30):
        raw = RawClient(broker.port)
        assert raw.connect(f"c{index}", "d1", broker.secrets["d1"]) == CONNACK_ACCEPTED
        sockets.append(raw)
    time.sleep(1)
    still_open = [raw for raw in sockets if not raw.closed_within(0.05)]
    assert len(still_open) == 1
    assert still_open[0] is sockets[-1]
    for raw in sockets:
        raw.close()


def test_connects_that_arrive_together_still_leave_one_connection(broker: Broker) -> None:
    """Many CONNECTs of one identity at once (each authenticates while the others do) leave
    one connection; suspending the device then leaves none that can publish."""
    hub = broker.hub()
    clients = [RawClient(broker.port) for _ in range(60)]
    for index, raw in enumerate(clients):
        raw.send(connect_packet(f"c{index}", "d2", broker.secrets["d2"]))
    codes = [raw.connack() for raw in clients]
    assert codes.count(CONNACK_ACCEPTED) >= 1
    time.sleep(1.5)
    open_ones = [raw for raw in clients if not raw.closed_within(0.05)]
    assert len(open_ones) <= 1
    broker.devices.set_state("d2", DeviceState.SUSPENDED)
    broker.credentials_changed()
    time.sleep(SWEEP_S * 2)
    for raw in open_ones:
        with contextlib.suppress(OSError):
            raw.send(publish_packet("fm/v1/d/d2/up/telemetry", b"after-suspension"))
    time.sleep(1)
    assert b"after-suspension" not in [payload for _, payload in hub.drain_all()]
    for raw in clients:
        raw.close()
    hub.close()


# -- wills --------------------------------------------------------------------------------------


def _desired(version: int) -> bytes:
    return messages.Desired(version, {"settings": {"sample_hz": 999}}).encode()


@pytest.mark.parametrize(
    "will",
    [
        Will("fm/v1/d/d2/up/telemetry", b'[{"n":"temp","v":66.6}]'),
        Will("fm/v1/d/d2/up/telemetry", b'[{"n":"temp","v":66.6}]', qos=0),
        Will("fm/v1/d/d2/down/command", b'{"id":"x","name":"reboot","args":{},"expires_at":9e9}'),
        Will("fm/v1/d/d2/down/desired", _desired(10**9), retain=True),
        Will("fm/v1/d/d2/up/status", status.encode(status.Status("offline")), retain=True),
        Will("fm/v1/fleet/down/announce", b"to-everyone", retain=True),
    ],
    ids=["telemetry", "telemetry-qos0", "command", "retained-desired", "status", "fleet"],
)
def test_a_will_on_another_device_s_topic_is_never_published(broker: Broker, will: Will) -> None:
    hub = broker.hub()
    victim = _victim(broker, "d2")
    victim.subscribe("fm/v1/fleet/down/#")
    attacker = RawClient(broker.port)
    assert attacker.connect("d1", "d1", broker.secrets["d1"], will=will) == CONNACK_ACCEPTED
    attacker.close()  # vanishes without DISCONNECT: the will would fire now
    time.sleep(1)
    _still_served(broker, victim, hub, "d2", b"after-will")
    seen = [topic for topic, _ in hub.drain_all()] + [topic for topic, _ in victim.drain_all()]
    assert will.topic not in seen
    late = _victim(broker, "d2")  # a new subscription gets no forged retained message
    time.sleep(0.5)
    assert [t for t, _ in late.drain_all() if t == will.topic] == []
    for client in (late, victim, hub):
        client.close()


@pytest.mark.parametrize("topic", ["fm/v1/d/d1/up/#", "fm/v1/d/d1/up/+", "$SYS/x", ""])
def test_a_will_that_is_no_topic_is_refused_and_ingest_goes_on(broker: Broker, topic: str) -> None:
    """A wildcard is within the device's ACL pattern but is no topic to publish to: the CONNECT
    is refused and the hub keeps taking every device's messages. (Mosquitto accepts a will on
    ``$SYS/x`` and never publishes it, as the ACL test of wills shows.)"""
    hub = broker.hub()
    attacker = RawClient(broker.port)
    code = attacker.connect("d1", "d1", broker.secrets["d1"], will=Will(topic, b"x"))
    if broker.kind == "amqtt" or topic != "$SYS/x":
        assert code != CONNACK_ACCEPTED
    attacker.close()
    time.sleep(1)
    victim = _victim(broker, "d2")
    _still_served(broker, victim, hub, "d2", b"after-bad-will")
    victim.close()
    hub.close()


def test_a_will_on_the_device_s_own_status_is_published(broker: Broker) -> None:
    """The control: the will the agent really sets (its own retained up/status) works."""
    hub = broker.hub()
    offline = status.encode(status.Status("offline", "b1"))
    attacker = RawClient(broker.port)
    will = Will(topics.status("d1"), offline, retain=True)
    assert attacker.connect("d1", "d1", broker.secrets["d1"], will=will) == CONNACK_ACCEPTED
    attacker.close()
    assert hub.drain(until=offline)[-1] == (topics.status("d1"), offline)
    hub.close()


def test_an_mqtt5_will_with_a_delay_obeys_the_acl_too(broker: Broker) -> None:
    """The embedded broker speaks MQTT 3.1.1 only and refuses the CONNECT; Mosquitto accepts
    it and still never publishes the will on another device's topic."""
    hub = broker.hub()
    victim = _victim(broker, "d2")
    attacker = RawClient(broker.port)
    will = Will("fm/v1/d/d2/down/command", b"delayed", delay_s=1)
    code = attacker.connect("d1", "d1", broker.secrets["d1"], will=will, version=5)
    if broker.kind == "amqtt":
        assert code != CONNACK_ACCEPTED
    attacker.close()
    time.sleep(2.5)
    _still_served(broker, victim, hub, "d2", b"after-mqtt5")
    assert b"delayed" not in [payload for _, payload in victim.drain_all()]
    victim.close()
    hub.close()


# -- retained messages ------------------------------------------------------------------------


@pytest.mark.parametrize("clean", [True, False])
def test_retained_messages_reach_only_whom_the_acl_lets_read_them(
    broker: Broker, clean: bool
) -> None:
    hub = broker.hub()
    hub.publish("fm/v1/d/d2/down/desired", _desired(3), retain=True)
    hub.publish("fm/v1/d/d1/down/desired", _desired(1), retain=True)
    d2 = Client(broker.port, "d2", broker.secrets["d2"], client_id="d2",
                will=(topics.status("d2"), b'{"state":"offline"}', 1, True))  # fmt: skip
    d2.publish(topics.status("d2"), b'{"state":"online"}', retain=True)
    d1 = Client(broker.port, "d1", broker.secrets["d1"], client_id="d1", clean_session=clean)
    for topic_filter in ("fm/v1/d/+/down/#", "fm/v1/d/+/up/#", "#", "fm/v1/d/d2/down/#"):
        with contextlib.suppress(queue.Empty):  # a broker may also ignore the request
            d1.subscribe(topic_filter)
    d1.subscribe(D1_DOWN)
    time.sleep(1)
    received = [topic for topic, _ in d1.drain_all()]
    assert received and set(received) == {"fm/v1/d/d1/down/desired"}
    d1.close()
    again = Client(broker.port, "d1", broker.secrets["d1"], client_id="d1", clean_session=clean)
    again.subscribe(D1_DOWN)
    time.sleep(0.5)
    assert {topic for topic, _ in again.drain_all()} <= {"fm/v1/d/d1/down/desired"}
    for client in (again, d2, hub):
        client.close()


def test_a_retained_uplink_reaches_the_hub_as_retained_or_not_at_all(broker: Broker) -> None:
    """The hub takes a pack when it is sent; a replay at its next subscription is either not
    made (the embedded broker retains a device's uplink only on up/status) or flagged retained
    (Mosquitto), which the hub refuses."""
    hub = broker.hub()
    d1 = Client(broker.port, "d1", broker.secrets["d1"], client_id="d1")
    d1.publish("fm/v1/d/d1/up/telemetry", b"retained-pack", retain=True)
    assert hub.drain(until=b"retained-pack")
    hub.close()
    again = Client(broker.hub_port, model.HUB_USERNAME, HUB_SECRET, client_id="_hub-again")
    again.subscribe("fm/v1/d/+/up/#")
    time.sleep(1)
    replays = [
        retain for topic, payload, retain in again.drain_flags() if payload == b"retained-pack"
    ]
    assert replays == ([] if broker.kind == "amqtt" else [True])
    d1.close()
    again.close()


# -- connection limits and hostile packets ----------------------------------------------------


@pytest.mark.parametrize("broker", ["amqtt"], indirect=True)
def test_connections_that_never_finish_connect_are_closed(broker: Broker) -> None:
    """The embedded broker closes them after the CONNECT timeout. Mosquitto 2.0 has no time
    limit for a CONNECT; its ``max_connections`` bounds such connections (tested below)."""
    silent = [RawClient(broker.port) for _ in range(20)]
    partial = [RawClient(broker.port) for _ in range(20)]
    for raw in partial:
        raw.send(connect_packet("p", "d1", "x")[:7])
    tls = [RawClient(broker.tls_port, _tls(broker, "d1")) for _ in range(5)]
    deadline = LIMITS.connect_timeout_s + 2
    assert all(raw.closed_within(deadline) for raw in silent + partial + tls)
    for raw in silent + partial + tls:
        raw.close()
    ok = RawClient(broker.port)
    assert ok.connect("d1", "d1", broker.secrets["d1"]) == CONNACK_ACCEPTED
    ok.close()


def test_connections_beyond_the_limit_are_refused_and_the_rest_served(broker: Broker) -> None:
    hub = broker.hub()
    held = []
    for _ in range(LIMITS.max_connections + 10):
        with contextlib.suppress(OSError):
            held.append(socket.create_connection(("127.0.0.1", broker.port), timeout=5))
    time.sleep(0.5)
    late = RawClient(broker.port)
    assert late.connect("d1", "d1", broker.secrets["d1"]) is None  # closed, no CONNACK
    late.close()
    for sock in held:
        sock.close()
    time.sleep(1)
    device = _victim(broker, "d2")
    _still_served(broker, device, hub, "d2", b"served-again")
    device.close()
    hub.close()


@pytest.mark.parametrize("attack", ["oversized", "qos2"])
def test_a_hostile_publish_closes_the_connection_and_goes_nowhere(
    broker: Broker, attack: str
) -> None:
    hub = broker.hub()
    raw = RawClient(broker.port)
    assert raw.connect("d1", "d1", broker.secrets["d1"]) == CONNACK_ACCEPTED
    topic = "fm/v1/d/d1/up/telemetry"
    if attack == "oversized":
        raw.send(publish_packet(topic, b"x" * (300 * 1024)))
    else:
        raw.send(publish_packet(topic, b"qos2-payload", qos=2))
    assert raw.closed_within(5)
    raw.close()
    time.sleep(0.5)
    assert all(len(payload) < 1000 and payload != b"qos2-payload" for _, payload in hub.drain_all())
    hub.close()


def test_a_silent_client_is_cut_off_after_its_keepalive_and_its_will_fires(broker: Broker) -> None:
    hub = broker.hub()
    offline = status.encode(status.Status("offline", "keepalive"))
    raw = RawClient(broker.port)
    will = Will(topics.status("d1"), offline, retain=True)
    assert raw.connect("d1", "d1", broker.secrets["d1"], keepalive=2, will=will) == 0
    assert raw.closed_within(6)  # 1.5 x the keepalive, and some slack
    assert hub.drain(until=offline)[-1] == (topics.status("d1"), offline)
    raw.close()
    hub.close()


@pytest.mark.parametrize("broker", ["amqtt"], indirect=True)
def test_publishes_that_never_wait_for_acknowledgements_are_bounded(broker: Broker) -> None:
    """The embedded broker holds each PUBACK until the hub has the message: a device that
    keeps publishing without a hub to take them is closed past ``max_held_per_connection``.
    Mosquitto acknowledges at once and queues for the hub (``max_queued_messages``)."""
    raw = RawClient(broker.port)
    assert raw.connect("d1", "d1", broker.secrets["d1"]) == CONNACK_ACCEPTED
    with contextlib.suppress(OSError):
        for packet_id in range(1, LIMITS.max_held_per_connection + 50):
            raw.send(publish_packet("fm/v1/d/d1/up/telemetry", b"%d" % packet_id,
                                    packet_id=packet_id))  # fmt: skip
    assert raw.closed_within(5)
    raw.close()


@pytest.mark.parametrize("broker", ["amqtt"], indirect=True)
def test_uplink_waiting_for_an_absent_hub_is_bounded_in_bytes(broker: Broker) -> None:
    """With no hub to take it, the embedded broker holds at most ``max_queued_bytes`` of
    uplink: QoS 0 beyond it is dropped, and a QoS 1 message is not acknowledged (its connection
    is closed; the device sends it again). Once the hub has drained the queue, all is taken
    again. (Mosquitto queues for the hub's session up to its ``max_queued_messages``.)"""
    chunk = b"x" * (100 * 1024)
    raw = RawClient(broker.port)
    assert raw.connect("d1", "d1", broker.secrets["d1"]) == CONNACK_ACCEPTED
    for n in range(2 * LIMITS.max_queued_bytes // len(chunk)):
        raw.send(publish_packet("fm/v1/d/d1/up/telemetry", b"%03d" % n + chunk, qos=0))
    raw.send(publish_packet("fm/v1/d/d1/up/telemetry", b"held" + chunk, packet_id=1))
    assert raw.closed_within(5)
    assert raw.unread == b""  # no PUBACK
    raw.close()

    hub = broker.hub()
    taken = [payload[:3] for _, payload in _drain_quiet(hub)]
    assert taken == [b"%03d" % n for n in range(LIMITS.max_queued_bytes // len(chunk))]
    device = Client(broker.port, "d1", broker.secrets["d1"])
    device.publish("fm/v1/d/d1/up/telemetry", b"again")  # acknowledged: the hub has it
    assert hub.drain(until=b"again")[-1] == ("fm/v1/d/d1/up/telemetry", b"again")
    device.close()
    hub.close()


def _drain_quiet(client: Client, quiet_s: float = 1.0) -> list[tuple[str, bytes]]:
    """What ``client`` receives until nothing more comes for ``quiet_s``."""
    seen: list[tuple[str, bytes]] = []
    with contextlib.suppress(queue.Empty):
        while True:
            seen.append(client.received.get(timeout=quiet_s))
    return seen


def test_the_embedded_broker_stops_quietly_amid_connections_that_are_starting(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    """Connections still waiting for their CONNECT, or in the middle of it, when the broker
    stops end with it; that is no error, and the log does not say it is."""
    with running("amqtt", tmp_path) as started:
        waiting = [RawClient(started.port) for _ in range(5)]
        connecting = [RawClient(started.port) for _ in range(5)]
        for raw in connecting:
            raw.send(connect_packet("d1", "d1", started.secrets["d1"]))
    for raw in waiting + connecting:
        raw.close()
    logged = capfd.readouterr().err
    assert "Traceback" not in logged and "ERROR" not in logged, logged


def test_garbage_in_place_of_connect_is_closed(broker: Broker) -> None:
    for garbage in (b"\x00" * 64, b"GET / HTTP/1.1\r\n\r\n", b"\x10\xff\xff\xff\xff\x7f",
                    json.dumps({"n": "x"}).encode()):  # fmt: skip
        raw = RawClient(broker.port)
        raw.send(garbage)
        assert raw.closed_within(LIMITS.connect_timeout_s + 2), garbage
        raw.close()
    ok = RawClient(broker.port)
    assert ok.connect("d1", "d1", broker.secrets["d1"]) == CONNACK_ACCEPTED
    ok.close()
