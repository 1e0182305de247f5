"""Sensors as frozen descriptions with a ``value_fn``, and a simulated environment to read.

The simulated signals follow a daily cycle with noise and slow drift; an :class:`AnomalyPlan`
injects spikes, level shifts, stuck values and dropouts so detectors have something to find.
"""

import math
import random
from collections.abc import Callable
from dataclasses import dataclass, field

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
class SensorDescription:
    key: str
    unit: str
    low: float
    high: float
    value_fn: Callable[[Environment, float], float]


SIMULATED_SENSORS: tuple[SensorDescription, ...] = (
    SensorDescription(
        "temperature", "Cel", -40, 85,
        lambda env, t: 21 + 4 * env.daily(t) + env.drift(t) + env.noise(0.15),
    ),
    SensorDescription(
        "humidity", "%RH", 0, 100,
        lambda env, t: min(100.0, max(0.0, 50 - 12 * env.daily(t) + env.noise(0.8))),
    ),
    SensorDescription(
        "vibration", "m/s2", 0, 50,
        lambda env, t: abs(0.4 + 0.1 * math.sin(2 * math.pi * t / 7) + env.noise(0.05)),
    ),
    SensorDescription(
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
