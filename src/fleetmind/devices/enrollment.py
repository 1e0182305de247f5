"""Enrollment groups: zero-touch provisioning by claim (like AWS IoT fleet provisioning by claim
and Azure DPS enrollment groups). Pure logic, no I/O.

An operator creates a group with a claim token, an expiry, a number of uses, a device-name
template and the initial tags and desired twin of its devices. A new device presents the claim
token once, with a CSR, and receives its own certificate; the claim token is no MQTT credential
and opens nothing but the claim itself.
"""

import hashlib
import re
import secrets
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from fleetmind.devices.errors import InvalidDevice

CLAIM_PREFIX = "fmc_"
_FIELD = re.compile(r"\{(name|n)\}")


@dataclass(frozen=True, slots=True)
class EnrollmentGroup:
    name: str
    #: ``{name}`` is what the device calls itself, ``{n}`` the use number (0001, 0002, ...)
    name_template: str
    max_uses: int
    uses: int
    expires_at: datetime
    created_at: datetime
    tags: dict[str, str] = field(default_factory=dict)
    desired: dict[str, Any] = field(default_factory=dict)


def new_claim_token() -> str:
    return CLAIM_PREFIX + secrets.token_urlsafe(32)


def hash_claim(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def check_template(template: str) -> str:
    """A template must make distinct names: it uses ``{n}`` or ``{name}``, and nothing else."""
    if not _FIELD.search(template):
        raise InvalidDevice("a name template needs {n} or {name}, or every device gets one name")
    if "{" in _FIELD.sub("", template) or "}" in _FIELD.sub("", template):
        raise InvalidDevice("a name template knows only {name} and {n}")
    return template


def device_name(template: str, *, use: int, requested: str | None) -> str:
    """The name for the ``use``-th device of a group that calls itself ``requested``."""
    if "{name}" in template and not requested:
        raise InvalidDevice("this enrollment group names devices after what they call themselves")
    return template.replace("{n}", f"{use:04d}").replace("{name}", requested or "")
