"""A device's MQTT credentials and the private files that hold secrets on disk."""

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True, slots=True)
class Credentials:
    host: str
    port: int
    username: str
    password: str

    def __repr__(self) -> str:  # keep the password out of logs and tracebacks
        return f"Credentials({self.username}@{self.host}:{self.port})"

    @classmethod
    def from_device(cls, device: dict[str, Any]) -> "Credentials":
        """From the JSON the hub returns when a device is added (``fleetmind device add``)."""
        try:
            mqtt = device["mqtt"]
            return cls(str(mqtt["host"]), int(mqtt["port"]), mqtt["username"], mqtt["password"])
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"not a device credentials document: missing {exc}") from None

    @classmethod
    def load(cls, path: Path) -> "Credentials":
        try:
            document = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise ValueError(f"cannot read credentials from {path}: {exc}") from None
        return cls.from_device(document)

    def document(self) -> dict[str, Any]:
        return {"id": self.username, "mqtt": asdict(self)}


def write_private(path: Path, text: str) -> None:
    """Replace ``path`` with ``text``, readable by its owner only (mode 0600) from the start."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.unlink(missing_ok=True)
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w") as handle:
        handle.write(text)
    temporary.replace(path)
