"""Audit events. Pure data, no I/O.

An event never holds a secret: ``detail`` names things (a device id, a role, a token's name or
id), never a password, token, key or certificate.
"""

from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum


class Outcome(StrEnum):
    SUCCESS = "success"
    FAILURE = "failure"


@dataclass(frozen=True, slots=True)
class Actor:
    """Who asked a service for something, and from where: what the audit log records of them.

    The adapters build it (the API from the bearer's principal and the client's address, the
    dashboard with the source ``dashboard``, the uplink consumer with ``mqtt``) and hand it to
    the service, which records the event.
    """

    #: a user with the token they used (``ana (token 7)``), a device id, or ``-`` when unknown
    name: str
    #: the client's address, ``dashboard``, ``mqtt``, or ``-`` when the hub itself acted
    source: str = "-"


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


def in_utc(moment: datetime) -> datetime:
    """``moment`` in UTC, as the log keeps its times (a naive one is taken as UTC already);
    ValueError if UTC cannot represent it (year 1 at +01:00, year 9999 at -01:00)."""
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    try:
        return moment.astimezone(UTC)
    except OverflowError:
        raise ValueError(f"{moment.isoformat()} is outside the years 1 to 9999 in UTC") from None
