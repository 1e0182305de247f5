"""The hub against an external Mosquitto: it keeps the broker's password and ACL files current."""

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from conftest import (
    Mosquitto,
    RunningHub,
    connect,
    mosquitto_for_hub,
    publish,
    start_hub,
    stop,
    wait_until,
)
from fleetmind.devices import model
from fleetmind.wire import senml, topics


@dataclass
class Setup:
    hub: RunningHub
    mosquitto: Mosquitto


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Setup]:
    broker_dir = tmp_path_factory.mktemp("mosquitto")
    secret = model.new_secret()
    mosquitto = mosquitto_for_hub(broker_dir, secret)
    hub = start_hub(
        tmp_path_factory.mktemp("hub") / "data",
        "--broker-url", mosquitto.hub_url(secret), "--mqtt-port", str(mosquitto.port),
        "--mosquitto-dir", str(broker_dir),
    )  # fmt: skip
    yield Setup(hub, mosquitto)
    stop(hub.process)
    stop(mosquitto.process)


def wait_for_password(setup: Setup, device_id: str) -> None:
    """The hub rewrote passwd and signalled Mosquitto; give it a moment to reload."""
    passwd = setup.mosquitto.directory / "passwd"
    wait_until(lambda: f"{device_id}:" in passwd.read_text())
    time.sleep(0.5)


def test_a_new_device_can_publish_at_once_and_only_its_own(setup: Setup) -> None:
    hub = setup.hub
    device = hub.add_device("m1")
    hub.add_device("m2")
    assert device["mqtt"]["port"] == setup.mosquitto.port  # type: ignore[index]
    wait_for_password(setup, "m2")
    client = connect(device)
    now = time.time()
    forged = senml.encode_cbor([senml.Reading("temp", now, 666.0)], boot="b", seq=0)
    publish(client, topics.telemetry("m2"), forged)
    publish(client, topics.telemetry("m1"), senml.encode_cbor([senml.Reading("temp", now, 21.0)]))
    with hub.api() as api:

        def stored() -> list[object]:
            points: list[object] = api.get(
                "/api/v1/devices/m1/telemetry", params={"metric": "temp"}
            ).json()["points"]
            return points

        wait_until(stored)
        assert (
            api.get("/api/v1/devices/m2/telemetry", params={"metric": "temp"}).json()["points"]
            == []
        )
    client.disconnect()


def test_a_deleted_device_is_locked_out(setup: Setup) -> None:
    device = setup.hub.add_device("gone")
    wait_for_password(setup, "gone")
    connect(device).disconnect()
    setup.hub.cli("device", "delete", "gone")
    passwd = setup.mosquitto.directory / "passwd"
    wait_until(lambda: "gone:" not in passwd.read_text())
    time.sleep(0.5)
    with pytest.raises(AssertionError):  # never connects
        connect(device, timeout=3)


def test_simulated_fleet_through_mosquitto_is_stored_exactly_once(
    setup: Setup, tmp_path: Path
) -> None:
    before = setup.hub.stats()["rows_stored"]
    result = setup.hub.cli(
        "sim", "--devices", "10", "--rate", "5", "--duration", "3", "--json", "--prefix", "msim",
        "--data-dir", str(tmp_path),
    )  # fmt: skip
    summary = json.loads(result.stdout)
    assert summary["readings_sent"] > 0
    assert summary["readings_acked"] == summary["readings_sent"]
    after = setup.hub.stats()["rows_stored"]
    assert after - before == summary["readings_sent"]  # type: ignore[operator]
