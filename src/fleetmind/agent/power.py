"""Power modes: a low battery stretches sampling and upload intervals.

    normal    battery >= 30 % (or mains power)   intervals as configured
    saver     10 % <= battery < 30 %              sampling x2, packs x5
    critical  battery < 10 %                      sampling x5, packs x30, duty-cycled uplink

In critical mode the uplink connects only to flush the outbox and then disconnects until the
next pack is sealed. The agent watches the :class:`Battery` it is given (a fuel gauge; the
simulator's ``SimulatedBattery``), or none on mains power.
"""

from enum import StrEnum
from typing import Protocol


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
SAVER_BELOW = 30.0
CRITICAL_BELOW = 10.0


class Battery(Protocol):
    """A fuel gauge: its level (percent) at a time, and whether it charges, under a power mode
    (what the device draws depends on it)."""

    @property
    def level_pct(self) -> float: ...

    def update(self, t: float, mode: PowerMode) -> float:
        """The level in percent at time ``t``, the device having run in ``mode`` until then."""
        ...

    def charging(self, t: float, mode: PowerMode) -> bool: ...


def mode_for(level_pct: float | None) -> PowerMode:
    """The power mode for a battery level; None (no battery) is mains power."""
    if level_pct is None or level_pct >= SAVER_BELOW:
        return PowerMode.NORMAL
    if level_pct >= CRITICAL_BELOW:
        return PowerMode.SAVER
    return PowerMode.CRITICAL
