"""One agent: sample sensors through their pipelines, seal packs into the outbox, let the uplink
drain it."""

import asyncio
import contextlib
import json
import logging
import math
import time
import uuid
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from fleetmind.agent.backoff import Backoff
from fleetmind.agent.credentials import Credentials, write_private
from fleetmind.agent.outbox import Outbox, OutboxLimits
from fleetmind.agent.pipeline import SensorPipeline, SettingsError
from fleetmind.agent.sensors import (
    SIMULATED_SENSORS,
    AnomalyPlan,
    Environment,
    SensorDescription,
)
from fleetmind.agent.settings import AgentSettings
from fleetmind.agent.uplink import Uplink
from fleetmind.wire import senml

log = logging.getLogger(__name__)

SETTINGS_FILE = "settings.json"
OUTBOX_FILE = "outbox.db"


@dataclass(frozen=True, slots=True)
class AgentConfig:
    credentials: Credentials
    #: what the agent starts with when it has no last known settings of its own
    settings: AgentSettings = field(default_factory=AgentSettings)
    sensors: Sequence[SensorDescription] = SIMULATED_SENSORS
    seed: int = 0
    anomalies: AnomalyPlan = field(default_factory=AnomalyPlan)
    #: where the outbox and the last known settings live; None keeps them in memory
    state_dir: Path | None = None
    outbox: OutboxLimits = field(default_factory=OutboxLimits)
    #: reconnect delays grow from the first to the cap (full jitter)
    reconnect_first_s: float = 0.5
    reconnect_cap_s: float = 30.0
    #: packs per second (and burst) when replaying a backlog, so a returning fleet does not
    #: flatten the hub
    replay_rate: float = 200.0
    replay_burst: int = 400


class Agent:
    """Run with ``await agent.run()`` (until cancelled) or ``run_for`` a fixed time."""

    def __init__(self, config: AgentConfig) -> None:
        self.config = config
        self.boot_id = uuid.uuid4().hex[:16]
        self.started = time.monotonic()
        state = config.state_dir
        if state is not None:
            state.mkdir(parents=True, exist_ok=True)
        self.outbox = Outbox(state / OUTBOX_FILE if state else ":memory:", config.outbox)
        self.settings = self._last_known_settings()
        self.pipelines = {
            sensor.key: SensorPipeline(sensor.key, self.settings.sensor(sensor.key))
            for sensor in config.sensors
        }
        self.uplink = Uplink(
            config.credentials,
            self.outbox,
            boot_id=self.boot_id,
            backoff=Backoff(config.reconnect_first_s, config.reconnect_cap_s),
            replay_rate=config.replay_rate,
            replay_burst=config.replay_burst,
        )
        self._environment = Environment(config.seed)
        self._pending: list[senml.Reading] = []
        self._seq = 0
        self._settings_changed = asyncio.Event()

    @property
    def device_id(self) -> str:
        return self.config.credentials.username

    # -- running ------------------------------------------------------------------------------

    async def run(self) -> None:
        try:
            async with asyncio.TaskGroup() as group:
                group.create_task(self.uplink.run(), name=f"{self.device_id}/uplink")
                group.create_task(self.sample(), name=f"{self.device_id}/sensors")
        finally:
            self.seal(final=True)

    async def run_for(self, seconds: float, *, drain_timeout: float = 30.0) -> None:
        """Sample for ``seconds``, then wait (bounded) until the outbox is empty and leave."""
        uplink = asyncio.create_task(self.uplink.run(), name=f"{self.device_id}/uplink")
        try:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.sample(), timeout=seconds)
            self.seal(final=True)
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
        next_sample = time.monotonic()
        sealed_at = next_sample
        while True:
            self.read_sensors(time.time())
            now = time.monotonic()
            if now - sealed_at >= self.settings.pack_interval_s:
                self.seal()
                sealed_at = now
            next_sample += 1.0 / self.settings.sample_hz
            delay = next_sample - time.monotonic()
            if delay < -1.0:  # fell behind (settings changed, machine stalled): start afresh
                next_sample, delay = time.monotonic(), 0.0
            self._settings_changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._settings_changed.wait(), max(0.0, delay))

    def read_sensors(self, t: float) -> None:
        for sensor in self.config.sensors:
            value = self.config.anomalies.apply(
                self._environment, sensor.key, t, sensor.value_fn(self._environment, t)
            )
            if value is None:  # the sensor gave nothing this time
                continue
            if not sensor.low <= value <= sensor.high:
                value = math.nan  # outside what the sensor can measure: the pipeline rejects it
            for name, when, out in self.pipelines[sensor.key].push(t, value):
                self._pending.append(senml.Reading(name, when, round(out, 4), sensor.unit))

    def seal(self, *, final: bool = False) -> None:
        """Close the current pack: encode it and commit it to the outbox."""
        now = math.inf if final else time.time()
        for sensor in self.config.sensors:
            for name, when, out in self.pipelines[sensor.key].flush(now):
                self._pending.append(senml.Reading(name, when, round(out, 4), sensor.unit))
        if not self._pending:
            return
        payload = senml.encode_cbor(self._pending, boot=self.boot_id, seq=self._seq)
        self.outbox.put(payload, len(self._pending))
        self._seq += 1
        self._pending = []

    # -- settings -----------------------------------------------------------------------------

    def apply(self, document: object) -> AgentSettings:
        """Validate and apply a settings document live; keep it as the last known settings."""
        settings = AgentSettings.parse(document)
        for key, pipeline in self.pipelines.items():
            if pipeline.settings != settings.sensor(key):
                self.pipelines[key] = SensorPipeline(
                    key,
                    settings.sensor(key),
                    inputs=pipeline.inputs,
                    outputs=pipeline.outputs,
                    invalid=pipeline.invalid,
                )
        self.settings = settings
        self._settings_changed.set()
        if self.config.state_dir is not None:
            write_private(self.config.state_dir / SETTINGS_FILE, json.dumps(document))
        log.info("%s: settings applied", self.device_id)
        return settings

    def _last_known_settings(self) -> AgentSettings:
        state = self.config.state_dir
        path = state / SETTINGS_FILE if state is not None else None
        if path is None or not path.exists():
            return self.config.settings
        try:
            return AgentSettings.parse(json.loads(path.read_text()))
        except (OSError, ValueError, SettingsError) as exc:
            log.warning("%s: ignoring unreadable last known settings: %s", self.device_id, exc)
            return self.config.settings

    # -- figures ------------------------------------------------------------------------------

    def readings_dropped_by_pipeline(self) -> Counter[str]:
        total: Counter[str] = Counter()
        for pipeline in self.pipelines.values():
            total.update(pipeline.invalid)
        return total
