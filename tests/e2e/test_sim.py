"""End to end: the simulator's agents through the embedded broker into the store, exactly once."""

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from conftest import RunningHub, free_port, start_hub, stop


@pytest.fixture(scope="module")
def fresh_hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningHub]:
    running = start_hub(tmp_path_factory.mktemp("sim") / "data", "--mqtt-port", str(free_port()))
    yield running
    stop(running.process)


def test_every_reading_sent_is_stored_exactly_once(fresh_hub: RunningHub, tmp_path: Path) -> None:
    result = fresh_hub.cli(
        "sim", "--devices", "20", "--rate", "5", "--duration", "4", "--json",
        "--data-dir", str(tmp_path),
    )  # fmt: skip
    summary = json.loads(result.stdout)
    assert summary["devices"] == 20
    assert summary["readings_sent"] >= 20 * 5 * 4 * 4 * 0.9
    assert summary["readings_acked"] == summary["readings_sent"]
    assert summary["readings_failed"] == 0

    stats = fresh_hub.stats()
    assert stats["rows_stored"] == summary["readings_sent"]
    assert stats["rejected"] == {}

    # no duplicates: within every series, each timestamp appears once
    total = 0
    with fresh_hub.api() as api:
        latest = api.get("/api/v1/telemetry/latest").json()
        for device in api.get("/api/v1/devices").json():
            metrics = {item["metric"] for item in latest[device["id"]]}
            assert {"temperature", "humidity", "vibration", "power", "health.rss_mb"} <= metrics
            for metric in metrics:
                series = api.get(
                    f"/api/v1/devices/{device['id']}/telemetry", params={"metric": metric}
                ).json()["points"]
                times = [point["time"] for point in series]
                assert len(times) == len(set(times)), (device["id"], metric)
                total += len(times)
    assert total == summary["readings_sent"]

    # a second run reuses the cached devices rather than creating new ones
    again = json.loads(
        fresh_hub.cli(
            "sim", "--devices", "20", "--rate", "5", "--duration", "1", "--json",
            "--data-dir", str(tmp_path),
        ).stdout
    )  # fmt: skip
    assert again["readings_acked"] == again["readings_sent"] > 0
    assert fresh_hub.stats()["rows_stored"] == summary["readings_sent"] + again["readings_sent"]
    with fresh_hub.api() as api:
        assert len(api.get("/api/v1/devices").json()) == 20
