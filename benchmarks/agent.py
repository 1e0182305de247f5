"""The edge agent's footprint and its outbox, against a real Mosquitto.

    python benchmarks/agent.py --json

Mosquitto is set up as FleetMind sets it up, with one device ``bench`` (a password) on the
devices' listener; every phase connects as that device, one connection at a time (Mosquitto takes
a device's username as its client id, so a second connection would close the first).

1. cold start: ``fleetmind agent`` is spawned with a fresh state directory; the time until a
   subscriber on the hub's listener, as the hub, receives its first telemetry pack (baseline:
   starting a bare Python).
2. steady state: the same agent with 4 sensors at 10 Hz; resident memory (RSS) after the warm-up
   (baseline: a bare Python's RSS) and CPU time per 1,000 readings committed to its outbox.
3. outbox writes: packs of 40 readings (one second of 4 sensors at 10 Hz) committed one by one,
   each a durable transaction (baseline: bare SQLite inserts with the same journal settings).
4. replay: a backlog of packs drained through the uplink to the broker, at the default replay
   limit and without it (baseline: the same packs published straight from memory).

Prints one JSON object.
"""

import argparse
import asyncio
import json
import math
import os
import shutil
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from fleetmind.agent.agent import OUTBOX_FILE
from fleetmind.agent.credentials import Credentials
from fleetmind.agent.outbox import Outbox
from fleetmind.agent.uplink import Uplink
from fleetmind.devices import model, mosquitto
from fleetmind.files import write_file
from fleetmind.sim.stack import free_port, stop
from fleetmind.transport.paho_client import PahoClient
from fleetmind.wire import senml, topics

SENSORS = 4
RATE_HZ = 10.0
READINGS_PER_PACK = 40  # one second of 4 sensors at 10 Hz


def pack(seq: int) -> bytes:
    now = time.time()
    readings = [
        senml.Reading(f"s{i % SENSORS}", now + i / RATE_HZ, 20.0 + i % 7, None)
        for i in range(READINGS_PER_PACK)
    ]
    return senml.encode_cbor(readings, boot="benchboot", seq=seq)


