"""Devices, their MQTT credentials and the topic ACL. Pure logic, no I/O.

Device secrets are 256-bit random strings, so a slow password hash buys nothing; they are stored
in Mosquitto's own PBKDF2-SHA512 format (``$7$iterations$salt$hash``) so one hash serves both the
embedded broker's check and the password file written for an external Mosquitto.
"""

import base64
import hashlib
import hmac
import secrets
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

from fleetmind.wire import topics

#: the hub's own MQTT identity; device ids start with a letter or digit, so it cannot clash
HUB_USERNAME = "_hub"
PBKDF2_ITERATIONS = 1000


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


def mosquitto_password_file(entries: dict[str, str]) -> str:
    """Mosquitto ``password_file`` lines from username to ``$7$`` hash."""
    return "".join(f"{username}:{hashed}\n" for username, hashed in sorted(entries.items()))


def mosquitto_acl_file(cut_off: Iterable[str] = ()) -> str:
    """Mosquitto ``acl_file`` equivalent to :func:`is_allowed` (``%u`` is the username).

    Devices in ``cut_off`` (suspended, decommissioned, deleted) are denied every topic: Mosquitto
    rereads the file on SIGHUP and checks each message, so a device already connected can no
    longer send or receive anything (its next connection is refused by passwd and CRL)."""
    root = topics.ROOT
    denied = "".join(f"user {device}\ntopic deny #\n\n" for device in sorted(cut_off))
    return (
        "# Written by FleetMind: devices publish under their own up/, read their own down/.\n"
        f"{denied}"
        f"user {HUB_USERNAME}\n"
        f"topic read {root}/d/+/up/#\n"
        f"topic write {root}/d/+/down/#\n"
        f"topic write {root}/fleet/down/#\n"
        "\n"
        f"pattern write {root}/d/%u/up/#\n"
        f"pattern read {root}/d/%u/down/#\n"
        f"pattern read {root}/fleet/down/#\n"
    )


def mosquitto_config(directory: str, host: str, port: int, tls_port: int | None = None) -> str:
    """A ``mosquitto.conf`` for FleetMind: no anonymous clients, our password and ACL files,
    queues deep enough that a hub restart loses nothing devices sent meanwhile, and persistence,
    so a broker restart does not lose the messages queued for the hub.

    With ``tls_port``, a mutual-TLS listener too: a client certificate of the hub's CA is
    required, its common name is the username, and the hub's CRL is checked (``ca.crt``,
    ``server.crt``, ``server.key`` and ``crl.pem`` in ``directory``, written by the hub)."""
    tls = (
        ""
        if tls_port is None
        else (
            f"listener {tls_port} {host}\n"
            f"cafile {directory}/ca.crt\n"
            f"certfile {directory}/server.crt\n"
            f"keyfile {directory}/server.key\n"
            f"crlfile {directory}/crl.pem\n"
            "require_certificate true\n"
            "use_identity_as_username true\n"
            "tls_version tlsv1.2\n"
        )
    )
    return (
        "# Written by FleetMind.\n"
        "per_listener_settings false\n"
        f"listener {port} {host}\n"
        f"{tls}"
        "allow_anonymous false\n"
        f"password_file {directory}/passwd\n"
        f"acl_file {directory}/acl\n"
        "max_queued_messages 1000000\n"
        "max_inflight_messages 0\n"
        "persistence true\n"
        f"persistence_location {directory}/\n"
        "autosave_interval 60\n"
    )
