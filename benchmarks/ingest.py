"""Hub ingest throughput and latency, beside a raw MQTT pass-through through the same broker.

    python benchmarks/ingest.py --broker mosquitto --json

Workload: 100 devices, each message one SenML CBOR pack of 4 metrics, QoS 1. The devices are
added through the hub's API and connect with their password (the ``mqtts`` part of their
credentials is dropped), in every phase and on both brokers, so the phases differ only in what
takes the messages.

1. raw: a plain paho subscriber, connected as the hub's identity (``_hub``) on the hub's own
   listener and subscribed to the uplink tree as the hub is, counts the messages through the
   broker (no hub running; paho acknowledges each message as it arrives). The embedded broker
   runs as the hub runs it (the devices' port, the hub's listener on the loopback address, the
   registry and the hub's secret; not the mutual-TLS listener, which no device here uses) and
   acknowledges a device's message only once the hub - here the raw subscriber - has it, so
   both phases pay for that round trip. Mosquitto acknowledges once it holds the message.
2. durable: the hub ingests the same number of messages; the rate is counted from the store
   (rows stored / 4), from the first publish to the moment the last row is queryable.
3. latency: messages at a fixed rate; a message is queryable when the store's row count covers it
   (the hub commits in arrival order); the count is polled every few milliseconds.

Mosquitto, and the hub on it, run as :class:`~fleetmind.sim.stack.Stack` runs them.

Prints one JSON object.
"""

import argparse
import asyncio
import json
import multiprocessing
import os
import socket
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
from fleetmind.sim.stack import Stack, free_port, stop
from fleetmind.transport.address import BrokerAddress
from fleetmind.transport.paho_client import PahoClient
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


def packs(count: int, boot: str, fleet: int, device: int | None = None) -> list[bytes]:
    """Message i comes from device i % ``fleet`` with sequence number i // ``fleet``: the packs
    of ``device`` (every message below ``count`` when None)."""
    now = time.time()
    chosen = range(count) if device is None else range(device, count, fleet)
    return [
        senml.encode_cbor(
            [senml.Reading(metric, now + i * 1e-4, 20.0 + i % 7, None) for metric in METRICS],
            boot=boot,
            seq=i // fleet,
        )
        for i in chosen
    ]


def device_index(device: Credentials) -> int:
    return int(device.username.rsplit("-", 1)[1])


async def connect_all(devices: list[Credentials]) -> list[PahoClient]:
    clients = []
    for device in devices:
        client = PahoClient(
            client_id=device.username,  # the brokers take the username as client id anyway
            username=device.username,
            password=device.password,
            max_inflight=WINDOW,
        )
        await client.connect(device.host, device.port)
        clients.append(client)
    return clients


async def _publish_share(
    devices: list[Credentials], count: int, boot: str, fleet: int, go: float
) -> float:
    clients = await connect_all(devices)
    own = [packs(count, boot, fleet, device_index(d)) for d in devices]
    await asyncio.sleep(max(0.0, go - time.time()))
    started = time.monotonic()

    async def one_device(client: PahoClient, device: Credentials, payloads: list[bytes]) -> None:
        topic = topics.telemetry(device.username)
        for start in range(0, len(payloads), WINDOW):
            batch = payloads[start : start + WINDOW]
            await asyncio.gather(*(client.publish(topic, p) for p in batch))

    await asyncio.gather(*(one_device(*item) for item in zip(clients, devices, own, strict=True)))
    for client in clients:
        client.abort()
    return started


def _publisher(devices: list[Credentials], count: int, boot: str, fleet: int, go: float) -> float:
    return asyncio.run(_publish_share(devices, count, boot, fleet, go))


def publish_all(devices: list[Credentials], count: int, boot: str, processes: int) -> float:
    """Publish ``count`` messages from every device, spread over ``processes`` publisher
    processes that start together; return the (system-wide monotonic) time of the first."""
    go = time.time() + 3 + 0.02 * len(devices)
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(processes, mp_context=context) as pool:
        shares = [devices[index::processes] for index in range(processes)]
        starts = list(
            pool.map(
                _publisher,
                shares,
                [count] * processes,
                [boot] * processes,
                [len(devices)] * processes,
                [go] * processes,
            )
        )
    return min(starts)


