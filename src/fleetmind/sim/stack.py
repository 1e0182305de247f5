"""A whole FleetMind installation as real processes: ``fleetmind hub`` with its embedded broker
or on a Mosquitto of the stack's own, and ``fleetmind sim`` fleets with durable outboxes. Used to
break things on purpose (chaos runs) and to measure recovery; every part can be stopped, killed
and started again, on the same ports."""

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import httpx

from fleetmind.agent.agent import OUTBOX_FILE
from fleetmind.agent.outbox import Outbox
from fleetmind.devices import model, mosquitto


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _listening(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) == 0


def _wait(ready: Callable[[], bool], what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not ready():
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what} did not come up within {timeout:.0f} s")
        time.sleep(0.1)


def stop(process: subprocess.Popen[bytes], sig: int = signal.SIGTERM) -> None:
    """Send ``sig`` (SIGKILL for a crash) and wait for the process to end."""
    if process.poll() is None:
        process.send_signal(sig)
        process.wait(timeout=60)


class Stack:
    """Broker, hub and fleets below ``work``; ``close()`` stops what still runs."""

    def __init__(self, work: Path, *, mosquitto: str | None = None, embedded: bool = False) -> None:
        binary = mosquitto or shutil.which("mosquitto")
        if binary is None and not embedded:
            raise RuntimeError("this run needs the mosquitto broker")
        self.work = work
        #: the hub runs its embedded broker (which lives and dies with it)
        self.embedded = embedded
        self._mosquitto_binary = binary or ""
        #: Mosquitto's configuration, files and persistence
        self.broker_dir = work / "broker"
        self.broker_dir.mkdir(parents=True, exist_ok=True)
        #: the devices' password listener
        self.mqtt_port = free_port()
        self._tls_port = free_port()
        #: Mosquitto's listener for the hub, and the hub's identity there
        self.hub_port = free_port()
        self._http_port = free_port()
        self.hub_secret = model.new_secret()
        self.broker: subprocess.Popen[bytes] | None = None
        self.hub: subprocess.Popen[bytes] | None = None
        self.url = f"http://127.0.0.1:{self._http_port}"
        self.token = ""

    def _fleetmind(self, *args: str, log: str) -> subprocess.Popen[bytes]:
        with (self.work / log).open("ab") as output:
            return subprocess.Popen(
                [sys.executable, "-m", "fleetmind", *args], stdout=output, stderr=subprocess.STDOUT
            )

    def start_broker(self) -> None:
        """Start Mosquitto (the embedded broker starts with the hub)."""
        if self.embedded:
            return
        directory = self.broker_dir
        if not (directory / mosquitto.PASSWORD_FILE).exists():
            mosquitto.bootstrap(directory, model.hash_secret(self.hub_secret))
        conf = mosquitto.config(str(directory), "127.0.0.1", self.mqtt_port, hub_port=self.hub_port)
        if os.geteuid() == 0:  # stay root, or the broker could not read our private files
            conf += "user root\n"
        (directory / "mosquitto.conf").write_text(conf)
        with (self.work / "broker.log").open("ab") as log:
            self.broker = subprocess.Popen(
                [self._mosquitto_binary, "-c", str(directory / "mosquitto.conf")],
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        (directory / mosquitto.PID_FILE).write_text(f"{self.broker.pid}\n")
        _wait(lambda: _listening(self.mqtt_port) and _listening(self.hub_port), "the broker")

    def start_hub(self) -> None:
        broker_url = f"mqtt://{model.HUB_USERNAME}:{self.hub_secret}@127.0.0.1:{self.hub_port}"
        broker = (
            ["--mqtt-tls-port", str(self._tls_port)]
            if self.embedded
            else ["--broker-url", broker_url, "--mosquitto-dir", str(self.broker_dir)]
        )
        self.hub = self._fleetmind(
            "hub", "--data-dir", str(self.work / "hub"), "--http-port", str(self._http_port),
            "--mqtt-port", str(self.mqtt_port), *broker, log="hub.log",
        )  # fmt: skip
        _wait(self._healthy, "the hub")
        self.token = (self.work / "hub" / "admin.token").read_text().strip()

    def start_sim(
        self, name: str, devices: int, *, rate_hz: float, duration_s: float, drain_s: float = 60
    ) -> subprocess.Popen[bytes]:
        """``fleetmind sim``: devices ``name-0000...``, their outboxes in ``state_dir(name)``."""
        return self._fleetmind(
            "sim", "--devices", str(devices), "--rate", str(rate_hz),
            "--duration", str(duration_s), "--drain-timeout", str(drain_s),
            "--prefix", name, "--json", "--url", self.url, "--token", self.token,
            "--data-dir", str(self.work / name), "--state-dir", str(self.state_dir(name)),
            log=f"{name}.log",
        )  # fmt: skip

    def state_dir(self, fleet: str) -> Path:
        """Where the agents of ``fleet`` keep their state, one directory per device."""
        return self.work / "state" / fleet

    def stop_hub(self, sig: int = signal.SIGTERM) -> None:
        if self.hub is not None:
            stop(self.hub, sig)
            self.hub = None

    def close(self) -> None:
        for process in (self.hub, self.broker):
            if process is not None:
                stop(process)

    def _healthy(self) -> bool:
        try:
            return httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    # -- counting -------------------------------------------------------------------------------

    def outboxes(self) -> tuple[dict[str, int], int, int]:
        """Readings each device accepted (committed to its outbox), dropped, and left unsent."""
        accepted: dict[str, int] = {}
        dropped = left = 0
        for path in sorted((self.work / "state").glob(f"*/*/{OUTBOX_FILE}")):
            outbox = Outbox(path)
            counters = outbox.counters
            accepted[path.parent.name] = counters.readings_accepted
            dropped += (
                counters.readings_dropped_oldest
                + counters.readings_dropped_newest
                + counters.readings_expired
            )
            left += outbox.pending_readings()
            outbox.close()
        return accepted, dropped, left

    def census(self) -> dict[str, dict[str, int]]:
        """The store's rows and distinct readings per device."""
        headers = {"Authorization": f"Bearer {self.token}"}
        response = httpx.get(f"{self.url}/api/v1/stats/store", headers=headers, timeout=60)
        response.raise_for_status()
        census: dict[str, dict[str, int]] = response.json()
        return census

    def settle(self, expected: int, timeout: float = 120) -> tuple[dict[str, int], int]:
        """Distinct readings per device once the store holds ``expected`` rows (or ``timeout``
        passed), and the number of duplicates."""
        deadline = time.monotonic() + timeout
        while True:
            census = self.census()
            if sum(item["rows"] for item in census.values()) >= expected:
                break
            if time.monotonic() > deadline:
                break
            time.sleep(0.5)
        stored = {device: item["distinct"] for device, item in census.items()}
        duplicates = sum(item["rows"] - item["distinct"] for item in census.values())
        return stored, duplicates
