"""Battery and power modes: a low battery stretches sampling and upload intervals.

    normal    battery >= 30 % (or mains power)   intervals as configured
    saver     10 % <= battery < 30 %              sampling x2, packs x5
    critical  battery < 10 %                      sampling x5, packs x30, duty-cycled uplink

In critical mode the uplink connects only to flush the outbox and then disconnects until the
next pack is sealed. ``SimulatedBattery`` stands in for a real fuel gauge in the simulator.
"""

import math
from dataclasses import dataclass
from enum import StrEnum

from fleetmind.agent.sensors import DAY_S


class PowerMode(StrEnum):
    NORMAL = "normal"
    SAVER = "saver"
    CRITICAL = "critical"


#: (sampling interval factor, pack interval factor) per mode
STRETCH = {
    PowerMode.NORMAL: (1.0, 1.0),
    PowerMode.SAVER: (2.0, 5.0),
    PowerMode.CRITICAL: (5.0, 30.0),
}
#: what a device draws in each mode (watts)
DRAW_W = {PowerMode.NORMAL: 0.9, PowerMode.SAVER: 0.5, PowerMode.CRITICAL: 0.2}
SAVER_BELOW = 30.0
CRITICAL_BELOW = 10.0


def mode_for(level_pct: float | None) -> PowerMode:
    """The power mode for a battery level; None (no battery) is mains power."""
    if level_pct is None or level_pct >= SAVER_BELOW:
        return PowerMode.NORMAL
    if level_pct >= CRITICAL_BELOW:
        return PowerMode.SAVER
    return PowerMode.CRITICAL


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