async def publish_at_rate(
    clients: list[PahoClient], client_names: list[str], payloads: list[bytes], rate: float
) -> list[float]:
    """Publish message i at ``start + i / rate``; return when each was handed to the socket."""
    sent: list[float] = []
    pending: set[asyncio.Task[None]] = set()
    start = time.monotonic() + 0.1
    for i, payload in enumerate(payloads):
        delay = start + i / rate - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        client = clients[i % len(clients)]
        topic = topics.telemetry(client_names[i % len(clients)])
        task = asyncio.create_task(client.publish(topic, payload))
        sent.append(time.monotonic())
        pending.add(task)
        task.add_done_callback(pending.discard)
    await asyncio.gather(*pending)
    return sent


class HubApi:
    """The running hub's REST API, with the admin token."""

    def __init__(self, url: str, token: str) -> None:
        self.url = url
        self.headers = {"Authorization": f"Bearer {token}"}
        self.client = httpx.Client(base_url=url, headers=self.headers, timeout=30)

    def add_device(self, name: str) -> Credentials:
        """A new device's password endpoint (the ``mqtts`` part of its credentials dropped)."""
        response = self.client.post("/api/v1/devices", json={"name": name})
        response.raise_for_status()
        document = {key: value for key, value in response.json().items() if key != "mqtts"}
        return Credentials.from_device(document)

    def rows(self) -> int:
        rows: int = self.client.get("/api/v1/stats/ingest").json()["rows_stored"]
        return rows

    def close(self) -> None:
        self.client.close()


class EmbeddedSetup:
    """``fleetmind hub`` with its embedded broker, as a :class:`Stack`; for the raw phase, the
    embedded broker alone, started as the hub starts it (the devices' listener on the same port,
    the hub's listener on the loopback address, the same registry and hub secret), without its
    mutual-TLS listener."""

    def __init__(self, work: Path) -> None:
        self.stack = Stack(work, embedded=True)
        self.data_dir = work / "hub"
        self.broker: EmbeddedBroker | None = None

    def start_hub(self) -> HubApi:
        self.stack.start_hub()
        return HubApi(self.stack.url, self.stack.token)

    def stop_hub(self) -> None:
        self.stack.stop_hub()

    def start_raw(self) -> BrokerAddress:
        registry = f"sqlite:///{(self.data_dir / 'registry.db').resolve()}"
        secret = (self.data_dir / "hub.secret").read_text().strip()
        hub_port = free_port()
        self.broker = EmbeddedBroker(
            "127.0.0.1", self.stack.mqtt_port, registry, model.hash_secret(secret),
            hub_port=hub_port,
        )  # fmt: skip
        self.broker.start()
        wait_port(self.stack.mqtt_port)
        wait_port(hub_port)
        return BrokerAddress("127.0.0.1", hub_port, model.HUB_USERNAME, secret)

    def stop_raw(self) -> None:
        if self.broker is not None:
            self.broker.stop()
            self.broker = None

    def close(self) -> None:
        self.stop_hub()
        self.stop_raw()


class MosquittoSetup:
    """Mosquitto and ``fleetmind hub`` on it, as a :class:`Stack`; for the raw phase, the same
    Mosquitto alone, with the files the hub wrote."""

    def __init__(self, work: Path) -> None:
        self.stack = Stack(work)
        self.stack.start_broker()

    def start_hub(self) -> HubApi:
        if self.stack.broker is None or self.stack.broker.poll() is not None:
            self.stack.start_broker()
        self.stack.start_hub()
        time.sleep(1)  # Mosquitto reloads the files the hub rewrote at its start
        return HubApi(self.stack.url, self.stack.token)

    def stop_hub(self) -> None:
        self.stack.stop_hub()

    def start_raw(self) -> BrokerAddress:
        assert self.stack.broker is not None
        stop(self.stack.broker)
        # forget the hub's persistent session: nothing is queued for it while it is away, and
        # the durable phase starts with nothing from the raw phase
        (self.stack.broker_dir / "mosquitto.db").unlink(missing_ok=True)
        self.stack.start_broker()
        # Stack keeps the hub's listener and secret to itself; the raw subscriber takes the
        # hub's place on that listener
        return BrokerAddress(
            "127.0.0.1", self.stack.hub_port, model.HUB_USERNAME, self.stack.hub_secret
        )

    def stop_raw(self) -> None:
        if self.stack.broker is not None:
            stop(self.stack.broker)

    def close(self) -> None:
        self.stack.close()


