"""Nothing accepted is lost: the chaos run, then a fleet draining an hour of backlog.

    python benchmarks/offline.py --json

1. chaos: 100 agents (two ``fleetmind sim`` processes with durable outboxes) against Mosquitto and
   ``fleetmind hub``; the process of 10 agents is killed -9 and restarted, the broker stopped for
   4 s, the hub killed -9 and restarted. Readings accepted (outbox counters) against readings
   stored (store census): lost and duplicated ones are counted, not sampled.
2. drain: 100 devices come back after an hour offline, each with one hour of packs in its outbox
   (4 sensors at 1 Hz, one pack per second, as the agent's defaults seal them). ``drain_s`` is the
   time from starting the fleet until the store holds every backlog reading; the baseline is the
   hour the backlog stands for (``realtime_s``).

Prints one JSON object.
"""

import argparse
import json
import shutil
import tempfile
import time
from pathlib import Path

from fleetmind.agent.agent import OUTBOX_FILE
from fleetmind.agent.outbox import Outbox
from fleetmind.sim.chaos import ChaosPlan, run_chaos
from fleetmind.sim.fleet import FleetConfig, device_names, provision
from fleetmind.sim.stack import Stack
from fleetmind.transport.http import HubClient
from fleetmind.wire import senml

SENSORS = ("temperature", "humidity", "vibration", "power")


def backlog_outbox(path: Path, seconds: int) -> int:
    """An outbox holding ``seconds`` of packs; return its readings."""
    outbox = Outbox(path)
    start = time.time() - seconds
    for second in range(seconds):
        readings = [
            senml.Reading(name, start + second, 20.0 + second % 7, None) for name in SENSORS
        ]
        outbox.put(senml.encode_cbor(readings, boot="backlog", seq=second), len(readings))
    outbox.close()
    return seconds * len(SENSORS)


def drain(work: Path, devices: int, seconds: int) -> dict[str, float]:
    stack = Stack(work)
    stack.start_broker()
    stack.start_hub()
    try:
        names = device_names(FleetConfig(devices=devices, prefix="backlog"))
        with HubClient(stack.url, stack.token) as hub:
            provision(hub, names, work / "backlog" / "sim-devices.json")
        template = work / "template.db"
        per_device = backlog_outbox(template, seconds)
        for name in names:
            directory = stack.state_dir("backlog") / name
            directory.mkdir(parents=True)
            shutil.copyfile(template, directory / OUTBOX_FILE)
        backlog = per_device * devices
        started = time.monotonic()
        fleet = stack.start_sim(
            "backlog", devices, rate_hz=1, duration_s=0.1, drain_s=float(seconds)
        )
        while sum(item["distinct"] for item in stack.census().values()) < backlog:
            if time.monotonic() - started > seconds:
                raise SystemExit("the backlog did not drain within its own duration")
            time.sleep(0.5)
        drain_s = time.monotonic() - started
        fleet.wait(timeout=600)
        accepted, _dropped, left = stack.outboxes()
        stored, duplicates = stack.settle(sum(accepted.values()))
        if left or duplicates or sum(stored.values()) != sum(accepted.values()):
            raise SystemExit(f"the drain lost or repeated readings: {left=} {duplicates=}")
    finally:
        stack.close()
    return {
        "backlog_readings": backlog,
        "drain_s": round(drain_s, 1),
        "drain_readings_per_s": round(backlog / drain_s),
        "realtime_s": seconds,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--json", action="store_true", help="print JSON only")
    parser.add_argument("--devices", type=int, default=100)
    parser.add_argument("--backlog-s", type=int, default=3600)
    args = parser.parse_args()
    plan = ChaosPlan(devices=args.devices)
    if plan.devices <= plan.crashing:
        parser.error(f"--devices must exceed the {plan.crashing} agents the chaos run kills")
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        chaos = run_chaos(Stack(work / "chaos"), plan)
        result: dict[str, float] = {
            "readings_accepted": chaos.readings_accepted,
            "readings_stored": chaos.readings_stored,
            "readings_lost": chaos.readings_lost,
            "duplicates": chaos.duplicates,
            "chaos_drain_s": chaos.drain_s,
        }
        result |= drain(work / "drain", args.devices, args.backlog_s)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
