"""Sampling: the sensors read through their pipelines, packs sealed into the outbox, health
figures added every health interval, intervals stretched by the power mode.

A pack is SenML CBOR named by the agent's boot id and a sequence number, so the hub recognises
a pack sent again; a reboot starts a new boot id from sequence 0.
"""

import asyncio
import contextlib
import math
import time
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path

from fleetmind.agent import health
from fleetmind.agent.journal import Journal
from fleetmind.agent.outbox import Outbox
from fleetmind.agent.pipeline import SensorPipeline
from fleetmind.agent.power import STRETCH, Battery, PowerMode, mode_for
from fleetmind.agent.sensors import Anomalies, SensorDescription
from fleetmind.agent.settings import AgentSettings
from fleetmind.agent.uplink import Uplink
from fleetmind.wire import senml

#: health figures by name (``health.<name>`` telemetry)
Figures = dict[str, float | bool]


def new_boot_id() -> str:
    return uuid.uuid4().hex[:16]


class Sampler:
    def __init__(
        self,
        sensors: Sequence[SensorDescription],
        settings: AgentSettings,
        outbox: Outbox,
        uplink: Uplink,
        journal: Journal,
        *,
        boot_id: str,
        anomalies: Anomalies | None = None,
        battery: Battery | None = None,
        state_dir: Path | None = None,
        more_health: Callable[[], Figures] = dict,
    ) -> None:
        """``uplink``: duty-cycled in critical power mode, its link quality reported;
        ``more_health``: figures other parts report (the downlink's refusals)."""
        self.sensors = tuple(sensors)
        self.settings = settings
        self.pipelines = {
            sensor.key: SensorPipeline(sensor.key, settings.sensor(sensor.key))
            for sensor in self.sensors
        }
        self.boot_id = boot_id
        self.power_mode = PowerMode.NORMAL
        self.started = time.monotonic()
        self._outbox = outbox
        self._uplink = uplink
        self._journal = journal
        self._anomalies = anomalies
        self._battery = battery
        self._state_dir = state_dir
        self._more_health = more_health
        self._pending: list[senml.Reading] = []
        self._seq = 0
        self._settings_changed = asyncio.Event()
        self._next_health = 0.0
        self._sent_bytes = self._sent_readings = 0

    @property
    def uptime_s(self) -> float:
        return round(time.monotonic() - self.started, 3)

    async def run(self) -> None:
        """Sample at the configured rate, seal a pack every pack interval: until cancelled."""
        next_sample = time.monotonic()
        sealed_at = -math.inf  # the first readings go out at once: the hub sees a device start
        while True:
            t = time.time()
            sample_factor, pack_factor = STRETCH[self._update_power(t)]
            self.read(t)
            if t >= self._next_health:
                self._pending.extend(health.readings(t, self.health()))
                self._next_health = t + self.settings.health_interval_s
            now = time.monotonic()
            if now - sealed_at >= self.settings.pack_interval_s * pack_factor:
                self.seal()
                sealed_at = now
            next_sample += sample_factor / self.settings.sample_hz
            delay = next_sample - time.monotonic()
            if delay < -1.0:  # fell behind (settings changed, machine stalled): start afresh
                next_sample, delay = time.monotonic(), 0.0
            self._settings_changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._settings_changed.wait(), max(0.0, delay))

    def read(self, t: float) -> None:
        """Read every sensor once, through its pipeline, into the pending readings."""
        inject = self._anomalies
        for sensor in self.sensors:
            value = sensor.value_fn(t)
            if value is not None and inject is not None:
                value = inject(sensor.key, t, value)
            if value is None:  # the sensor gave nothing this time
                continue
            if not sensor.low <= value <= sensor.high:
                value = math.nan  # outside what the sensor can measure: the pipeline rejects it
            for name, when, out in self.pipelines[sensor.key].push(t, value):
                self._pending.append(senml.Reading(name, when, round(out, 4), sensor.unit))

    def seal(self, *, final: bool = False) -> None:
        """Close the current pack: encode it and commit it to the outbox."""
        now = math.inf if final else time.time()
        for sensor in self.sensors:
            for name, when, out in self.pipelines[sensor.key].flush(now):
                self._pending.append(senml.Reading(name, when, round(out, 4), sensor.unit))
        if not self._pending:
            return
        payload = senml.encode_cbor(self._pending, boot=self.boot_id, seq=self._seq)
        self._outbox.put(payload, len(self._pending))
        self._sent_bytes += len(payload)
        self._sent_readings += len(self._pending)
        self._seq += 1
        self._pending = []

    def reboot(self) -> str:
        """Seal what is pending and start a new boot id from sequence 0; the previous boot id."""
        old = self.boot_id
        self.seal(final=True)
        self.boot_id = new_boot_id()
        self._seq = 0
        return old

    def apply(self, settings: AgentSettings) -> None:
        """Apply validated settings live: pipelines whose settings changed start afresh (keeping
        their counts), and the sampling loop wakes to the new rate."""
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
        self._journal.note("settings applied")

    def health(self) -> Figures:
        """The agent's vital signs, as reported in ``health.*`` telemetry."""
        counters = self._outbox.counters
        pipelines = self.pipelines.values()
        inputs = sum(p.inputs for p in pipelines)
        outputs = sum(p.outputs for p in pipelines)
        invalid = sum(sum(p.invalid.values()) for p in pipelines)
        per_reading = self._sent_bytes / self._sent_readings if self._sent_readings else 0.0
        figures: Figures = {
            "uptime_s": self.uptime_s,
            "cpu_s": health.cpu_s(),
            "rss_mb": health.rss_mb(),
            "load_1m": health.load_average(),
            "disk_free_mb": health.disk_free_mb(self._state_dir or Path()),
            "outbox_packs": len(self._outbox),
            "outbox_bytes": self._outbox.bytes,
            "readings_dropped_oldest": counters.readings_dropped_oldest,
            "readings_dropped_newest": counters.readings_dropped_newest,
            "readings_expired": counters.readings_expired,
            "readings_invalid": invalid,
            "readings_filtered": inputs - outputs - invalid,
            "bytes_saved": (inputs - outputs - invalid) * per_reading,
            "link_ms": self._uplink.stats.ack_ms,
            **self._more_health(),
            "power_mode": list(PowerMode).index(self.power_mode),
        }
        battery = self._battery
        if battery is not None:
            figures["battery_pct"] = battery.level_pct
            figures["charging"] = battery.charging(time.time(), self.power_mode)
        return figures

    def _update_power(self, t: float) -> PowerMode:
        battery = self._battery
        mode = mode_for(None if battery is None else battery.update(t, self.power_mode))
        if mode is not self.power_mode:
            self._journal.note(f"power mode {self.power_mode} -> {mode}")
            self.power_mode = mode
            self._uplink.duty_cycle = mode is PowerMode.CRITICAL
        return mode
