"""The retained ``up/status`` message: a device's birth (online) and last will (offline)."""

import json
from dataclasses import dataclass
from typing import Literal

from fleetmind.wire.errors import DecodeError
from fleetmind.wire.text import check_text

State = Literal["online", "offline"]


@dataclass(frozen=True, slots=True)
class Status:
    state: State
    boot: str | None = None


def encode(status: Status) -> bytes:
    return json.dumps({"state": status.state, "boot": status.boot}).encode()


def decode(payload: bytes) -> Status:
    if len(payload) > 1024:
        raise DecodeError("status message too long", reason="size")
    try:
        document = json.loads(payload)
    except (ValueError, UnicodeDecodeError):
        raise DecodeError("status is not JSON") from None
    if not isinstance(document, dict) or document.get("state") not in ("online", "offline"):
        raise DecodeError("status needs state 'online' or 'offline'", reason="field")
    boot = document.get("boot")
    return Status(
        document["state"], check_text(boot[:64], "boot") if isinstance(boot, str) else None
    )