class Broker:
    """Mosquitto as FleetMind sets it up (:mod:`fleetmind.devices.mosquitto`), with one device
    ``bench`` on the devices' listener and the hub's identity on the hub's; no hub runs, and
    nothing is persisted."""

    def __init__(self, work: Path) -> None:
        binary = shutil.which("mosquitto")
        if binary is None:
            raise SystemExit("this benchmark needs the mosquitto broker")
        self.port, self.hub_port = free_port(), free_port()
        self.hub_secret = model.new_secret()
        device_secret = model.new_secret()
        self.device = Credentials("127.0.0.1", self.port, "bench", device_secret)
        directory = work / "broker"
        mosquitto.bootstrap(directory, model.hash_secret(self.hub_secret))
        devices = mosquitto.password_file({"bench": model.hash_secret(device_secret)})
        write_file(directory / mosquitto.PASSWORD_FILE, devices, 0o640)
        conf = mosquitto.config(str(directory), "127.0.0.1", self.port, hub_port=self.hub_port)
        conf += "user root\n" if os.geteuid() == 0 else ""
        (directory / "mosquitto.conf").write_text(conf + "persistence false\n")
        self.process = subprocess.Popen(
            [binary, "-c", str(directory / "mosquitto.conf")],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while not all(listening(port) for port in (self.port, self.hub_port)):
            if time.monotonic() > deadline or self.process.poll() is not None:
                raise SystemExit("mosquitto did not start")
            time.sleep(0.02)

    def stop(self) -> None:
        stop(self.process)


def listening(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) == 0


class FirstPack:
    """A subscriber as the hub (its identity, on its listener) that notes when the first
    telemetry pack arrives."""

    def __init__(self, broker: Broker) -> None:
        self.arrived: float | None = None
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="bench-hub")
        self.client.username_pw_set(model.HUB_USERNAME, broker.hub_secret)
        self.client.on_message = self._message
        self.client.connect("127.0.0.1", broker.hub_port)
        self.client.subscribe(topics.telemetry("bench"), qos=1)
        self.client.loop_start()

    def _message(self, *_args: Any) -> None:
        if self.arrived is None:
            self.arrived = time.monotonic()

    def stop(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


def proc_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


def proc_cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def outbox_accepted(path: Path) -> int:
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as db:
        row = db.execute("SELECT value FROM counters WHERE name = 'readings_accepted'").fetchone()
    return int(row[0]) if row else 0


def bare_python() -> tuple[float, float]:
    """Start-up seconds and RSS of a Python that does nothing."""
    started = time.monotonic()
    subprocess.run([sys.executable, "-c", "pass"], check=True)
    start_s = time.monotonic() - started
    process = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(3)"])
    time.sleep(1)
    rss = proc_rss_mb(process.pid)
    process.wait()
    return start_s, rss


def agent_run(broker: Broker, work: Path, steady_s: float) -> dict[str, float]:
    credentials = work / "bench.json"
    write_file(credentials, json.dumps(broker.device.document()))
    state = work / "agent"
    watcher = FirstPack(broker)
    started = time.monotonic()
    agent = subprocess.Popen(
        [sys.executable, "-m", "fleetmind", "agent", "--credentials", str(credentials),
         "--rate", str(RATE_HZ), "--state-dir", str(state)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        while watcher.arrived is None:
            if time.monotonic() - started > 30 or agent.poll() is not None:
                raise SystemExit("the agent published nothing")
            time.sleep(0.005)
        cold_start_s = watcher.arrived - started
        time.sleep(5)  # warm-up
        cpu0, readings0 = proc_cpu_s(agent.pid), outbox_accepted(state / OUTBOX_FILE)
        time.sleep(steady_s)
        cpu1, readings1 = proc_cpu_s(agent.pid), outbox_accepted(state / OUTBOX_FILE)
        rss = proc_rss_mb(agent.pid)
    finally:
        agent.terminate()
        agent.wait()
        watcher.stop()
    return {
        "cold_start_s": round(cold_start_s, 3),
        "rss_mb": round(rss, 1),
        "cpu_s_per_1000_readings": round((cpu1 - cpu0) / (readings1 - readings0) * 1000, 4),
        "steady_readings_per_s": round((readings1 - readings0) / steady_s, 1),
    }


def outbox_writes(work: Path, packs: int) -> dict[str, float]:
    payloads = [pack(seq) for seq in range(packs)]
    outbox = Outbox(work / "writes.db")
    started = time.perf_counter()
    for payload in payloads:
        outbox.put(payload, READINGS_PER_PACK)
    outbox_s = time.perf_counter() - started
    outbox.close()
    db = sqlite3.connect(str(work / "bare.db"), isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=FULL")
    db.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, payload BLOB)")
    started = time.perf_counter()
    for payload in payloads:
        db.execute("BEGIN IMMEDIATE")
        db.execute("INSERT INTO t (payload) VALUES (?)", (payload,))
        db.execute("COMMIT")
    bare_s = time.perf_counter() - started
    db.close()
    return {
        "outbox_writes_per_s": round(packs * READINGS_PER_PACK / outbox_s),
        "baseline_sqlite_writes_per_s": round(packs * READINGS_PER_PACK / bare_s),
    }


async def replay(broker: Broker, work: Path, packs: int, rate: float) -> float:
    """Readings per second to drain ``packs`` through the uplink with replay ``rate``."""
    path = work / f"replay-{rate}.db"
    outbox = Outbox(path)
    for seq in range(packs):
        outbox.put(pack(seq), READINGS_PER_PACK)
    uplink = Uplink(broker.device, outbox, boot_id="benchboot", replay_rate=rate)
    started = time.monotonic()
    task = asyncio.create_task(uplink.run())
    while len(outbox):  # noqa: ASYNC110 - polled
        await asyncio.sleep(0.005)
    seconds = time.monotonic() - started
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    outbox.close()
    return packs * READINGS_PER_PACK / seconds


async def publish_from_memory(broker: Broker, packs: int) -> float:
    payloads = [pack(seq) for seq in range(packs)]
    device = broker.device
    client = PahoClient(
        client_id="bench", username=device.username, password=device.password, max_inflight=20
    )
    started = time.monotonic()
    await client.connect(device.host, device.port)
    window = asyncio.Semaphore(20)
    topic = topics.telemetry(device.username)

    async def one(payload: bytes) -> None:
        async with window:
            await client.publish(topic, payload)

    await asyncio.gather(*(one(p) for p in payloads))
    seconds = time.monotonic() - started
    await client.disconnect()
    return packs * READINGS_PER_PACK / seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--json", action="store_true", help="print JSON only")
    parser.add_argument("--steady-s", type=float, default=20.0)
    parser.add_argument("--packs", type=int, default=3000, help="packs for writes and replay")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        broker = Broker(work)
        try:
            bare_start_s, bare_rss = bare_python()
            result: dict[str, float] = agent_run(broker, work, args.steady_s)
            result |= outbox_writes(work, args.packs)
            result["replay_per_s"] = round(asyncio.run(replay(broker, work, args.packs, 200.0)))
            result["replay_unlimited_per_s"] = round(
                asyncio.run(replay(broker, work, args.packs, math.inf))
            )
            result["baseline_publish_per_s"] = round(
                asyncio.run(publish_from_memory(broker, args.packs))
            )
            result["baseline_python_start_s"] = round(bare_start_s, 3)
            result["baseline_python_rss_mb"] = round(bare_rss, 1)
        finally:
            broker.stop()
    print(json.dumps(result))


if __name__ == "__main__":
    main()
