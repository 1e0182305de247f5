"""Devices, their MQTT credentials and the topic ACL. Pure logic, no I/O.

Device secrets are 256-bit random strings, so a slow password hash buys nothing; they are stored
in Mosquitto's own PBKDF2-SHA512 format (``$7$iterations$salt$hash``) so one hash serves both the
embedded broker's check and the password file written for an external Mosquitto.
"""

import base64
import hashlib
import hmac
import secrets
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

from fleetmind.wire import topics

#: the hub's own MQTT identity; device ids start with a letter or digit, so it cannot clash
HUB_USERNAME = "_hub"
PBKDF2_ITERATIONS = 1000
#: MQTT logins by password: this many failures of one username from one source address within
#: the window lock that (username, source) pair for the lockout (the hub's identity never)
MQTT_MAX_FAILURES = 10
MQTT_WINDOW_S = 300.0
MQTT_LOCKOUT_S = 900.0
#: (username, source) pairs whose recent failures are remembered
MQTT_MAX_TRACKED = 10_000
#: failed MQTT logins from one source recorded in the audit log per minute; the rest are counted
MQTT_AUDITED_PER_MINUTE = 20


class Action(StrEnum):
    PUBLISH = "publish"
    SUBSCRIBE = "subscribe"


class DeviceState(StrEnum):
    """The lifecycle: an active device may connect; a suspended one may not until reactivated;
    a decommissioned one never again (its certificates are revoked)."""

    ACTIVE = "active"
    SUSPENDED = "suspended"
    DECOMMISSIONED = "decommissioned"


@dataclass(frozen=True, slots=True)
class Device:
    id: str
    name: str
    created_at: datetime
    #: this record's own identity: random, never reused, so a device added again under a
    #: deleted device's name is another device (certificates are bound to it, not to the name)
    uid: str
    online: bool = False
    last_seen: datetime | None = None
    boot_id: str | None = None
    state: DeviceState = DeviceState.ACTIVE
    tags: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class DeviceCertificate:
    """What the registry keeps of a certificate it issued (never a private key)."""

    serial: str
    device_id: str
    #: the uid of the device record it was issued for (None: that record was gone before
    #: certificates were bound to records; such certificates are revoked)
    device_uid: str | None
    fingerprint: str
    issued_at: datetime
    not_after: datetime
    revoked_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class Admission:
    """Who may be connected: the active devices with the uid of their current record, and the
    valid (unrevoked) certificates with the uid of the record each was issued for. The one rule
    for a connection, from a snapshot of the registry."""

    #: device id -> uid of its current record, for active devices
    active: dict[str, str]
    #: serial -> uid of the device record it was issued for, for unrevoked certificates
    certificates: dict[str, str] = field(default_factory=dict)

    def allows(self, device_id: str, serial: str | None = None) -> bool:
        """An active device; with ``serial``, also a valid certificate issued to this very
        record (a certificate of an earlier device of the same name is not enough)."""
        uid = self.active.get(device_id)
        if uid is None:
            return False
        return serial is None or self.certificates.get(serial) == uid


def new_secret() -> str:
    return secrets.token_urlsafe(32)


def new_uid() -> str:
    """A device record's uid: 128 random bits in hex."""
    return secrets.token_hex(16)


def hash_secret(secret: str, *, salt: bytes | None = None) -> str:
    """Hash in Mosquitto's ``$7$`` format (PBKDF2-SHA512, base64 salt and digest)."""
    salt = salt if salt is not None else secrets.token_bytes(12)
    digest = hashlib.pbkdf2_hmac("sha512", secret.encode(), salt, PBKDF2_ITERATIONS)
    return (
        f"$7${PBKDF2_ITERATIONS}${base64.b64encode(salt).decode()}"
        f"${base64.b64encode(digest).decode()}"
    )


def verify_secret(secret: str, hashed: str) -> bool:
    try:
        _, kind, iterations, salt, digest = hashed.split("$")
        if kind != "7":
            return False
        actual = hashlib.pbkdf2_hmac(
            "sha512", secret.encode(), base64.b64decode(salt), int(iterations)
        )
    except ValueError:
        return False
    return hmac.compare_digest(actual, base64.b64decode(digest))


def _matches(topic_filter: str, pattern: str) -> bool:
    """Does every topic ``topic_filter`` can match also match ``pattern``?"""
    want, allowed = topic_filter.split("/"), pattern.split("/")
    for index, level in enumerate(allowed):
        if level == "#":
            return True
        if index >= len(want):
            return False
        if level == "+":
            if want[index] == "#":
                return False
            continue
        if want[index] != level:
            return False
    return len(want) == len(allowed)