class RawSubscriber:
    """A plain paho subscriber as the hub's identity, on the hub's listener."""

    def __init__(self, address: BrokerAddress, expected: int) -> None:
        self.expected = expected
        self.count = 0
        self.last = 0.0
        self.done = threading.Event()
        subscribed = threading.Event()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="bench-raw")
        self.client.username_pw_set(address.username, address.password)
        self.client.on_message = self._message
        self.client.on_connect = lambda c, *_: c.subscribe(topics.UPLINK_FILTER, qos=1)
        self.client.on_subscribe = lambda *_: subscribed.set()
        self.client.connect(address.host, address.port)
        self.client.loop_start()
        if not subscribed.wait(30):
            raise RuntimeError("the raw subscriber could not subscribe as the hub")

    def _message(self, *_: Any) -> None:
        self.count += 1
        if self.count == self.expected:
            self.last = time.monotonic()
            self.done.set()

    def stop(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def raw_phase(
    address: BrokerAddress, devices: list[Credentials], messages: int, publishers: int
) -> float:
    """Messages per second through the broker alone, to a plain paho subscriber."""
    subscriber = RawSubscriber(address, messages)
    try:
        started = publish_all(devices, messages, "raw", publishers)
        if not subscriber.done.wait(120):
            raise RuntimeError(
                f"the raw subscriber received {subscriber.count} of {messages} messages"
            )
    finally:
        subscriber.stop()
    return messages / (subscriber.last - started)


def durable_phase(hub: HubApi, devices: list[Credentials], messages: int, publishers: int) -> float:
    """Messages per second from the first publish until the last row is in the store."""
    base = hub.rows()
    started = publish_all(devices, messages, "durable", publishers)
    target = base + messages * len(METRICS)
    while hub.rows() < target:
        time.sleep(0.05)  # polling costs the hub CPU; 50 ms is well below the run's length
    return messages / (time.monotonic() - started)


def latency_phase(
    hub: HubApi, devices: list[Credentials], rate: float, seconds: float
) -> np.ndarray:
    """Publish-to-queryable latency (ms) of every message sent at ``rate``."""
    count = int(rate * seconds)
    base = hub.rows()
    arrivals: list[tuple[float, int]] = []

    def poll() -> None:
        deadline = time.monotonic() + seconds + 120
        with httpx.Client(base_url=hub.url, headers=hub.headers, timeout=30) as api:
            while time.monotonic() < deadline:
                rows = api.get("/api/v1/stats/ingest").json()["rows_stored"] - base
                arrivals.append((time.monotonic(), rows))
                if rows >= count * len(METRICS):
                    return
                time.sleep(0.002)

    async def publish() -> list[float]:
        clients = await connect_all(devices)
        names = [device.username for device in devices]
        sent = await publish_at_rate(clients, names, packs(count, "latency", len(devices)), rate)
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
    latencies: np.ndarray = (times[first] - np.array(sent)) * 1000
    return latencies


def run(
    kind: str,
    fleet: int,
    messages: int,
    rate: float,
    latency_s: float,
    publishers: int,
    work: Path,
) -> dict[str, Any]:
    setup = EmbeddedSetup(work) if kind == "embedded" else MosquittoSetup(work)
    try:
        hub = setup.start_hub()
        devices = [hub.add_device(f"bench-{index:03d}") for index in range(fleet)]
        hub.close()
        setup.stop_hub()

        raw_rate = raw_phase(setup.start_raw(), devices, messages, publishers)
        setup.stop_raw()

        hub = setup.start_hub()
        durable_rate = durable_phase(hub, devices, messages, publishers)
        latencies = latency_phase(hub, devices, rate, latency_s)
        hub.close()
    finally:
        setup.close()
    return {
        "broker": kind,
        "devices": fleet,
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
    parser.add_argument("--devices", type=int, default=DEVICES)
    parser.add_argument("--messages", type=int, help="messages per throughput phase")
    parser.add_argument("--rate", type=float, default=2000, help="latency phase, messages/s")
    parser.add_argument("--latency-seconds", type=float, default=10)
    parser.add_argument("--publishers", type=int, default=2, help="publisher processes")
    parser.add_argument("--json", action="store_true", help="print JSON only (the default)")
    args = parser.parse_args()
    if args.devices < args.publishers:
        parser.error("every publisher process needs a device: --devices >= --publishers")
    messages = args.messages or (100_000 if args.broker == "mosquitto" else 10_000)
    os.environ["FLEETMIND_LOG_LEVEL"] = "WARNING"  # the hubs this starts log warnings only
    with tempfile.TemporaryDirectory(prefix="fleetmind-bench-") as work:
        result = run(
            args.broker,
            args.devices,
            messages,
            args.rate,
            args.latency_seconds,
            args.publishers,
            Path(work),
        )
    print(json.dumps(result))


if __name__ == "__main__":
    main()
