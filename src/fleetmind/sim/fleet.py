"""Provision N simulated devices on a hub and run one real agent for each.

Credentials are cached in a private file so that a second run reuses the same devices.
"""

import asyncio
import json
import random
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import httpx

from fleetmind.agent.agent import Agent, AgentConfig
from fleetmind.agent.claim import claim
from fleetmind.agent.credentials import Credentials
from fleetmind.agent.settings import AgentSettings
from fleetmind.files import write_file
from fleetmind.sim.world import AnomalyPlan, SimulatedBattery, World
from fleetmind.transport.errors import HubError
from fleetmind.transport.http import HubClient


@dataclass(frozen=True, slots=True)
class FleetConfig:
    devices: int
    rate_hz: float = 1.0
    #: seconds to sample; None runs until cancelled
    duration_s: float | None = 60.0
    prefix: str = "sim"
    seed: int = 0
    anomalies: bool = True
    drain_timeout_s: float = 60.0
    #: one state directory per device below this (durable outboxes); None keeps them in memory
    state_dir: Path | None = None
    #: simulate a solar-charged battery per device (power modes follow its level)
    batteries: bool = True


@dataclass(frozen=True, slots=True)
class FleetSummary:
    devices: int
    seconds: float
    #: readings committed to the agents' outboxes during this run
    readings_sent: int
    readings_acked: int
    #: still in an outbox when the run ended
    readings_failed: int
    #: dropped by an outbox's overflow policy or age limit
    readings_dropped: int
    publish_failures: int
    connects: int

    def as_dict(self) -> dict[str, float | int]:
        return {name: getattr(self, name) for name in self.__slots__}


def device_names(config: FleetConfig) -> list[str]:
    return [f"{config.prefix}-{index:04d}" for index in range(config.devices)]


def provision(
    hub: HubClient,
    names: list[str],
    cache: Path,
    progress: Callable[[int], None] = lambda _: None,
    *,
    claim_token: str | None = None,
) -> list[Credentials]:
    """Credentials for every name: reused from ``cache`` where the hub still knows the device,
    otherwise (re)created through the API, or, with ``claim_token``, claimed the way a device
    does at first start (its key made here, a CSR sent; the group's template must be
    ``{name}``-based so that the device gets the name asked for)."""
    cached = _read_cache(cache)
    known = {device["id"] for device in hub.list_devices()}
    result: list[Credentials] = []
    claims = httpx.Client()
    try:
        for name in names:
            document = cached.get(hub.url, {}).get(name)
            if document is None or name not in known:
                if name in known:  # its secret is lost: start it afresh
                    hub.delete_device(name)
                made = (
                    claim(hub.url, claim_token, name, http=claims)
                    if claim_token
                    else hub.add_device(name)
                )
                document = Credentials.from_device(made).document()
                cached.setdefault(hub.url, {})[name] = document
            result.append(Credentials.from_device(document))
            progress(1)
    finally:
        claims.close()
        write_file(cache, json.dumps(cached, indent=1))
    return result


def _read_cache(cache: Path) -> dict[str, dict[str, dict[str, object]]]:
    try:
        document = json.loads(cache.read_text())
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        raise HubError(f"cannot read the simulator's credentials cache {cache}: {exc}") from None
    return document if isinstance(document, dict) else {}


class Fleet:
    """The agents of one simulation; ``stats()`` may be read while it runs."""

    def __init__(self, config: FleetConfig, credentials: list[Credentials]) -> None:
        self.config = config
        self.agents = [
            _agent(config, device, config.seed + index) for index, device in enumerate(credentials)
        ]
        self._started = time.monotonic()
        self._before = self._totals()

    async def run(self) -> FleetSummary:
        """Run every agent (staggered over a second) for the duration, drain, and summarise."""
        self._started = time.monotonic()
        async with asyncio.TaskGroup() as group:
            for agent in self.agents:
                group.create_task(self._run_one(agent), name=agent.device_id)
        return self.summary()

    async def _run_one(self, agent: Agent) -> None:
        await asyncio.sleep(random.uniform(0, min(1.0, 0.005 * len(self.agents))))
        if self.config.duration_s is None:
            try:
                await agent.run()
            finally:
                await agent.uplink.close()
        else:
            await agent.run_for(self.config.duration_s, drain_timeout=self.config.drain_timeout_s)

    def _totals(self) -> Counter[str]:
        totals: Counter[str] = Counter()
        for agent in self.agents:
            totals.update(asdict(agent.outbox.counters))
            totals["publish_failures"] += agent.uplink.stats.publish_failures
            totals["connects"] += agent.uplink.stats.connects
        return totals

    def summary(self) -> FleetSummary:
        now = self._totals()
        now.subtract(self._before)
        sent, acked = now["readings_accepted"], now["readings_acked"]
        dropped = sum(
            now[f"readings_{why}"] for why in ("dropped_oldest", "dropped_newest", "expired")
        )
        return FleetSummary(
            devices=len(self.agents),
            seconds=round(time.monotonic() - self._started, 3),
            readings_sent=sent,
            readings_acked=acked,
            readings_failed=sum(agent.outbox.pending_readings() for agent in self.agents),
            readings_dropped=dropped,
            publish_failures=now["publish_failures"],
            connects=now["connects"],
        )


def _agent(config: FleetConfig, device: Credentials, seed: int) -> Agent:
    """A real agent in a simulated world of its own."""
    world = World(
        seed,
        anomalies=_anomalies(config),
        battery=_battery(seed) if config.batteries else None,
    )
    return Agent(
        AgentConfig(
            credentials=device,
            settings=AgentSettings(sample_hz=config.rate_hz),
            sensors=world.sensors,
            anomalies=world.inject,
            battery=world.battery,
            state_dir=config.state_dir / device.username if config.state_dir else None,
        )
    )


def _battery(seed: int) -> SimulatedBattery:
    rng = random.Random(seed)
    return SimulatedBattery(level_pct=rng.uniform(40, 100), phase=rng.uniform(0, 6.28))


def _anomalies(config: FleetConfig) -> AnomalyPlan:
    """Each agent its own plan (a plan tracks its active anomalies); rare enough to stand out."""
    if not config.anomalies:
        return AnomalyPlan()
    return AnomalyPlan(spike=0.002, level_shift=0.0005, stuck=0.0005, dropout=0.0005)
