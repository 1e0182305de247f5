"""The FleetMind topic tree (``fm/v1/...``) and its parser.

fm/v1/d/{device_id}/up/telemetry      SenML pack
fm/v1/d/{device_id}/up/state          reported twin
fm/v1/d/{device_id}/up/status         online/offline (birth and last will; retained)
fm/v1/d/{device_id}/up/event/{kind}   events
fm/v1/d/{device_id}/down/{kind}       hub to device
fm/v1/fleet/down/{kind}               fleet-wide announcements
"""

import re
from dataclasses import dataclass
from enum import StrEnum

from fleetmind.wire.errors import TopicError

ROOT = "fm/v1"
DEVICE_ID_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
#: what the hub subscribes to for everything devices send
UPLINK_FILTER = f"{ROOT}/d/+/up/#"


class Direction(StrEnum):
    UP = "up"
    DOWN = "down"


class Up(StrEnum):
    """What a device sends, by the kind that ends its topic (``up/{kind}``)."""

    TELEMETRY = "telemetry"
    STATE = "state"
    STATUS = "status"
    COMMAND_RESULT = "event/command"
    CSR = "csr"


class Down(StrEnum):
    """What the hub sends a device (``down/{kind}``)."""

    DESIRED = "desired"
    COMMAND = "command"
    CERTIFICATE = "certificate"
    REJECT = "reject"


@dataclass(frozen=True, slots=True)
class DeviceTopic:
    """A parsed device topic: ``kind`` is ``telemetry``, ``status``, ``event/alarm``...; ``known``
    is that kind as :class:`Up` or :class:`Down` when FleetMind defines it.

    >>> parse("fm/v1/d/pump-7/up/event/command").known
    <Up.COMMAND_RESULT: 'event/command'>
    >>> parse("fm/v1/d/pump-7/up/event/alarm").known is None
    True
    """

    device_id: str
    direction: Direction
    kind: str

    @property
    def known(self) -> Up | Down | None:
        kinds = Up if self.direction is Direction.UP else Down
        return kinds(self.kind) if self.kind in kinds._value2member_map_ else None


def check_device_id(device_id: str) -> str:
    """Return ``device_id`` if it is a valid FleetMind device id, else raise TopicError."""
    if not DEVICE_ID_PATTERN.fullmatch(device_id):
        raise TopicError(
            f"invalid device id {device_id!r}: 1-64 characters of letters, digits, '_', '.', '-',"
            " starting with a letter or digit"
        )
    return device_id


def device_prefix(device_id: str) -> str:
    return f"{ROOT}/d/{device_id}"


def up(device_id: str, kind: Up | str) -> str:
    return f"{device_prefix(device_id)}/up/{kind}"


def down(device_id: str, kind: Down | str) -> str:
    return f"{device_prefix(device_id)}/down/{kind}"


def telemetry(device_id: str) -> str:
    return up(device_id, Up.TELEMETRY)


def status(device_id: str) -> str:
    return up(device_id, Up.STATUS)


def fleet_down(kind: str) -> str:
    return f"{ROOT}/fleet/down/{kind}"


def parse(topic: str) -> DeviceTopic:
    """Parse a device topic; anything else raises :class:`TopicError`."""
    parts = topic.split("/")
    if len(parts) < 6 or parts[0] != "fm" or parts[1] != "v1" or parts[2] != "d":
        raise TopicError(f"not a FleetMind device topic: {topic[:200]!r}")
    device_id = check_device_id(parts[3])
    try:
        direction = Direction(parts[4])
    except ValueError:
        raise TopicError(f"unknown direction {parts[4][:20]!r} in {topic[:200]!r}") from None
    kind = "/".join(parts[5:])
    if not kind or "" in parts[5:] or "+" in kind or "#" in kind:
        raise TopicError(f"malformed topic kind in {topic[:200]!r}")
    return DeviceTopic(device_id, direction, kind)
