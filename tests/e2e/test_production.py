"""Production mode: nothing in plaintext. The API answers only over HTTPS, MQTT only over mutual
TLS (the hub's own connection too), and unsafe settings stop the hub at start."""

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from conftest import RunningHub, free_port, start_hub, stop, wait_until


@pytest.fixture(scope="module")
def production_hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningHub]:
    running = start_hub(
        tmp_path_factory.mktemp("production") / "data",
        "--production", "--mqtt-tls-port", str(free_port()),
    )  # fmt: skip
    yield running
    stop(running.process)


def test_the_api_answers_only_over_https(production_hub: RunningHub) -> None:
    assert production_hub.url.startswith("https://")
    with production_hub.api() as api:
        health = api.get("/healthz")
        assert health.json() == {"status": "ok"}  # ingest is up over mutual TLS
        assert health.headers["strict-transport-security"] == "max-age=31536000"
    plain = production_hub.url.replace("https://", "http://")
    with pytest.raises(httpx.HTTPError):
        httpx.get(f"{plain}/healthz", timeout=5)
    with pytest.raises(httpx.HTTPError):  # a client that does not trust the hub's CA
        httpx.get(f"{production_hub.url}/healthz", timeout=5)
    assert "MQTT broker:" not in production_hub.log.read_text()  # no password listener


def test_a_device_gets_only_a_certificate_and_its_data_arrives(
    production_hub: RunningHub, tmp_path: Path
) -> None:
    with production_hub.api() as api:
        created = api.post("/api/v1/devices", json={"name": "prod-1"}).json()
    assert created["mqtt"] is None and created["mqtts"]["private_key"]
    (tmp_path / "prod-1.json").write_text(json.dumps(created))
    agent = subprocess.Popen(
        [sys.executable, "-m", "fleetmind", "agent", "--credentials", str(tmp_path / "prod-1.json"),
         "--state-dir", str(tmp_path / "state"), "--rate", "5"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        with production_hub.api() as api:

            def latest() -> dict[str, list[object]]:
                found: dict[str, list[object]] = api.get("/api/v1/telemetry/latest").json()
                return found

            wait_until(lambda: len(latest().get("prod-1", [])) >= 4, timeout=30)
    finally:
        stop(agent)


def test_a_mosquitto_that_allows_anonymous_clients_is_refused(tmp_path: Path) -> None:
    broker = tmp_path / "broker"
    broker.mkdir()
    (broker / "mosquitto.conf").write_text("listener 8883\nallow_anonymous true  # for testing\n")
    result = subprocess.run(
        [sys.executable, "-m", "fleetmind", "hub", "--production", "--data-dir", str(tmp_path),
         "--broker-url", "mqtts://127.0.0.1:8883", "--mqtt-tls-port", "8883",
         "--mosquitto-dir", str(broker), "--http-port", str(free_port())],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode == 1
    assert "refuses anonymous MQTT" in result.stderr


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["--broker-url", "mqtt://127.0.0.1:1883", "--mqtt-tls-port", "8883"], "plaintext MQTT"),
        (["--broker-url", "mqtts://127.0.0.1:8883"], "--mqtt-tls-port"),
        (["--mqtt-port", "1883"], "no plaintext MQTT listener"),
        (["--ca-cert", "/nonexistent/ca.crt", "--ca-key", "/nonexistent/ca.key"], "does not exist"),
        (["--https-cert", "/nonexistent/api.crt"], "both --https-cert and --https-key"),
    ],
)
def test_unsafe_settings_stop_the_hub_at_start(
    tmp_path: Path, options: list[str], message: str
) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "fleetmind", "hub", "--production", "--data-dir", str(tmp_path),
         "--http-port", str(free_port()), *options],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode == 1, result.stdout
    assert message in result.stderr and "Traceback" not in result.stderr
