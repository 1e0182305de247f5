"""What the agent reads: sensors as frozen descriptions with a ``value_fn``.

The agent has no sensor of its own: whoever starts it gives it its sensors (``fleetmind agent``
and the simulator give it the simulated world's, ``fleetmind.sim.world``), and may inject faults
into their values on the way in.
"""

from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class SensorDescription:
    key: str
    unit: str
    #: what the sensor can measure; a value outside it is passed on as invalid
    low: float
    high: float
    #: the sensor's value at a time (seconds since the epoch); None: it gave nothing this time
    value_fn: Callable[[float], float | None]


#: fault injection: a sensor's value at a time as the fault leaves it, (key, t, value) -> value,
#: None when the sensor drops out
Anomalies = Callable[[str, float, float], float | None]
