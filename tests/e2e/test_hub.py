"""The real hub (child process, embedded broker): API, ingest from MQTT, bad input, dedupe."""

import json
import stat
import subprocess
import time
from datetime import UTC, datetime, timedelta

import cbor2

from conftest import RunningHub, connect, publish, require, wait_until
from fleetmind.wire import senml, status, topics


def points(hub: RunningHub, device: str, metric: str, **params: str) -> list[dict[str, object]]:
    with hub.api() as api:
        response = api.get(
            f"/api/v1/devices/{device}/telemetry", params={"metric": metric, **params}
        )
        assert response.status_code == 200, response.text
        found: list[dict[str, object]] = response.json()["points"]
        return found


def test_device_crud(hub: RunningHub) -> None:
    created = hub.add_device("crud-1")
    assert created["id"] == "crud-1"
    mqtt_info = created["mqtt"]
    assert isinstance(mqtt_info, dict)
    assert mqtt_info["username"] == "crud-1"
    assert len(mqtt_info["password"]) >= 40
    with hub.api() as api:
        assert api.post("/api/v1/devices", json={"name": "crud-1"}).status_code == 409
        assert api.post("/api/v1/devices", json={"name": "bad name"}).status_code == 422
        listed = api.get("/api/v1/devices").json()
        assert "crud-1" in [device["id"] for device in listed]
        assert "password" not in json.dumps(listed)
        assert api.get("/api/v1/devices/crud-1").json()["online"] is False
        assert api.delete("/api/v1/devices/crud-1").status_code == 204
        assert api.get("/api/v1/devices/crud-1").status_code == 404
        assert api.delete("/api/v1/devices/crud-1").status_code == 404


def test_mosquitto_pub_senml_json_lands_in_the_store(hub: RunningHub) -> None:
    binary = require("mosquitto_pub")
    device = hub.add_device("third-party")
    creds = device["mqtt"]
    assert isinstance(creds, dict)
    now = int(time.time())
    subprocess.run(
        [binary, "-h", creds["host"], "-p", str(creds["port"]), "-u", creds["username"],
         "-P", creds["password"], "-q", "1", "-t", "fm/v1/d/third-party/up/telemetry",
         "-m", json.dumps([{"bn": "third-party/", "bt": now, "n": "temp", "u": "Cel", "v": 21.5}])],
        check=True,
        timeout=30,
    )  # fmt: skip
    found = wait_until(lambda: points(hub, "third-party", "temp"))
    assert found == [{"time": datetime.fromtimestamp(now, UTC).isoformat().replace("+00:00", "Z"),
                      "value": 21.5}]  # fmt: skip


def test_bad_input_is_rejected_counted_and_ingest_keeps_running(hub: RunningHub) -> None:
    device = hub.add_device("fuzzy")
    client = connect(device)
    topic = topics.telemetry("fuzzy")
    before = hub.stats()["rejected"]
    assert isinstance(before, dict)
    now = time.time()
    bad = [
        (topic, b"\x00\xff\xfegarbage"),
        (topic, json.dumps([{"n": "temp", "v": "hot"}]).encode()),
        (topic, b"[" + b" " * 70_000 + b"]"),
        (topic, json.dumps([{"n": "temp", "v": 1, "bt": now - 90 * 86400}]).encode()),
        (topic, cbor2.dumps([{0: "temp", 2: 1.0, 6: now + 86400}])),
        (topics.up("fuzzy", "nonsense"), b"{}"),
        (topics.status("fuzzy"), b"not json"),
    ]
    for bad_topic, payload in bad:
        publish(client, bad_topic, payload)
    good = senml.encode_cbor([senml.Reading("temp", now, 22.0)], boot="b", seq=1)
    publish(client, topic, good)
    wait_until(lambda: points(hub, "fuzzy", "temp"))
    after = hub.stats()["rejected"]
    assert isinstance(after, dict)
    grown = {reason: after.get(reason, 0) - before.get(reason, 0) for reason in after}
    assert grown == {"decode": 2, "type": 1, "size": 1, "time": 2, "topic": 1}
    client.disconnect()


def test_a_redelivered_pack_is_stored_once(hub: RunningHub) -> None:
    device = hub.add_device("repeat")
    client = connect(device)
    now = time.time()
    pack = senml.encode_cbor(
        [senml.Reading("temp", now - 1, 1.0), senml.Reading("temp", now - 0.5, 2.0)],
        boot="b",
        seq=9,
    )
    for _ in range(3):
        publish(client, topics.telemetry("repeat"), pack)
    marker = senml.encode_cbor([senml.Reading("marker", now, 1.0)], boot="b", seq=10)
    publish(client, topics.telemetry("repeat"), marker)
    wait_until(lambda: points(hub, "repeat", "marker"))
    assert [p["value"] for p in points(hub, "repeat", "temp")] == [1.0, 2.0]
    client.disconnect()


def test_buckets_and_aggregations(hub: RunningHub) -> None:
    device = hub.add_device("buckets")
    client = connect(device)
    start = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(minutes=3)
    readings = [
        senml.Reading("load", (start + timedelta(seconds=s)).timestamp(), float(s))
        for s in range(120)
    ]
    publish(client, topics.telemetry("buckets"), senml.encode_cbor(readings, boot="b", seq=0))
    wait_until(lambda: len(points(hub, "buckets", "load")) == 120)
    window = {"start": start.isoformat(), "end": (start + timedelta(minutes=2)).isoformat()}
    assert [
        p["value"] for p in points(hub, "buckets", "load", bucket="1m", agg="max", **window)
    ] == [59.0, 119.0]
    assert [
        p["value"] for p in points(hub, "buckets", "load", bucket="1m", agg="count", **window)
    ] == [60.0, 60.0]
    with hub.api() as api:
        bad = api.get(
            "/api/v1/devices/buckets/telemetry", params={"metric": "load", "bucket": "1x"}
        )
        assert bad.status_code == 422
    client.disconnect()


def test_connectivity_follows_birth_and_last_will(hub: RunningHub) -> None:
    device = hub.add_device("alive")
    client = connect(device, will=True)
    publish(client, topics.status("alive"), status.encode(status.Status("online", "boot-1")))

    def state() -> bool:
        with hub.api() as api:
            online: bool = api.get("/api/v1/devices/alive").json()["online"]
            return online

    wait_until(state)
    client.loop_stop()
    client.socket().close()  # drop without DISCONNECT: the broker publishes the will
    wait_until(lambda: not state(), timeout=60)


def test_admin_token_is_private_and_never_printed(hub: RunningHub) -> None:
    token_file = hub.data_dir / "admin.token"
    assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
    assert stat.S_IMODE((hub.data_dir / "hub.secret").stat().st_mode) == 0o600
    assert hub.token not in hub.log.read_text()
    assert "admin.token (mode 0600)" in hub.log.read_text()
    with hub.api() as api:
        assert api.get("/healthz").json() == {"status": "ok"}
