"""Edge processing of one sensor's readings, configurable per sensor. Pure logic, no I/O.

A reading goes through, in order: validation (range, rate of change, stuck value), calibration
(gain and offset), a moving average, decimation (every n-th value), a deadband, and an optional
aggregation window that replaces the values of each window with its min, max, mean and count.
Each stage is off by default; a settings document (from the device twin) turns them on.
"""

import math
from collections import Counter, deque
from dataclasses import dataclass, field, fields
from typing import Any


class SettingsError(ValueError):
    """A settings document the agent cannot apply."""


@dataclass(frozen=True, slots=True)
class SensorSettings:
    low: float | None = None
    high: float | None = None
    #: the largest change per second that is physically plausible
    max_rate: float | None = None
    #: this many identical values in a row mark the sensor as stuck
    stuck_after: int | None = None
    gain: float = 1.0
    offset: float = 0.0
    #: moving average over this many values
    average: int = 1
    #: keep every n-th value
    every: int = 1
    #: emit only when the value moved more than this from the last emitted one
    deadband: float | None = None
    #: aggregate over windows of this many seconds (0: off)
    window_s: float = 0.0

    @classmethod
    def parse(cls, document: object) -> "SensorSettings":
        if not isinstance(document, dict):
            raise SettingsError("sensor settings must be an object")
        known = {item.name for item in fields(cls)}
        if unknown := set(document) - known:
            raise SettingsError(f"unknown sensor settings: {', '.join(sorted(unknown))}")
        values: dict[str, Any] = {}
        for name, value in document.items():
            if value is None:
                continue
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise SettingsError(f"{name} must be a number")
            if not math.isfinite(value):
                raise SettingsError(f"{name} must be finite")
            values[name] = value
        for name in ("average", "every", "stuck_after"):
            if name in values:
                if values[name] != int(values[name]) or values[name] < 1:
                    raise SettingsError(f"{name} must be a whole number >= 1")
                values[name] = int(values[name])
        for name in ("deadband", "window_s", "max_rate"):
            if values.get(name, 0) < 0:
                raise SettingsError(f"{name} must not be negative")
        if values.get("average", 1) > 10_000:
            raise SettingsError("average must be at most 10000")
        return cls(**values)


@dataclass(slots=True)
class _Window:
    start: float
    low: float = math.inf
    high: float = -math.inf
    total: float = 0.0
    count: int = 0

    def add(self, value: float) -> None:
        self.low = min(self.low, value)
        self.high = max(self.high, value)
        self.total += value
        self.count += 1


Output = tuple[str, float, float]


@dataclass(slots=True)
class SensorPipeline:
    """Feed values with :meth:`push`; it returns what should be sent, as (name, time, value)."""

    key: str
    settings: SensorSettings = field(default_factory=SensorSettings)
    inputs: int = 0
    outputs: int = 0
    invalid: Counter[str] = field(default_factory=Counter)
    _last_valid: tuple[float, float] | None = None
    _same: int = 0
    _recent: deque[float] = field(default_factory=deque)
    _seen: int = 0
    _emitted: float | None = None
    _window: _Window | None = None

    def push(self, t: float, value: float) -> list[Output]:
        self.inputs += 1
        reason = self._invalid(t, value)
        if reason is not None:
            self.invalid[reason] += 1
            return []
        value = value * self.settings.gain + self.settings.offset
        self._recent.append(value)
        while len(self._recent) > self.settings.average:
            self._recent.popleft()
        value = sum(self._recent) / len(self._recent)
        self._seen += 1
        if (self._seen - 1) % self.settings.every:
            return []
        band = self.settings.deadband
        if band is not None and self._emitted is not None and abs(value - self._emitted) <= band:
            return []
        self._emitted = value
        if self.settings.window_s <= 0:
            return self._out([(self.key, t, value)])
        start = math.floor(t / self.settings.window_s) * self.settings.window_s
        out = self.flush() if self._window and self._window.start != start else []
        if self._window is None:
            self._window = _Window(start)
        self._window.add(value)
        return out

    def flush(self, now: float = math.inf) -> list[Output]:
        """Close the aggregation window if it has ended by ``now`` (default: close it anyway)."""
        window = self._window
        if window is None or window.start + self.settings.window_s > now:
            return []
        self._window = None
        t = window.start
        return self._out(
            [
                (f"{self.key}_min", t, window.low),
                (f"{self.key}_max", t, window.high),
                (f"{self.key}_mean", t, window.total / window.count),
                (f"{self.key}_count", t, float(window.count)),
            ]
        )

    def _invalid(self, t: float, value: float) -> str | None:
        settings = self.settings
        if not math.isfinite(value):
            return "type"
        if (settings.low is not None and value < settings.low) or (
            settings.high is not None and value > settings.high
        ):
            return "range"
        last = self._last_valid
        if (
            last is not None
            and settings.max_rate is not None
            and t > last[0]
            and abs(value - last[1]) / (t - last[0]) > settings.max_rate
        ):
            return "rate"
        self._same = self._same + 1 if last is not None and value == last[1] else 1
        self._last_valid = (t, value)
        if settings.stuck_after is not None and self._same >= settings.stuck_after:
            return "stuck"
        return None

    def _out(self, out: list[Output]) -> list[Output]:
        self.outputs += len(out)
        return out
