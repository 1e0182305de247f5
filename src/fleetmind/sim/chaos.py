"""Fault injection: run a fleet through agent crashes (kill -9), a broker outage and hub
crashes, then count what the agents accepted against what the hub stored.

Everything runs as real processes (:class:`~fleetmind.sim.stack.Stack`): ``fleetmind hub`` with
its embedded broker or on Mosquitto, and two ``fleetmind sim`` processes with durable outboxes,
one of which is killed and restarted. With Mosquitto the broker is stopped for a while and the
hub killed -9; with the embedded broker the hub is killed -9 twice, and its broker with it.

An agent deletes a pack from its outbox only when the broker acknowledged it, so a reading
accepted (outbox counters) and missing from the store (census) is a reading some device saw
acknowledged and the hub lost; both counts are whole, not samples.
"""

import signal
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass

from fleetmind.sim.stack import Stack, stop


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


def run_chaos(
    stack: Stack, plan: ChaosPlan, step: Callable[[str], None] = lambda _: None
) -> ChaosResult:
    """Start ``stack``, run ``plan`` against it, count, and stop it."""
    started = time.monotonic()
    stack.start_broker()
    stack.start_hub()
    try:
        steady = stack.start_sim(
            "steady", plan.devices - plan.crashing, rate_hz=plan.rate_hz, duration_s=plan.duration_s
        )
        crashing = stack.start_sim(
            "crashing", plan.crashing, rate_hz=plan.rate_hz, duration_s=plan.duration_s
        )
        at = time.monotonic()

        def until(offset: float) -> None:
            time.sleep(max(0.0, at + offset - time.monotonic()))

        until(plan.crash_at_s)
        step(f"kill -9 the process of {plan.crashing} agents")
        stop(crashing, signal.SIGKILL)
        until(plan.crash_at_s + plan.crash_for_s)
        step("restart them from their outboxes")
        remaining = max(1.0, plan.duration_s - plan.crash_at_s - plan.crash_for_s)
        crashing = stack.start_sim(
            "crashing", plan.crashing, rate_hz=plan.rate_hz, duration_s=remaining
        )
        until(plan.broker_down_at_s)
        if stack.embedded:
            step("kill -9 the hub, and with it its broker, and start it again")
            stack.stop_hub(signal.SIGKILL)
            stack.start_hub()
        else:
            step(f"stop the broker for {plan.broker_down_for_s:.0f} s")
            assert stack.broker is not None  # noqa: S101 - started above
            stop(stack.broker)
            until(plan.broker_down_at_s + plan.broker_down_for_s)
            step("start the broker again")
            stack.start_broker()
        until(plan.hub_crash_at_s)
        step("kill -9 the hub and start it again")
        stack.stop_hub(signal.SIGKILL)
        stack.start_hub()
        step("wait for the agents to drain their outboxes")
        drain_started = time.monotonic()
        for sim in (steady, crashing):
            sim.wait(timeout=plan.duration_s + 180)
        accepted, dropped, left = stack.outboxes()
        stored, duplicates = stack.settle(sum(accepted.values()))
        drain_s = time.monotonic() - drain_started
    finally:
        stack.close()
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
