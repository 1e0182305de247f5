"""Every uplink kind fuzzed through a real hub, on the embedded broker and on Mosquitto:
whatever a device sends, each message it gets wrong is refused with a reason (counted, kept for
the device's page, told to the device), the good messages around it are all stored, and the hub
stays healthy. Retained telemetry is stored once however often the hub comes back."""

import contextlib
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import cbor2
import httpx
import paho.mqtt.client as mqtt
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from paho.mqtt.enums import CallbackAPIVersion

from conftest import (
    Mosquitto,
    RunningHub,
    free_port,
    mosquitto_for_hub,
    start_hub,
    stop,
    wait_until,
)
from fleetmind.devices import model
from fleetmind.wire import senml, topics

KINDS = ["telemetry", "state", "status", "event/command", "csr", "event/other", "nonsense"]
#: what the security review sent, by kind
POISON = [
    ("telemetry", b'[{"n": "temp", "v": 1' + b"0" * 400 + b"}]"),
    ("telemetry", cbor2.dumps([{0: "temp", 2: 10**400}])),
    ("telemetry", b'[{"n": "temp", "vs": "\\ud800"}]'),
    ("telemetry", b'[{"n": "temp", "u": "\\ud800", "v": 1}]'),
    ("telemetry", b'[{"n": "temp", "bid": "\\ud800", "seq": 1, "v": 1}]'),
    ("status", b'{"state": "online", "boot": "\\ud800"}'),
    ("state", b'{"version": 1' + b"0" * 30 + b', "reported": {}, "desired_version": 0}'),
    ("event/command", b'{"id": "\\ud800", "ok": true, "result": {}}'),
    ("csr", b'{"csr": "\\ud800"}'),
]


@dataclass
class Served:
    hub: RunningHub
    mosquitto: Mosquitto | None
    directory: Path
    args: tuple[str, ...]

    def restart_hub(self) -> None:
        stop(self.hub.process)
        self.hub = start_hub(self.hub.data_dir, *self.args)


@pytest.fixture(scope="module", params=["embedded", "mosquitto"])
def served(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Served]:
    directory = tmp_path_factory.mktemp(request.param)
    running: Mosquitto | None = None
    if request.param == "embedded":
        args: tuple[str, ...] = (
            "--mqtt-port",
            str(free_port()),
            "--mqtt-tls-port",
            str(free_port()),
        )
    else:
        secret = model.new_secret()
        running = mosquitto_for_hub(directory / "broker", secret)
        args = ("--broker-url", running.hub_url(secret), "--mqtt-port", str(running.port),
                "--mosquitto-dir", str(directory / "broker"))  # fmt: skip
    setup = Served(start_hub(directory / "data", *args), running, directory, args)
    yield setup
    stop(setup.hub.process)
    if running is not None:
        stop(running.process)


class Device:
    """A device's own paho connection (its password), publishing with many messages in flight."""

    def __init__(self, served: Served, name: str) -> None:
        created = served.hub.add_device(name)
        self.id = name
        credentials = created["mqtt"]
        assert isinstance(credentials, dict)
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=name)
        self.client.username_pw_set(credentials["username"], credentials["password"])
        self.client.max_inflight_messages_set(100)
        self.client.connect(credentials["host"], credentials["port"])
        self.client.loop_start()
        wait_until(self.client.is_connected)
        self.seq = 0
        self.good = 0

    def send(self, kind: str, payload: bytes, *, retain: bool = False) -> mqtt.MQTTMessageInfo:
        return self.client.publish(topics.up(self.id, kind), payload, qos=1, retain=retain)

    def good_pack(self) -> mqtt.MQTTMessageInfo:
        self.seq += 1
        self.good += 1
        reading = senml.Reading("good", time.time(), float(self.seq))
        return self.send("telemetry", senml.encode_cbor([reading], boot="fuzz", seq=self.seq))

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def stored(hub: RunningHub, device: str, metric: str) -> int:
    with hub.api() as api:
        response = api.get(
            f"/api/v1/devices/{device}/telemetry",
            params={"metric": metric, "start": "2000-01-01T00:00:00Z", "limit": 10_000},
        )
        assert response.status_code == 200, response.text
        return len(response.json()["points"])


hostile_text = st.text(st.characters(codec=None, categories=None), max_size=12)
documents = st.recursive(
    st.none() | st.booleans() | st.integers(min_value=-(10**40), max_value=10**40) | st.floats()
    | hostile_text,
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(
        st.sampled_from(["n", "v", "vs", "u", "bt", "t", "bid", "seq", "state", "boot", "version",
                         "reported", "desired_version", "id", "ok", "result", "error", "csr"])
        | hostile_text,
        children,
        max_size=6,
    ),
    max_leaves=20,
)  # fmt: skip


