"""Hub ingest throughput and latency, beside a raw MQTT pass-through through the same broker.

    python benchmarks/ingest.py --broker mosquitto --json

Workload: 100 devices, each message one SenML CBOR pack of 4 metrics, QoS 1.

1. raw: a plain paho subscriber counts the messages through the broker (no hub running).
2. durable: the hub ingests the same number of messages; the rate is counted from the store
   (rows stored / 4), from the first publish to the moment the last row is queryable.
3. latency: messages at a fixed rate; a message is queryable when the store's row count covers it
   (the hub commits in arrival order); the count is polled every few milliseconds.

Prints one JSON object.
"""

import argparse
import asyncio
import json
import multiprocessing
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from fleetmind.agent.credentials import Credentials
from fleetmind.devices import model
from fleetmind.hub.broker import EmbeddedBroker
from fleetmind.sim.stack import free_port
from fleetmind.transport.paho import AsyncClient
from fleetmind.wire import senml, topics

DEVICES = 100
METRICS = ("temperature", "humidity", "vibration", "power")
WINDOW = 200  # QoS 1 messages in flight per device connection


def wait_port(port: int, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise RuntimeError(f"nothing listens on {port}")


def packs(count: int, boot: str, device: int = 0, devices: int = 1) -> list[bytes]:
    """Packs for messages ``device, device + devices, ...`` below ``count``: message i comes
    from device i % DEVICES with sequence number i // DEVICES."""
    now = time.time()
    return [
        senml.encode_cbor(
            [senml.Reading(metric, now + i * 1e-4, 20.0 + i % 7, None) for metric in METRICS],
            boot=boot,
            seq=i // DEVICES,
        )
        for i in range(device, count, devices)
    ]


async def connect_all(devices: list[Credentials]) -> list[AsyncClient]:
    clients = []
    for device in devices:
        client = AsyncClient(
            client_id=f"bench-{device.username}",
            username=device.username,
            password=device.password,
            max_inflight=WINDOW,
        )
        await client.connect(device.host, device.port)
        clients.append(client)
    return clients


async def _publish_share(devices: list[Credentials], count: int, boot: str, go: float) -> float:
    clients = await connect_all(devices)
    own = [packs(count, boot, int(d.username.split("-")[1]), DEVICES) for d in devices]
    await asyncio.sleep(max(0.0, go - time.time()))
    started = time.monotonic()

    async def one_device(client: AsyncClient, device: Credentials, payloads: list[bytes]) -> None:
        topic = topics.telemetry(device.username)
        for start in range(0, len(payloads), WINDOW):
            batch = payloads[start : start + WINDOW]
            await asyncio.gather(*(client.publish(topic, p) for p in batch))

    await asyncio.gather(*(one_device(*item) for item in zip(clients, devices, own, strict=True)))
    for client in clients:
        client.abort()
    return started


def _publisher(devices: list[Credentials], count: int, boot: str, go: float) -> float:
    return asyncio.run(_publish_share(devices, count, boot, go))


def publish_all(devices: list[Credentials], count: int, boot: str, processes: int) -> float:
    """Publish ``count`` messages from every device, spread over ``processes`` publisher
    processes that start together; return the (system-wide monotonic) time of the first."""
    go = time.time() + 3 + 0.02 * len(devices)
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(processes, mp_context=context) as pool:
        shares = [devices[index::processes] for index in range(processes)]
        starts = list(
            pool.map(_publisher, shares, [count] * processes, [boot] * processes, [go] * processes)
        )
    return min(starts)


async def publish_at_rate(
    clients: list[AsyncClient], client_names: list[str], payloads: list[bytes], rate: float
) -> list[float]:
    """Publish message i at ``start + i / rate``; return when each was handed to the socket."""
    sent: list[float] = []
    pending: set[asyncio.Task[None]] = set()
    start = time.monotonic() + 0.1
    for i, payload in enumerate(payloads):
        delay = start + i / rate - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        client = clients[i % DEVICES]
        topic = topics.telemetry(client_names[i % DEVICES])
        task = asyncio.create_task(client.publish(topic, payload))
        sent.append(time.monotonic())
        pending.add(task)
        task.add_done_callback(pending.discard)
    await asyncio.gather(*pending)
    return sent


class Hub:
    def __init__(self, data_dir: Path, *args: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = (data_dir.parent / "hub.log").open("ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "fleetmind", "hub", "--data-dir", str(data_dir),
             "--http-port", str(self.port), "--log-level", "WARNING", *args],
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )  # fmt: skip
        deadline = time.monotonic() + 60
        while True:
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("the hub did not start; see hub.log")
            try:
                if httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        token = (data_dir / "admin.token").read_text().strip()
        self.api = httpx.Client(
            base_url=self.url, headers={"Authorization": f"Bearer {token}"}, timeout=30
        )

    def rows(self) -> int:
        rows: int = self.api.get("/api/v1/stats/ingest").json()["rows_stored"]
        return rows

    def stop(self) -> None:
        self.api.close()
        self.process.send_signal(signal.SIGTERM)
        self.process.wait(timeout=60)


class Broker:
    """The broker under test, standalone (for the raw pass-through) or beside the hub."""

    def __init__(self, kind: str, work: Path) -> None:
        self.kind = kind
        self.work = work
        self.port = free_port()
        self.hub_secret = model.new_secret()
        self.directory = work / "mosquitto"
        self.process: subprocess.Popen[bytes] | None = None
        self.embedded: EmbeddedBroker | None = None
        if kind == "mosquitto":
            self.directory.mkdir()
            hashed = model.hash_secret(self.hub_secret)
            (self.directory / "passwd").write_text(
                model.mosquitto_password_file({model.HUB_USERNAME: hashed})
            )
            (self.directory / "acl").write_text(model.mosquitto_acl_file())
            conf = model.mosquitto_config(str(self.directory), "127.0.0.1", self.port)
            (self.directory / "mosquitto.conf").write_text(conf + "user root\n")

    def hub_args(self) -> list[str]:
        if self.kind == "embedded":
            return ["--mqtt-port", str(self.port)]
        url = f"mqtt://{model.HUB_USERNAME}:{self.hub_secret}@127.0.0.1:{self.port}"
        return ["--broker-url", url, "--mosquitto-dir", str(self.directory)]

    def start_mosquitto(self) -> None:
        binary = shutil.which("mosquitto")
        if binary is None:
            raise SystemExit("mosquitto is not installed")
        self.process = subprocess.Popen(
            [binary, "-c", str(self.directory / "mosquitto.conf")],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        (self.directory / "mosquitto.pid").write_text(f"{self.process.pid}\n")
        wait_port(self.port)

    def stop_mosquitto(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait()
            self.process = None

    def start_standalone(self, data_dir: Path) -> None:
        """The broker without the hub (fresh sessions), for the raw pass-through."""
        if self.kind == "mosquitto":
            self.start_mosquitto()
            return
        registry = f"sqlite:///{(data_dir / 'registry.db').resolve()}"
        secret = (data_dir / "hub.secret").read_text().strip()
        self.hub_secret = secret
        self.embedded = EmbeddedBroker("127.0.0.1", self.port, registry, model.hash_secret(secret))
        self.embedded.start()
        wait_port(self.port)

    def stop_standalone(self) -> None:
        if self.embedded is not None:
            self.embedded.stop()
            self.embedded = None
        self.stop_mosquitto()


def raw_subscriber(broker: Broker, expected: int) -> tuple[threading.Event, list[float]]:
    """A plain paho subscriber as the hub's identity; returns (all received, [last arrival])."""
    done = threading.Event()
    last = [0.0]
    count = [0]
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="bench-raw")
    client.username_pw_set(model.HUB_USERNAME, broker.hub_secret)
    client.max_inflight_messages_set(65535)

    def on_message(_c: Any, _u: Any, _m: Any) -> None:
        count[0] += 1
        if count[0] == expected:
            last[0] = time.monotonic()
            done.set()

    client.on_message = on_message
    client.on_connect = lambda c, *_: c.subscribe(topics.UPLINK_FILTER, qos=1)
    client.connect("127.0.0.1", broker.port)
    client.loop_start()
    time.sleep(1)
    done.client = client  # type: ignore[attr-defined]
    done.count = count  # type: ignore[attr-defined]
    return done, last


def raw_phase(broker: Broker, devices: list[Credentials], messages: int, publishers: int) -> float:
    """Messages per second through the broker alone, to a plain paho subscriber."""
    done, last = raw_subscriber(broker, messages)
    started = publish_all(devices, messages, "raw", publishers)
    if not done.wait(120):
        raise RuntimeError(f"the raw subscriber received {done.count[0]} of {messages} messages")  # type: ignore[attr-defined]
    done.client.loop_stop()  # type: ignore[attr-defined]
    done.client.disconnect()  # type: ignore[attr-defined]
    return messages / (last[0] - started)


def durable_phase(hub: Hub, devices: list[Credentials], messages: int, publishers: int) -> float:
    """Messages per second from the first publish until the last row is in the store."""
    base = hub.rows()
    started = publish_all(devices, messages, "durable", publishers)
    target = base + messages * len(METRICS)
    while hub.rows() < target:
        time.sleep(0.05)  # polling costs the hub CPU; 50 ms is well below the run's length
    return messages / (time.monotonic() - started)


def latency_phase(hub: Hub, devices: list[Credentials], rate: float, seconds: float) -> np.ndarray:
    """Publish-to-queryable latency (ms) of every message sent at ``rate``."""
    count = int(rate * seconds)
    base = hub.rows()
    arrivals: list[tuple[float, int]] = []

    def poll() -> None:
        deadline = time.monotonic() + seconds + 120
        with httpx.Client(base_url=hub.url, headers=hub.api.headers, timeout=30) as api:
            while time.monotonic() < deadline:
                rows = api.get("/api/v1/stats/ingest").json()["rows_stored"] - base
                arrivals.append((time.monotonic(), rows))
                if rows >= count * len(METRICS):
                    return
                time.sleep(0.002)

    async def publish() -> list[float]:
        clients = await connect_all(devices)
        names = [device.username for device in devices]
        sent = await publish_at_rate(clients, names, packs(count, "latency"), rate)
        for client in clients:
            client.abort()
        return sent

    poller = threading.Thread(target=poll)
    poller.start()
    sent = asyncio.run(publish())
    poller.join()
    times = np.array([moment for moment, _ in arrivals])
    covered = np.array([rows for _, rows in arrivals]) // len(METRICS)
    if covered[-1] < count:
        raise RuntimeError(f"only {covered[-1]} of {count} messages became queryable")
    # the first poll whose count covers message i
    first = np.searchsorted(covered, np.arange(1, count + 1), side="left")
    return (times[first] - np.array(sent)) * 1000


def run(
    kind: str, messages: int, rate: float, latency_s: float, publishers: int, work: Path
) -> dict[str, Any]:
    broker = Broker(kind, work)
    data_dir = work / "hub"
    if kind == "mosquitto":
        broker.start_mosquitto()
    hub = Hub(data_dir, *broker.hub_args())
    devices = [
        Credentials.from_device(
            hub.api.post("/api/v1/devices", json={"name": f"bench-{index:03d}"}).json()
        )
        for index in range(DEVICES)
    ]
    hub.stop()
    broker.stop_mosquitto()
    # forget the hub's persisted session: the raw phase runs without it
    (broker.directory / "mosquitto.db").unlink(missing_ok=True)

    broker.start_standalone(data_dir)
    raw_rate = raw_phase(broker, devices, messages, publishers)
    broker.stop_standalone()

    if kind == "mosquitto":
        broker.start_mosquitto()
    hub = Hub(data_dir, *broker.hub_args())
    time.sleep(1)  # Mosquitto reloads the files the hub rewrote
    durable_rate = durable_phase(hub, devices, messages, publishers)
    latencies = latency_phase(hub, devices, rate, latency_s)
    hub.stop()
    broker.stop_standalone()
    return {
        "broker": kind,
        "devices": DEVICES,
        "messages": messages,
        "points_per_msg": len(METRICS),
        "raw_passthrough_msgs_per_s": round(raw_rate),
        "hub_durable_msgs_per_s": round(durable_rate),
        "hub_durable_points_per_s": round(durable_rate * len(METRICS)),
        "ratio": round(durable_rate / raw_rate, 3),
        "latency_rate_msgs_per_s": rate,
        "latency_messages": len(latencies),
        "latency_ms_p50": round(float(np.percentile(latencies, 50)), 1),
        "latency_ms_p99": round(float(np.percentile(latencies, 99)), 1),
        "publisher_processes": publishers,
        "cpu_count": os.cpu_count(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--broker", choices=["embedded", "mosquitto"], default="mosquitto")
    parser.add_argument("--messages", type=int, help="messages per throughput phase")
    parser.add_argument("--rate", type=float, default=2000, help="latency phase, messages/s")
    parser.add_argument("--latency-seconds", type=float, default=10)
    parser.add_argument("--publishers", type=int, default=2, help="publisher processes")
    parser.add_argument("--json", action="store_true", help="print JSON only (the default)")
    args = parser.parse_args()
    messages = args.messages or (100_000 if args.broker == "mosquitto" else 10_000)
    with tempfile.TemporaryDirectory(prefix="fleetmind-bench-") as work:
        result = run(
            args.broker, messages, args.rate, args.latency_seconds, args.publishers, Path(work)
        )
    print(json.dumps(result))


if __name__ == "__main__":
    main()
