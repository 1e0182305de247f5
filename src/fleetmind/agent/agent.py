"""One agent: sample sensors, seal packs into the outbox, let the uplink drain it."""

import asyncio
import contextlib
import logging
import math
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field

from fleetmind.agent.backoff import Backoff
from fleetmind.agent.credentials import Credentials
from fleetmind.agent.outbox import Entry, MemoryOutbox, Outbox
from fleetmind.agent.sensors import (
    SIMULATED_SENSORS,
    AnomalyPlan,
    Environment,
    SensorDescription,
)
from fleetmind.agent.uplink import Uplink
from fleetmind.wire import senml

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class AgentConfig:
    credentials: Credentials
    sample_hz: float = 1.0
    #: seconds of readings sealed into one pack
    pack_interval_s: float = 1.0
    sensors: Sequence[SensorDescription] = SIMULATED_SENSORS
    seed: int = 0
    anomalies: AnomalyPlan = field(default_factory=AnomalyPlan)
    #: reconnect delays grow from the first to the cap (full jitter)
    reconnect_first_s: float = 0.5
    reconnect_cap_s: float = 30.0


@dataclass(slots=True)
class AgentStats:
    readings_accepted: int = 0
    readings_invalid: int = 0
    packs_sealed: int = 0


class Agent:
    """Run with ``await agent.run()`` (until cancelled) or ``run_for`` a fixed time."""

    def __init__(self, config: AgentConfig, *, outbox: Outbox | None = None) -> None:
        self.config = config
        self.boot_id = uuid.uuid4().hex[:16]
        self.outbox = outbox if outbox is not None else MemoryOutbox()
        self.uplink = Uplink(
            config.credentials,
            self.outbox,
            boot_id=self.boot_id,
            backoff=Backoff(config.reconnect_first_s, config.reconnect_cap_s),
        )
        self.stats = AgentStats()
        self._environment = Environment(config.seed)
        self._pending: list[senml.Reading] = []
        self._seq = 0

    @property
    def device_id(self) -> str:
        return self.config.credentials.username

    async def run(self) -> None:
        async with asyncio.TaskGroup() as group:
            group.create_task(self.uplink.run(), name=f"{self.device_id}/uplink")
            group.create_task(self.sample(), name=f"{self.device_id}/sensors")

    async def run_for(self, seconds: float, *, drain_timeout: float = 30.0) -> None:
        """Sample for ``seconds``, then wait (bounded) until the outbox is empty and leave."""
        uplink = asyncio.create_task(self.uplink.run(), name=f"{self.device_id}/uplink")
        try:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.sample(), timeout=seconds)
            self.seal()
            await self.drain(drain_timeout)
            await self.uplink.close()
        finally:
            uplink.cancel()
            await asyncio.gather(uplink, return_exceptions=True)

    async def drain(self, timeout: float) -> bool:
        """Wait until every sealed pack was acknowledged; False if ``timeout`` passed first."""
        deadline = time.monotonic() + timeout
        while len(self.outbox) and time.monotonic() < deadline:  # noqa: ASYNC110 - a count, polled
            await asyncio.sleep(0.05)
        return not len(self.outbox)

    async def sample(self) -> None:
        period = 1.0 / self.config.sample_hz
        next_sample = time.monotonic()
        sealed_at = next_sample
        while True:
            self.read_sensors(time.time())
            now = time.monotonic()
            if now - sealed_at >= self.config.pack_interval_s:
                self.seal()
                sealed_at = now
            next_sample += period
            await asyncio.sleep(max(0.0, next_sample - time.monotonic()))

    def read_sensors(self, t: float) -> None:
        for sensor in self.config.sensors:
            value = self.config.anomalies.apply(
                self._environment, sensor.key, t, sensor.value_fn(self._environment, t)
            )
            if value is None:
                continue
            if not math.isfinite(value) or not sensor.low <= value <= sensor.high:
                self.stats.readings_invalid += 1
                continue
            self._pending.append(senml.Reading(sensor.key, t, round(value, 4), sensor.unit))
            self.stats.readings_accepted += 1

    def seal(self) -> None:
        """Close the current pack: encode it and put it in the outbox."""
        if not self._pending:
            return
        payload = senml.encode_cbor(self._pending, boot=self.boot_id, seq=self._seq)
        self.outbox.put(Entry(self._seq, payload, len(self._pending)))
        self._seq += 1
        self._pending = []
        self.stats.packs_sealed += 1
