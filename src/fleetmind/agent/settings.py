"""What an agent is told to do: sampling, packing and per-sensor processing.

The document comes from the device twin's desired state (or the agent's last known copy on disk
when the hub is out of reach) and is validated as a whole before anything of it is applied.
"""

from dataclasses import dataclass, field
from typing import Any

from fleetmind.agent.pipeline import SensorSettings, SettingsError

_BOUNDS = {
    "sample_hz": (0.001, 1000.0),
    "pack_interval_s": (0.1, 3600.0),
    "health_interval_s": (1.0, 86400.0),
}


@dataclass(frozen=True, slots=True)
class AgentSettings:
    sample_hz: float = 1.0
    #: seconds of readings sealed into one pack
    pack_interval_s: float = 1.0
    #: seconds between health reports
    health_interval_s: float = 30.0
    sensors: dict[str, SensorSettings] = field(default_factory=dict)

    @classmethod
    def parse(cls, document: object) -> "AgentSettings":
        """Validate a settings document; raise :class:`SettingsError` naming what is wrong."""
        if not isinstance(document, dict):
            raise SettingsError("settings must be an object")
        if unknown := set(document) - {*_BOUNDS, "sensors"}:
            raise SettingsError(f"unknown settings: {', '.join(sorted(unknown))}")
        values: dict[str, Any] = {}
        for name, (low, high) in _BOUNDS.items():
            if name not in document or document[name] is None:
                continue
            value = document[name]
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise SettingsError(f"{name} must be a number")
            if not low <= value <= high:
                raise SettingsError(f"{name} must be between {low} and {high}")
            values[name] = float(value)
        sensors = document.get("sensors")
        sensors = {} if sensors is None else sensors
        if not isinstance(sensors, dict):
            raise SettingsError("sensors must be an object of sensor settings")
        try:
            values["sensors"] = {
                str(key): SensorSettings.parse(item) for key, item in sensors.items()
            }
        except SettingsError as exc:
            raise SettingsError(f"sensors: {exc}") from None
        return cls(**values)

    def sensor(self, key: str) -> SensorSettings:
        return self.sensors.get(key, SensorSettings())
