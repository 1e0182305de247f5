"""The simulated world: what the simulator's agents (and ``fleetmind agent``) read.

Each device sits in an :class:`Environment` of its own: a daily cycle with noise and slow drift,
deterministic for a seed. :data:`SIMULATED_SENSORS` measure it; an :class:`AnomalyPlan` injects
spikes, level shifts, stuck values and dropouts so detectors have something to find; a
:class:`SimulatedBattery` with a solar panel stands in for a fuel gauge. A :class:`World` binds
them for one device into what an agent takes from its configuration: sensors (frozen
descriptions with a ``value_fn``), anomaly injection and a battery.
"""

import math
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial

from fleetmind.agent.power import PowerMode
from fleetmind.agent.sensors import SensorDescription

DAY_S = 86_400.0


@dataclass(slots=True)
class Environment:
    """The physical world one simulated device sits in; deterministic for a given seed."""

    seed: int
    rng: random.Random = field(init=False)
    phase: float = field(init=False)
    drift_per_day: float = field(init=False)
    #: when the device first read its sensors; drift grows from there
    origin: float | None = field(init=False, default=None)

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed)
        self.phase = self.rng.uniform(0, 2 * math.pi)
        self.drift_per_day = self.rng.gauss(0, 0.3)

    def daily(self, t: float) -> float:
        """-1..1 over a day, peaking in the afternoon, shifted per device."""
        return math.sin(2 * math.pi * t / DAY_S + self.phase)

    def drift(self, t: float) -> float:
        if self.origin is None:
            self.origin = t
        return self.drift_per_day * (t - self.origin) / DAY_S

    def noise(self, sigma: float) -> float:
        return self.rng.gauss(0, sigma)


@dataclass(frozen=True, slots=True)
class SimulatedSensor:
    """A sensor of the simulated world: what it measures of an environment at a time."""

    key: str
    unit: str
    low: float
    high: float
    signal: Callable[[Environment, float], float]

    def reading(self, env: Environment) -> SensorDescription:
        """The sensor as an agent takes it: its ``value_fn`` reads ``env``."""
        value_fn = partial(self.signal, env)
        return SensorDescription(self.key, self.unit, self.low, self.high, value_fn)


SIMULATED_SENSORS: tuple[SimulatedSensor, ...] = (
    SimulatedSensor(
        "temperature", "Cel", -40, 85,
        lambda env, t: 21 + 4 * env.daily(t) + env.drift(t) + env.noise(0.15),
    ),
    SimulatedSensor(
        "humidity", "%RH", 0, 100,
        lambda env, t: min(100.0, max(0.0, 50 - 12 * env.daily(t) + env.noise(0.8))),
    ),
    SimulatedSensor(
        "vibration", "m/s2", 0, 50,
        lambda env, t: abs(0.4 + 0.1 * math.sin(2 * math.pi * t / 7) + env.noise(0.05)),
    ),
    SimulatedSensor(
        "power", "W", 0, 5000,
        lambda env, t: max(0.0, 120 + 60 * max(0.0, env.daily(t)) + env.noise(3)),
    ),
)  # fmt: skip


@dataclass(slots=True)
class AnomalyPlan:
    """Per-sample chances of each anomaly; an active one lasts ``duration_s``."""

    spike: float = 0.0
    level_shift: float = 0.0
    stuck: float = 0.0
    dropout: float = 0.0
    duration_s: float = 30.0
    _active: dict[str, tuple[str, float, float]] = field(default_factory=dict)

    def apply(self, env: Environment, key: str, t: float, value: float) -> float | None:
        """The value as the anomaly leaves it; None when the sensor dropped out."""
        active = self._active.get(key)
        if active is not None and t >= active[1]:
            del self._active[key]
            active = None
        if active is None:
            roll = env.rng.random()
            for kind, chance in (
                ("level_shift", self.level_shift),
                ("stuck", self.stuck),
                ("dropout", self.dropout),
            ):
                if roll < chance:
                    self._active[key] = active = (kind, t + self.duration_s, value)
                    break
                roll -= chance
        if active is not None:
            kind, _, frozen = active
            if kind == "dropout":
                return None
            if kind == "stuck":
                return frozen
            return value + 5 * (abs(value) * 0.1 + 1)
        if env.rng.random() < self.spike:
            return value + 10 * (abs(value) * 0.1 + 1)
        return value


#: what a simulated device draws in each power mode (watts)
DRAW_W = {PowerMode.NORMAL: 0.9, PowerMode.SAVER: 0.5, PowerMode.CRITICAL: 0.2}


@dataclass(slots=True)
class SimulatedBattery:
    """A battery with a solar panel: drains by the draw of the current mode, charges by day."""

    level_pct: float = 80.0
    capacity_wh: float = 20.0
    solar_peak_w: float = 1.5
    phase: float = 0.0
    _last: float | None = None

    def solar_w(self, t: float) -> float:
        return max(0.0, self.solar_peak_w * math.sin(2 * math.pi * t / DAY_S + self.phase))

    def update(self, t: float, mode: PowerMode) -> float:
        """Advance to time ``t`` under ``mode``; return the level in percent."""
        if self._last is not None and t > self._last:
            hours = (t - self._last) / 3600
            net_wh = (self.solar_w(t) - DRAW_W[mode]) * hours
            self.level_pct = min(100.0, max(0.0, self.level_pct + 100 * net_wh / self.capacity_wh))
        self._last = t
        return self.level_pct

    def charging(self, t: float, mode: PowerMode) -> bool:
        return self.solar_w(t) > DRAW_W[mode]


@dataclass(slots=True)
class World:
    """One simulated device's world, as its agent takes it: ``AgentConfig(sensors=world.sensors,
    anomalies=world.inject, battery=world.battery)``. The sensors and the anomalies draw on one
    random stream, so a seed gives the same signal."""

    seed: int = 0
    anomalies: AnomalyPlan = field(default_factory=AnomalyPlan)
    battery: SimulatedBattery | None = None
    environment: Environment = field(init=False)
    sensors: tuple[SensorDescription, ...] = field(init=False)

    def __post_init__(self) -> None:
        self.environment = Environment(self.seed)
        self.sensors = tuple(sensor.reading(self.environment) for sensor in SIMULATED_SENSORS)

    def inject(self, key: str, t: float, value: float) -> float | None:
        """The anomaly plan applied to a sensor's value; None when the sensor dropped out."""
        return self.anomalies.apply(self.environment, key, t, value)
