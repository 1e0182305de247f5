"""Chaos end to end: 100 agents; kill -9 some mid-stream and restart them, stop the broker for a
while or kill -9 the hub with its embedded broker, kill -9 the hub and restart it. Every reading
any agent saw acknowledged is stored exactly once."""

import signal
import socket
import time
from pathlib import Path

import pytest

from conftest import free_port, require, start_hub, wait_until
from fleetmind.sim.chaos import ChaosPlan, run_chaos
from fleetmind.sim.stack import Stack, stop


@pytest.mark.timeout(400)
@pytest.mark.parametrize("broker", ["embedded", "mosquitto"])
def test_nothing_acknowledged_is_lost_or_duplicated(tmp_path: Path, broker: str) -> None:
    if broker == "embedded":
        stack, plan = Stack(tmp_path, embedded=True), ChaosPlan(rate_hz=5.0)
    else:
        stack, plan = Stack(tmp_path, mosquitto=require("mosquitto")), ChaosPlan()
    result = run_chaos(stack, plan)
    assert (
        result.readings_accepted > 100 * plan.rate_hz * 4 * 20
    )  # every device sent for most of the run
    assert result.readings_left_in_outboxes == 0
    assert result.readings_dropped == 0
    assert result.readings_lost == 0
    assert result.duplicates == 0
    assert result.readings_stored == result.readings_accepted


def _children(pid: int) -> set[int]:
    found: set[int] = set()
    for task in Path(f"/proc/{pid}/task").glob("*"):
        text = (task / "children").read_text() if (task / "children").exists() else ""
        found |= {int(child) for child in text.split()}
    return found


def _listening(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) == 0


def test_the_embedded_broker_ends_with_its_hub_and_the_hub_restarts_on_its_ports(
    tmp_path: Path,
) -> None:
    ports = ("--mqtt-port", str(free_port()), "--mqtt-tls-port", str(free_port()))
    hub = start_hub(tmp_path / "data", *ports)
    wait_until(lambda: _children(hub.process.pid))
    broker_pids = _children(hub.process.pid)
    stop(hub.process, signal.SIGKILL)
    started = time.monotonic()
    wait_until(lambda: not any(Path(f"/proc/{pid}").exists() for pid in broker_pids), timeout=5)
    assert not _listening(int(ports[1])) and not _listening(int(ports[3]))
    assert time.monotonic() - started < 5
    again = start_hub(tmp_path / "data", *ports)  # at once, on the same ports
    assert again.process.poll() is None
    stop(again.process)
