"""Device identity at fleet scale: provisioning by claim, and the cost of mutual TLS.

    python benchmarks/identity.py --json

1. provisioning: ``fleetmind hub`` (embedded broker) gets an enrollment group; 1,000 devices are
   claimed with the simulator's provisioning (each makes its key and CSR, presents the claim
   token, receives its certificate). Baseline: the same number added through the API (the hub
   makes the key pair).
2. handshakes: the 1,000 claimed devices connect over mutual TLS (TLS 1.3, EC P-256) and stay
   connected, against the embedded broker and against Mosquitto (its password, ACL and CRL files
   written from the hub's registry as the hub writes them, its server certificate from the hub's
   CA); connections per second from the first attempt to the last CONNACK. Baseline: as many
   password connections (the devices added through the API) over plain TCP to the same broker.

Prints one JSON object.
"""

import argparse
import asyncio
import json
import os
import shutil
import socket
import subprocess
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from fleetmind.agent.credentials import Credentials
from fleetmind.devices import model, mosquitto
from fleetmind.devices.ca import CertificateAuthority
from fleetmind.devices.service import DeviceService
from fleetmind.devices.store import DeviceStore
from fleetmind.hub.registry import create_engine
from fleetmind.sim.fleet import provision
from fleetmind.sim.stack import Stack, free_port, stop
from fleetmind.transport.http import HubClient
from fleetmind.transport.paho_client import PahoClient

CONCURRENCY = 64


async def connect_all(devices: list[Credentials], port: int | None = None) -> float:
    """Connections per second: every device connects (at most CONCURRENCY at once) and stays."""
    loop = asyncio.get_running_loop()
    loop.set_default_executor(ThreadPoolExecutor(CONCURRENCY))
    window = asyncio.Semaphore(CONCURRENCY)
    clients: list[PahoClient] = []

    async def one(device: Credentials) -> None:
        async with window:
            client = PahoClient(
                client_id=device.username, username=device.username, password=device.password,
                tls=device.ssl_context(),
            )  # fmt: skip
            await client.connect(device.host, port or device.port)
            clients.append(client)

    started = time.monotonic()
    await asyncio.gather(*(one(device) for device in devices))
    seconds = time.monotonic() - started
    for client in clients:
        client.abort()
    return len(devices) / seconds


def start_mosquitto(work: Path, hub_dir: Path) -> tuple[subprocess.Popen[bytes], int, int]:
    """Mosquitto with the files a hub on it would keep (:mod:`fleetmind.devices.mosquitto`),
    written from the stopped hub's registry, CA and secret: the devices' password and mutual-TLS
    listeners (with the CRL), and the hub's own listener."""
    binary = shutil.which("mosquitto")
    if binary is None:
        raise SystemExit("this benchmark needs the mosquitto broker")
    directory = work / "mosquitto"
    ca = CertificateAuthority.open(hub_dir / "ca")
    engine = create_engine(f"sqlite:///{(hub_dir / 'registry.db').resolve()}")
    hub_secret = (hub_dir / "hub.secret").read_text().strip()
    mosquitto.write_files(
        directory, DeviceService(DeviceStore(engine), ca=ca), model.hash_secret(hub_secret)
    )
    engine.dispose()
    ca.server_files(directory, ["127.0.0.1"])
    port, tls_port, hub_port = free_port(), free_port(), free_port()
    conf = mosquitto.config(str(directory), "127.0.0.1", port, hub_port=hub_port, tls_port=tls_port)
    conf += ("user root\n" if os.geteuid() == 0 else "") + "persistence false\n"
    (directory / "mosquitto.conf").write_text(conf)
    process = subprocess.Popen([binary, "-c", str(directory / "mosquitto.conf")],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    deadline = time.monotonic() + 10
    while not all(listening(each) for each in (port, tls_port, hub_port)):
        if time.monotonic() > deadline or process.poll() is not None:
            raise SystemExit("mosquitto did not start")
        time.sleep(0.05)
    return process, port, tls_port


def listening(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) == 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--json", action="store_true", help="print JSON only")
    parser.add_argument("--devices", type=int, default=1000)
    args = parser.parse_args()
    count = args.devices
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        stack = Stack(work, embedded=True)
        try:
            stack.start_hub()
            with HubClient(stack.url, stack.token) as client:
                group = client.create_enrollment(
                    "bench", name_template="{name}", max_uses=count, expires_in_s=3600, tags={}
                )
                names = [f"claim-{n:05d}" for n in range(count)]
                started = time.monotonic()
                claimed = provision(client, names, work / "claimed.json",
                                    claim_token=group["claim_token"])  # fmt: skip
                claim_s = time.monotonic() - started
                started = time.monotonic()
                added = [client.add_device(f"api-{n:05d}") for n in range(count)]
                add_s = time.monotonic() - started
            plain = [
                Credentials("127.0.0.1", stack.mqtt_port, d["id"], d["mqtt"]["password"])
                for d in added
            ]
            result = {
                "devices": count,
                "claim_s": round(claim_s, 2),
                "claims_per_s": round(count / claim_s, 1),
                "baseline_api_adds_per_s": round(count / add_s, 1),
                "mtls_connects_per_s_embedded": round(asyncio.run(connect_all(claimed)), 1),
                "baseline_plain_connects_per_s_embedded": round(asyncio.run(connect_all(plain)), 1),
            }
        finally:
            stack.close()
        broker, port, tls_port = start_mosquitto(work, work / "hub")
        try:
            result["mtls_connects_per_s_mosquitto"] = round(
                asyncio.run(connect_all(claimed, tls_port)), 1
            )
            via_plain = [Credentials("127.0.0.1", port, d.username, d.password) for d in plain]
            result["baseline_plain_connects_per_s_mosquitto"] = round(
                asyncio.run(connect_all(via_plain)), 1
            )
        finally:
            stop(broker)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
