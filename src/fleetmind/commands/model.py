"""A command's life: queued (device offline) -> sent -> succeeded | failed | expired."""

import re
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

NAME_PATTERN = re.compile(r"[a-z][a-z0-9_]{0,63}")


class Status(StrEnum):
    QUEUED = "queued"
    SENT = "sent"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    EXPIRED = "expired"

    @property
    def done(self) -> bool:
        return self in (Status.SUCCEEDED, Status.FAILED, Status.EXPIRED)


@dataclass(frozen=True, slots=True)
class CommandRecord:
    id: str
    device_id: str
    name: str
    args: dict[str, Any]
    status: Status
    created_at: datetime
    expires_at: datetime
    result: dict[str, Any] | None = None
    error: str | None = None
    completed_at: datetime | None = None
