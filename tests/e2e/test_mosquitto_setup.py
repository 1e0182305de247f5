"""The README's Mosquitto set-up, as a new user follows it: ``fleetmind mosquitto setup``, then
Mosquitto, then the hub; devices added later can connect at once (the hub makes Mosquitto reread
its files through the pid file the configuration names), and one that is suspended is cut off."""

import os
import shlex
import socket
import subprocess
import sys
import time
from pathlib import Path

from conftest import RunningHub, connect, free_port, publish, require, start_hub, stop, wait_until
from fleetmind.wire import senml, topics


def _listening(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) == 0


def test_the_readme_set_up_works_as_written(tmp_path: Path) -> None:
    binary = require("mosquitto")
    data_dir, broker_dir = tmp_path / "hub", tmp_path / "mosquitto"
    port, tls_port, hub_port = free_port(), free_port(), free_port()
    setup = subprocess.run(
        [sys.executable, "-m", "fleetmind", "mosquitto", "setup", str(broker_dir),
         "--data-dir", str(data_dir), "--host", "127.0.0.1", "--port", str(port),
         "--tls-port", str(tls_port), "--hub-port", str(hub_port)],
        capture_output=True, text=True, check=True, timeout=60,
    )  # fmt: skip
    lines = [
        line.split(". ", 1)[1] for line in setup.stdout.splitlines() if line[:2] in ("1.", "2.")
    ]
    assert lines[0].startswith("mosquitto -c ") and lines[1].startswith("fleetmind hub ")
    assert "_hub:" not in setup.stdout  # the hub reads its secret from its data directory
    conf = Path(shlex.split(lines[0])[2])
    if os.geteuid() == 0:  # as root Mosquitto would become its own user, who cannot read them
        conf.write_text(conf.read_text() + "user root\n")
    with (tmp_path / "mosquitto.log").open("wb") as log:
        mosquitto = subprocess.Popen([binary, "-c", str(conf)], stdout=log, stderr=log)
    try:
        wait_until(lambda: all(_listening(p) for p in (port, tls_port, hub_port)), timeout=10)
        hub_args = shlex.split(lines[1])[2:]  # after "fleetmind hub"
        hub_args.remove("--data-dir")
        hub_args.remove(str(data_dir))
        hub = start_hub(data_dir, *hub_args)
        try:
            _devices_come_and_go(hub, broker_dir)
        finally:
            stop(hub.process)
    finally:
        stop(mosquitto)


def _devices_come_and_go(hub: RunningHub, broker_dir: Path) -> None:
    assert (broker_dir / "mosquitto.pid").exists()  # Mosquitto wrote it: reloads work
    device = hub.add_device("late-comer")  # added after Mosquitto started
    time.sleep(1)  # the hub rewrote the files and sent SIGHUP
    client = connect(device)
    reading = senml.encode_cbor([senml.Reading("temp", time.time(), 21.0)], boot="b", seq=1)
    publish(client, topics.telemetry("late-comer"), reading)
    with hub.api() as api:
        wait_until(lambda: api.get("/api/v1/telemetry/latest").json().get("late-comer"))
        assert api.put("/api/v1/devices/late-comer/state", json={"state": "suspended"}).is_success
    time.sleep(1)
    later = senml.encode_cbor([senml.Reading("cut-off", time.time(), 1.0)], boot="b", seq=2)
    client.publish(topics.telemetry("late-comer"), later, qos=1)
    time.sleep(1.5)
    with hub.api() as api:
        latest = api.get("/api/v1/telemetry/latest").json().get("late-comer", [])
    assert "cut-off" not in {item["metric"] for item in latest}
    client.disconnect()
    client.loop_stop()
