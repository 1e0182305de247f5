"""Audit events. Pure data, no I/O.

An event never holds a secret: ``detail`` names things (a device id, a role, a token's name or
id), never a password, token, key or certificate.
"""

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum


class Outcome(StrEnum):
    SUCCESS = "success"
    FAILURE = "failure"


@dataclass(frozen=True, slots=True)
class AuditEvent:
    #: dotted: ``auth.login``, ``auth.lockout``, ``mqtt.auth``, ``device.add``, ...
    type: str
    at: datetime
    #: who: a user name, ``token:<id>``, a device id, or ``-`` when unknown
    actor: str
    #: the client's address (``-`` when the hub itself acted)
    source: str
    outcome: Outcome
    detail: str = ""
    id: int = 0


@dataclass(frozen=True, slots=True)
class AuditQuery:
    type_prefix: str | None = None
    actor: str | None = None
    since: datetime | None = None
    outcome: Outcome | None = None
    limit: int = 100
