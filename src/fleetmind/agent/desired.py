"""The settings of the desired twin: validated as a whole, applied live to the sampler, reported
back, and kept on disk (0600) as the last known document, so the agent starts from them without
the hub."""

import json
import logging
from pathlib import Path
from typing import Any

from fleetmind.agent.journal import Journal
from fleetmind.agent.pipeline import SettingsError
from fleetmind.agent.sampling import Sampler
from fleetmind.agent.settings import AgentSettings
from fleetmind.files import write_file
from fleetmind.twins.client import TwinClient

log = logging.getLogger(__name__)

TWIN_FILE = "twin.json"


class DesiredSettings:
    def __init__(self, sampler: Sampler, journal: Journal, state_dir: Path | None) -> None:
        self._sampler = sampler
        self._journal = journal
        self._path = state_dir / TWIN_FILE if state_dir is not None else None
        #: the settings document applied (reported back as ``settings``)
        self.document: object = {}
        self.twin = TwinClient(self._apply_desired)
        self._restore()

    def apply(self, document: object) -> AgentSettings:
        """Validate a settings document and apply it live; SettingsError says what is wrong."""
        settings = AgentSettings.parse(document)
        self._sampler.apply(settings)
        return settings

    def set_sample_hz(self, sample_hz: object) -> float:
        """The applied document with another sampling rate (the ``set_sampling`` command)."""
        document = dict(self.document) if isinstance(self.document, dict) else {}
        document["sample_hz"] = sample_hz
        settings = self.apply(document)
        self.document = document
        return settings.sample_hz

    def _apply_desired(self, desired: dict[str, Any]) -> dict[str, Any]:
        """A desired twin document: apply its ``settings``, keep it as the last known one."""
        document = desired.get("settings", {})
        try:
            self.apply(document)
        except SettingsError as exc:
            self._journal.note(f"desired settings refused: {exc}")
            return {"settings": self.document, "error": str(exc)}
        self.document = document
        if self._path is not None:
            record = {"version": self.twin.applied_version + 1, "desired": desired}
            write_file(self._path, json.dumps(record))
        return {"settings": document, "error": None}

    def _restore(self) -> None:
        """Start from the last known desired document, so the agent works without the hub."""
        path = self._path
        if path is None or not path.exists():
            return
        try:
            record = json.loads(path.read_text())
            version, desired = int(record["version"]), record["desired"]
            self.apply(desired.get("settings", {}))
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
            log.warning(
                "%s: ignoring unreadable last known settings: %s", self._journal.device_id, exc
            )
            return
        self.document = desired.get("settings", {})
        self.twin.applied_version = version
        self.twin.reported = {"settings": self.document, "error": None}