def _cbor(document: object) -> bytes:
    try:
        return cbor2.dumps(document)
    except (UnicodeEncodeError, ValueError, TypeError):
        return b"\xa1"  # CBOR cannot hold a lone surrogate: a truncated map instead


payloads = st.one_of(
    st.binary(max_size=400),
    documents.map(lambda d: json.dumps(d).encode()),
    st.lists(documents, max_size=4).map(lambda d: json.dumps(d).encode()),
    st.lists(documents, max_size=4).map(_cbor),
    st.sampled_from([payload for _, payload in POISON]),
)


def test_no_message_stops_ingest_and_every_good_one_is_stored(served: Served) -> None:
    device = Device(served, "fuzzed")
    sent: list[mqtt.MQTTMessageInfo] = []

    @settings(max_examples=4, deadline=None, derandomize=True, database=None,
              suppress_health_check=list(HealthCheck))  # fmt: skip
    @given(st.lists(st.tuples(st.sampled_from(KINDS), payloads, st.booleans()), min_size=20,
                    max_size=40))  # fmt: skip
    def round_of(messages: list[tuple[str, bytes, bool]]) -> None:
        for kind, payload, retain in messages:
            sent.append(device.good_pack())
            sent.append(device.send(kind, payload, retain=retain and kind == "status"))
        sent.append(device.good_pack())
        for info in sent:
            info.wait_for_publish(timeout=60)

    round_of()
    for kind, payload in POISON:
        sent.append(device.send(kind, payload))
        sent.append(device.good_pack())
    for info in sent:
        info.wait_for_publish(timeout=60)
    hub = served.hub
    wait_until(lambda: stored(hub, "fuzzed", "good") == device.good, timeout=60)
    assert httpx.get(f"{hub.url}/healthz").status_code == 200
    assert hub.process.poll() is None
    refused = hub.stats()["rejected_by_kind"]
    assert isinstance(refused, dict)
    assert {"telemetry", "state", "status", "event/command", "csr"} <= refused.keys()
    with hub.api() as api:
        recent = api.get("/api/v1/devices/fuzzed/rejects").json()
    assert 0 < len(recent) <= 20
    assert all(item["reason"] and item["detail"] for item in recent)
    device.close()


def test_a_device_and_its_operator_see_why_a_pack_was_refused(served: Served) -> None:
    """The README's own example once set a base time months old: the pack was acknowledged,
    counted fleet-wide, and nobody could tell the device what was wrong with it."""
    device = Device(served, "skewed")
    notices: list[bytes] = []
    device.client.on_message = lambda _c, _u, m: notices.append(m.payload)
    device.client.subscribe("fm/v1/d/skewed/down/#", qos=1)
    time.sleep(0.5)
    old = json.dumps([{"bn": "skewed/", "bt": 1732400000, "n": "temp", "u": "Cel", "v": 21.5}])
    device.send("telemetry", old.encode()).wait_for_publish(timeout=30)
    now = json.dumps([{"bn": "skewed/", "n": "temp", "u": "Cel", "v": 21.5}])  # no bt: now
    device.send("telemetry", now.encode()).wait_for_publish(timeout=30)
    hub = served.hub
    wait_until(lambda: stored(hub, "skewed", "temp") == 1)
    with hub.api() as api:
        [refused] = api.get("/api/v1/devices/skewed/rejects").json()
        assert api.get("/api/v1/devices/nobody/rejects").status_code == 404
    assert (refused["kind"], refused["reason"]) == ("telemetry", "time")
    assert "outside the accepted window" in refused["detail"]
    cli = hub.cli("device", "rejects", "skewed")
    assert "telemetry" in cli.stdout and "time" in cli.stdout
    wait_until(lambda: notices)
    notice = json.loads(notices[0])
    assert (notice["kind"], notice["reason"]) == ("telemetry", "time")
    device.close()


def test_retained_telemetry_is_stored_once_however_often_the_hub_returns(served: Served) -> None:
    device = Device(served, "retainer")
    pack = json.dumps([{"bn": "retainer/", "n": "temp", "v": 7.0}])  # no bid/seq: no dedupe
    device.send("telemetry", pack.encode(), retain=True).wait_for_publish(timeout=30)
    wait_until(lambda: stored(served.hub, "retainer", "temp") == 1)
    for _ in range(2):
        served.restart_hub()  # with the embedded broker, the broker too: the device reconnects
        wait_until(device.client.is_connected, timeout=30)
        device.good_pack().wait_for_publish(timeout=60)
        wait_until(lambda: stored(served.hub, "retainer", "good") >= 1)
        time.sleep(1)
    assert stored(served.hub, "retainer", "temp") == 1
    with contextlib.suppress(Exception):
        device.close()