def is_allowed(username: str | None, topic: str, action: Action) -> bool:
    """The topic ACL of the design guide.

    A device publishes only under its own ``up/`` and subscribes only to its own ``down/`` and to
    ``fleet/down/``; the hub reads every ``up/`` and writes every ``down/``; nobody else may do
    anything.

    >>> is_allowed("d1", "fm/v1/d/d1/up/telemetry", Action.PUBLISH)
    True
    >>> is_allowed("d1", "fm/v1/d/d2/down/#", Action.SUBSCRIBE)
    False
    """
    if not username or (topic.startswith("$") and not topic.startswith("$share/hub/")):
        return False
    if username == HUB_USERNAME:
        if topic.startswith("$share/hub/"):
            topic = topic.removeprefix("$share/hub/")
        if action is Action.PUBLISH:
            return _matches(topic, f"{topics.ROOT}/d/+/down/#") or _matches(
                topic, f"{topics.ROOT}/fleet/down/#"
            )
        return _matches(topic, f"{topics.ROOT}/d/+/up/#")
    if not topics.DEVICE_ID_PATTERN.fullmatch(username):
        return False
    if action is Action.PUBLISH:
        return _matches(topic, f"{topics.device_prefix(username)}/up/#")
    return _matches(topic, f"{topics.device_prefix(username)}/down/#") or _matches(
        topic, f"{topics.ROOT}/fleet/down/#"
    )


def right_listener(username: str, *, on_hub_listener: bool) -> bool:
    """The hub's identity only on the hub's listener, and devices only on theirs (as the
    per-listener password files of the Mosquitto layout do)."""
    return on_hub_listener == (username == HUB_USERNAME)


class LoginGuard:
    """Failed MQTT logins per (username, source address), and the pairs they locked.

    ``MQTT_MAX_FAILURES`` failures within ``MQTT_WINDOW_S`` lock the pair for
    ``MQTT_LOCKOUT_S``, so a guesser elsewhere cannot lock a device out of its own connection;
    the hub's identity is never locked (a 256-bit secret, and ingest must not stop). Times are
    seconds of a monotonic clock, passed in. Not thread-safe: the caller serialises.
    """

    def __init__(self) -> None:
        self._failures: dict[tuple[str, str], deque[float]] = {}
        self._locked_until: dict[tuple[str, str], float] = {}

    def locked(self, username: str, source: str, now: float) -> bool:
        return now < self._locked_until.get((username, source), 0.0)

    def failed(self, username: str, source: str, now: float) -> bool:
        """Count a failure; True when it locks the pair."""
        key = (username, source)
        recent = self._failures.setdefault(key, deque())
        recent.append(now)
        while recent and recent[0] < now - MQTT_WINDOW_S:
            recent.popleft()
        locks = len(recent) >= MQTT_MAX_FAILURES and username != HUB_USERNAME
        if locks:
            self._locked_until[key] = now + MQTT_LOCKOUT_S
            recent.clear()
        if len(self._failures) > MQTT_MAX_TRACKED:  # a flood of made-up names: forget the oldest
            self._failures.pop(next(iter(self._failures)))
        if len(self._locked_until) > MQTT_MAX_TRACKED:
            self._locked_until = {k: t for k, t in self._locked_until.items() if t > now}
        return locks


class FailureQuota:
    """How many failed logins from one source make it into the audit log: at most
    ``MQTT_AUDITED_PER_MINUTE`` a minute, so a guesser trying many names cannot flood it. The
    failures left out are counted, and the count is told with the source's next record.
    Times are seconds of a monotonic clock, passed in. Not thread-safe: the caller serialises.
    """

    def __init__(self) -> None:
        #: source -> (start of its minute, recorded in it, left out since the last record)
        self._sources: dict[str, tuple[float, int, int]] = {}

    def admit(self, source: str, now: float) -> int | None:
        """None when this failure goes unrecorded; else how many were left out before it.

        >>> quota = FailureQuota()
        >>> [quota.admit("10.0.0.9", 0.0) for _ in range(MQTT_AUDITED_PER_MINUTE)][-1]
        0
        >>> quota.admit("10.0.0.9", 1.0), quota.admit("10.0.0.9", 2.0)
        (None, None)
        >>> quota.admit("10.0.0.9", 61.0)
        2
        """
        start, recorded, left_out = self._sources.pop(source, (now, 0, 0))
        if now - start >= 60.0:
            start, recorded = now, 0
        if recorded >= MQTT_AUDITED_PER_MINUTE:
            self._sources[source] = (start, recorded, left_out + 1)
            return None
        self._sources[source] = (start, recorded + 1, 0)
        if len(self._sources) > MQTT_MAX_TRACKED:  # the least recently heard-from goes
            self._sources.pop(next(iter(self._sources)))
        return left_out
