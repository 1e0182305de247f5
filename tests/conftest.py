"""Shared fixtures: free ports, a real hub in a child process, Mosquitto instances of our own.

A test that needs a program the machine lacks skips with the reason, except under ``CI=true``,
where it fails: CI installs everything the suite needs.
"""

import json
import os
import secrets
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from fleetmind.devices import model, mosquitto
from fleetmind.devices.service import DeviceService
from fleetmind.wire import status, topics


def require(program: str) -> str:
    """The path of ``program``; skip without it (fail in CI)."""
    path = shutil.which(program)
    if path is None:
        message = f"{program} is not installed (the CI installs it from the system packages)"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    return path


#: the PostgreSQL the registry tests use (trust auth); each test gets a schema of its own
POSTGRES_URL = os.environ.get(
    "FLEETMIND_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)


@contextmanager
def postgres_schema(prefix: str = "t") -> Iterator[str]:
    """The URL of a new schema in the test PostgreSQL, dropped afterwards; skip without a server
    (fail in CI)."""
    import sqlalchemy as sa

    schema = f"{prefix}_{secrets.token_hex(6)}"
    try:
        admin = sa.create_engine(POSTGRES_URL, connect_args={"connect_timeout": 3})
        with admin.begin() as connection:
            connection.execute(sa.text(f"CREATE SCHEMA {schema}"))
    except (ImportError, sa.exc.OperationalError) as exc:
        reason = str(getattr(exc, "orig", exc)).strip().splitlines()[0]
        message = f"no PostgreSQL at {POSTGRES_URL}: {reason}"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    try:
        yield f"{POSTGRES_URL}?options=-csearch_path%3D{schema}"
    finally:
        with admin.begin() as connection:
            connection.execute(sa.text(f"DROP SCHEMA {schema} CASCADE"))
        admin.dispose()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def wait_until(predicate, timeout: float = 20.0, interval: float = 0.1):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = predicate()
        if result:
            return result
        time.sleep(interval)
    raise AssertionError(f"condition not met within {timeout} s")


@dataclass
class RunningHub:
    url: str
    token: str
    data_dir: Path
    process: subprocess.Popen[bytes]
    log: Path

    #: the hub's CA, trusted for HTTPS (production)
    ca: Path | None = None

    def verify(self) -> ssl.SSLContext | bool:
        return ssl.create_default_context(cafile=self.ca) if self.ca else True

    def api(self) -> httpx.Client:
        return httpx.Client(
            base_url=self.url,
            headers={"Authorization": f"Bearer {self.token}"},
            timeout=30,
            verify=self.verify(),
        )

    def add_device(self, name: str) -> dict[str, object]:
        with self.api() as client:
            response = client.post("/api/v1/devices", json={"name": name})
            response.raise_for_status()
            device: dict[str, object] = response.json()
            return device

    def stats(self) -> dict[str, object]:
        with self.api() as client:
            stats: dict[str, object] = client.get("/api/v1/stats/ingest").json()
            return stats

    def cli(
        self, *args: str, check: bool = True, stdin: str = "", token: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        env = os.environ | {"FLEETMIND_URL": self.url, "FLEETMIND_TOKEN": token or self.token}
        return subprocess.run(
            [sys.executable, "-m", "fleetmind", *args],
            env=env,
            input=stdin,
            capture_output=True,
            text=True,
            check=check,
            timeout=120,
        )


def start_hub(data_dir: Path, *extra: str) -> RunningHub:
    http_port = free_port()
    log = data_dir.with_name(data_dir.name + ".log")
    data_dir.mkdir(parents=True, exist_ok=True)
    with log.open("wb") as output:
        process = subprocess.Popen(
            [sys.executable, "-m", "fleetmind", "hub", "--data-dir", str(data_dir),
             "--http-port", str(http_port), *extra],
            stdout=output,
            stderr=subprocess.STDOUT,
        )  # fmt: skip
    production = "--production" in extra
    url = f"{'https' if production else 'http'}://127.0.0.1:{http_port}"
    ca = data_dir / "ca" / "ca.crt" if production else None

    def healthy() -> bool:
        if process.poll() is not None:
            raise AssertionError(f"hub exited: {log.read_text()[-3000:]}")
        if ca is not None and not ca.exists():
            return False
        verify = ssl.create_default_context(cafile=ca) if ca else True
        try:
            return httpx.get(f"{url}/healthz", timeout=1, verify=verify).status_code == 200
        except httpx.HTTPError:
            return False

    wait_until(healthy, timeout=60)
    token = (data_dir / "admin.token").read_text().strip()
    return RunningHub(url, token, data_dir, process, log, ca)


def stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningHub]:
    """A hub with the embedded broker, on free ports, for the tests of one module."""
    running = start_hub(
        tmp_path_factory.mktemp("hub") / "data",
        "--mqtt-port", str(free_port()), "--mqtt-tls-port", str(free_port()),
    )  # fmt: skip
    yield running
    stop(running.process)


@dataclass
class Mosquitto:
    #: the devices' password listener
    port: int
    #: the hub's own listener (127.0.0.1)
    hub_port: int
    directory: Path
    process: subprocess.Popen[bytes]

    def hub_url(self, secret: str) -> str:
        """``--broker-url`` for a hub whose secret is ``secret``."""
        return f"mqtt://{model.HUB_USERNAME}:{secret}@127.0.0.1:{self.hub_port}"


def mosquitto_conf(
    directory: Path, port: int, hub_port: int, tls_port: int | None = None, **options: int
) -> Path:
    conf = directory / "mosquitto.conf"
    text = mosquitto.config(
        str(directory), "127.0.0.1", port, hub_port=hub_port, tls_port=tls_port, **options
    )
    # "user root" is read only when started as root: it keeps access to our files
    conf.write_text(text + "user root\n")
    return conf


def start_mosquitto(
    directory: Path, port: int, tls_port: int | None = None, **options: int
) -> Mosquitto:
    """Mosquitto with FleetMind's files in ``directory`` (written before)."""
    binary = require("mosquitto")
    hub_port = free_port()
    conf = mosquitto_conf(directory, port, hub_port, tls_port, **options)
    with (directory / "mosquitto.log").open("wb") as log:  # the broker keeps its own handle
        process = subprocess.Popen([binary, "-c", str(conf)], stdout=log, stderr=subprocess.STDOUT)
    (directory / mosquitto.PID_FILE).write_text(f"{process.pid}\n")

    def listening() -> bool:  # on every listener: Mosquitto opens them one after the other
        if process.poll() is not None:
            raise AssertionError((directory / "mosquitto.log").read_text())
        for each in (port, hub_port, tls_port):
            with socket.socket() as probe:
                if each is not None and probe.connect_ex(("127.0.0.1", each)) != 0:
                    return False
        return True

    wait_until(listening, timeout=10)
    return Mosquitto(port, hub_port, directory, process)


def mosquitto_for_hub(directory: Path, hub_secret: str, tls_port: int | None = None) -> Mosquitto:
    """Mosquitto for a hub that will keep its files current (``--mosquitto-dir``)."""
    mosquitto.bootstrap(directory, model.hash_secret(hub_secret))
    return start_mosquitto(directory, free_port(), tls_port)


def mosquitto_for(
    directory: Path,
    devices: DeviceService,
    hub_secret: str,
    tls_port: int | None = None,
    **options: int,
) -> Mosquitto:
    """Mosquitto for the registry of ``devices``, with the files a hub would write."""
    mosquitto.write_files(directory, devices, model.hash_secret(hub_secret))
    if devices.ca is not None:
        devices.ca.server_files(directory, ["127.0.0.1"])
    return start_mosquitto(directory, free_port(), tls_port, **options)


class HubSink:
    """The hub's identity on a broker's hub listener: subscribed to every device's uplink, it
    acknowledges what arrives (as the hub does once it has committed it). It reconnects by
    itself when the broker comes back."""

    def __init__(self, port: int, secret: str) -> None:
        self.received: list[tuple[str, bytes]] = []
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="_hub-sink")
        self.client.username_pw_set(model.HUB_USERNAME, secret)
        self.client.reconnect_delay_set(min_delay=0.1, max_delay=0.5)
        self.client.on_connect = lambda c, *_: c.subscribe(topics.UPLINK_FILTER, qos=1)
        self.client.on_message = lambda _c, _u, m: self.received.append((m.topic, m.payload))
        self.client.connect_async("127.0.0.1", port)
        self.client.loop_start()

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def device_json(device: dict[str, object]) -> str:
    return json.dumps(device)


def connect(device: dict[str, object], *, will: bool = False, timeout: float = 20) -> mqtt.Client:
    creds = device["mqtt"]
    assert isinstance(creds, dict)
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=str(device["id"]))
    client.username_pw_set(creds["username"], creds["password"])
    if will:
        offline = status.encode(status.Status("offline", "boot-1"))
        client.will_set(topics.status(str(device["id"])), offline, qos=1, retain=True)
    client.connect(creds["host"], creds["port"])
    client.loop_start()
    wait_until(client.is_connected, timeout=timeout)
    return client


def publish(client: mqtt.Client, topic: str, payload: bytes) -> None:
    client.publish(topic, payload, qos=1).wait_for_publish(timeout=10)


def publish_as(device: dict[str, object], topic: str, payload: bytes) -> None:
    client = connect(device)
    publish(client, topic, payload)
    client.disconnect()
    client.loop_stop()
