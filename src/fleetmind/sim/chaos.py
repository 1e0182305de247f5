"""Fault injection: run a fleet through agent crashes (kill -9), a broker outage and a hub
crash, then count what the agents accepted against what the hub stored.

Everything runs as real processes: Mosquitto, ``fleetmind hub`` with the external broker, and
two ``fleetmind sim`` processes with durable outboxes, one of which is killed and restarted.
Accepted readings are counted from the agents' outbox databases (committed counters), stored
ones from the hub's store census; both are whole counts, not samples.
"""

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import httpx

from fleetmind.agent.agent import OUTBOX_FILE
from fleetmind.agent.outbox import Outbox
from fleetmind.devices import model


@dataclass(frozen=True, slots=True)
class ChaosPlan:
    devices: int = 100
    #: of the devices, how many run in the process that is killed -9 and restarted
    crashing: int = 10
    rate_hz: float = 2.0
    duration_s: float = 30.0
    crash_at_s: float = 6.0
    crash_for_s: float = 3.0
    broker_down_at_s: float = 12.0
    broker_down_for_s: float = 4.0
    hub_crash_at_s: float = 20.0


@dataclass(frozen=True, slots=True)
class ChaosResult:
    devices: int
    readings_accepted: int
    readings_stored: int
    readings_lost: int
    duplicates: int
    readings_dropped: int
    readings_left_in_outboxes: int
    drain_s: float
    seconds: float

    def as_dict(self) -> dict[str, float | int]:
        return asdict(self)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _fleetmind(*args: str, log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as output:
        return subprocess.Popen(
            [sys.executable, "-m", "fleetmind", *args], stdout=output, stderr=subprocess.STDOUT
        )


def _stop(process: subprocess.Popen[bytes], sig: int = signal.SIGTERM) -> None:
    if process.poll() is None:
        process.send_signal(sig)
        process.wait(timeout=60)


class Chaos:
    def __init__(self, plan: ChaosPlan, work: Path, *, mosquitto: str | None = None) -> None:
        binary = mosquitto or shutil.which("mosquitto")
        if binary is None:
            raise RuntimeError("the chaos run needs the mosquitto broker")
        self.plan = plan
        self.work = work
        self._mosquitto_binary = binary
        self._broker_dir = work / "broker"
        self._broker_dir.mkdir(parents=True, exist_ok=True)
        self._mqtt_port = _free_port()
        self._http_port = _free_port()
        self._hub_secret = model.new_secret()
        self._broker: subprocess.Popen[bytes] | None = None
        self._hub: subprocess.Popen[bytes] | None = None
        self.url = f"http://127.0.0.1:{self._http_port}"
        self.token = ""

    # -- the parts --------------------------------------------------------------------------

    def _start_broker(self) -> None:
        directory = self._broker_dir
        passwd = directory / "passwd"
        if not passwd.exists():
            hashed = model.hash_secret(self._hub_secret)
            passwd.write_text(model.mosquitto_password_file({model.HUB_USERNAME: hashed}))
            (directory / "acl").write_text(model.mosquitto_acl_file())
        conf = model.mosquitto_config(str(directory), "127.0.0.1", self._mqtt_port)
        if os.geteuid() == 0:  # stay root, or the broker could not read our private files
            conf += "user root\n"
        (directory / "mosquitto.conf").write_text(conf)
        with (self.work / "broker.log").open("ab") as log:
            self._broker = subprocess.Popen(
                [self._mosquitto_binary, "-c", str(directory / "mosquitto.conf")],
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        (directory / "mosquitto.pid").write_text(f"{self._broker.pid}\n")
        self._wait(lambda: self._listening(self._mqtt_port), "the broker")

    def _start_hub(self) -> None:
        broker_url = f"mqtt://{model.HUB_USERNAME}:{self._hub_secret}@127.0.0.1:{self._mqtt_port}"
        self._hub = _fleetmind(
            "hub", "--data-dir", str(self.work / "hub"), "--http-port", str(self._http_port),
            "--broker-url", broker_url, "--mosquitto-dir", str(self._broker_dir),
            log=self.work / "hub.log",
        )  # fmt: skip
        self._wait(self._healthy, "the hub")
        self.token = (self.work / "hub" / "admin.token").read_text().strip()

    def _start_sim(self, name: str, devices: int, duration: float) -> subprocess.Popen[bytes]:
        return _fleetmind(
            "sim", "--devices", str(devices), "--rate", str(self.plan.rate_hz),
            "--duration", str(duration), "--prefix", name, "--json",
            "--url", self.url, "--token", self.token,
            "--data-dir", str(self.work / name), "--state-dir", str(self.work / "state" / name),
            log=self.work / f"{name}.log",
        )  # fmt: skip

    def _healthy(self) -> bool:
        try:
            return httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    @staticmethod
    def _listening(port: int) -> bool:
        with socket.socket() as probe:
            return probe.connect_ex(("127.0.0.1", port)) == 0

    @staticmethod
    def _wait(ready: Callable[[], bool], what: str, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while not ready():
            if time.monotonic() > deadline:
                raise RuntimeError(f"{what} did not come up within {timeout:.0f} s")
            time.sleep(0.1)

    # -- the run ------------------------------------------------------------------------------

    def run(self, step: Callable[[str], None] = lambda _: None) -> ChaosResult:
        plan = self.plan
        started = time.monotonic()
        self._start_broker()
        self._start_hub()
        try:
            steady = self._start_sim("steady", plan.devices - plan.crashing, plan.duration_s)
            crashing = self._start_sim("crashing", plan.crashing, plan.duration_s)
            at = time.monotonic()

            def until(offset: float) -> None:
                time.sleep(max(0.0, at + offset - time.monotonic()))

            until(plan.crash_at_s)
            step(f"kill -9 the process of {plan.crashing} agents")
            _stop(crashing, signal.SIGKILL)
            until(plan.crash_at_s + plan.crash_for_s)
            step("restart them from their outboxes")
            remaining = plan.duration_s - plan.crash_at_s - plan.crash_for_s
            crashing = self._start_sim("crashing", plan.crashing, max(1.0, remaining))
            until(plan.broker_down_at_s)
            step(f"stop the broker for {plan.broker_down_for_s:.0f} s")
            assert self._broker is not None  # noqa: S101 - started above
            _stop(self._broker)
            until(plan.broker_down_at_s + plan.broker_down_for_s)
            step("start the broker again")
            self._start_broker()
            until(plan.hub_crash_at_s)
            step("kill -9 the hub and start it again")
            assert self._hub is not None  # noqa: S101 - started above
            _stop(self._hub, signal.SIGKILL)
            self._start_hub()
            step("wait for the agents to drain their outboxes")
            drain_started = time.monotonic()
            for sim in (steady, crashing):
                sim.wait(timeout=plan.duration_s + 180)
            accepted, dropped, left = self._outboxes()
            stored, duplicates = self._settle(accepted)
            drain_s = time.monotonic() - drain_started
        finally:
            if self._hub is not None:
                _stop(self._hub)
            if self._broker is not None:
                _stop(self._broker)
        return ChaosResult(
            devices=plan.devices,
            readings_accepted=sum(accepted.values()),
            readings_stored=sum(stored.values()),
            readings_lost=sum(max(0, n - stored.get(d, 0)) for d, n in accepted.items()),
            duplicates=duplicates,
            readings_dropped=dropped,
            readings_left_in_outboxes=left,
            drain_s=round(drain_s, 2),
            seconds=round(time.monotonic() - started, 2),
        )

    def _outboxes(self) -> tuple[dict[str, int], int, int]:
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

    def _settle(self, accepted: dict[str, int], timeout: float = 120) -> tuple[dict[str, int], int]:
        """Rows per device once the store holds every accepted reading (or ``timeout`` passed),
        and the number of duplicates."""
        headers = {"Authorization": f"Bearer {self.token}"}
        deadline = time.monotonic() + timeout
        while True:
            census = httpx.get(f"{self.url}/api/v1/stats/store", headers=headers, timeout=30).json()
            total = sum(item["rows"] for item in census.values())
            if total >= sum(accepted.values()) or time.monotonic() > deadline:
                break
            time.sleep(1)
        stored = {device: item["distinct"] for device, item in census.items()}
        duplicates = sum(item["rows"] - item["distinct"] for item in census.values())
        return stored, duplicates
