"""JSON messages of the twin and command exchanges between hub and device.

    down/desired         {"version": n, "desired": {...}}                  hub -> device, retained
    up/state             {"version": n, "reported": {...}, "desired_version": m}   device -> hub
    down/command         {"id": "...", "name": "...", "args": {...}, "expires_at": t}  hub -> device
    up/event/command     {"id": "...", "ok": true, "result": {...}} or {"ok": false, "error": "..."}
    up/csr               {"csr": "-----BEGIN CERTIFICATE REQUEST-----..."}   device -> hub
    down/certificate     {"certificate": "-----BEGIN CERTIFICATE-----..."} or {"error": "..."}
    down/reject          {"kind": "telemetry", "reason": "time", "detail": "..."}   hub -> device

The topic kinds are :class:`fleetmind.wire.topics.Up` and :class:`~fleetmind.wire.topics.Down`.
Every message is a JSON object within :data:`MAX_MESSAGE_BYTES` whose strings are valid text and
whose integers fit 64 bits; anything else raises DecodeError.
"""

import json
from dataclasses import dataclass
from typing import Any

from fleetmind.wire.errors import DecodeError, LimitError
from fleetmind.wire.text import MAX_INT, check_document

MAX_MESSAGE_BYTES = 96 * 1024  # a 64 KiB twin document and its envelope
#: a PEM CSR or certificate fits easily
MAX_PEM = 8 * 1024


def _object(payload: bytes) -> dict[str, Any]:
    if len(payload) > MAX_MESSAGE_BYTES:
        raise LimitError(f"message of {len(payload)} bytes is too large", reason="size")
    try:
        document = json.loads(payload)
    except (ValueError, UnicodeDecodeError, RecursionError):
        raise DecodeError("not valid JSON") from None
    if not isinstance(document, dict):
        raise DecodeError("a message is a JSON object", reason="type")
    check_document(document, "message")
    return document


def _encode(document: dict[str, Any]) -> bytes:
    return json.dumps(document, separators=(",", ":")).encode()


def _version(document: dict[str, Any], key: str) -> int:
    value = document.get(key)
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_INT:
        raise DecodeError(f"{key} must be a non-negative 64-bit integer", reason="field")
    return value


def _dict(document: dict[str, Any], key: str) -> dict[str, Any]:
    value = document.get(key, {})
    if not isinstance(value, dict):
        raise DecodeError(f"{key} must be an object", reason="field")
    return value


def _text(document: dict[str, Any], key: str, limit: int = 128) -> str:
    value = document.get(key)
    if not isinstance(value, str) or not value or len(value) > limit:
        raise DecodeError(f"{key} must be a string of 1 to {limit} characters", reason="field")
    return value


@dataclass(frozen=True, slots=True)
class Desired:
    version: int
    desired: dict[str, Any]

    def encode(self) -> bytes:
        return _encode({"version": self.version, "desired": self.desired})

    @classmethod
    def decode(cls, payload: bytes) -> "Desired":
        document = _object(payload)
        return cls(_version(document, "version"), _dict(document, "desired"))


@dataclass(frozen=True, slots=True)
class State:
    version: int
    reported: dict[str, Any]
    desired_version: int

    def encode(self) -> bytes:
        return _encode(
            {
                "version": self.version,
                "reported": self.reported,
                "desired_version": self.desired_version,
            }
        )

    @classmethod
    def decode(cls, payload: bytes) -> "State":
        document = _object(payload)
        return cls(
            _version(document, "version"),
            _dict(document, "reported"),
            _version(document, "desired_version"),
        )


@dataclass(frozen=True, slots=True)
class Command:
    id: str
    name: str
    args: dict[str, Any]
    expires_at: float

    def encode(self) -> bytes:
        return _encode(
            {"id": self.id, "name": self.name, "args": self.args, "expires_at": self.expires_at}
        )

    @classmethod
    def decode(cls, payload: bytes) -> "Command":
        document = _object(payload)
        expires = document.get("expires_at")
        if isinstance(expires, bool) or not isinstance(expires, int | float):
            raise DecodeError("expires_at must be a time", reason="field")
        return cls(_text(document, "id"), _text(document, "name"), _dict(document, "args"), expires)


@dataclass(frozen=True, slots=True)
class CommandResult:
    id: str
    ok: bool
    result: dict[str, Any]
    error: str | None = None

    def encode(self) -> bytes:
        document: dict[str, Any] = {"id": self.id, "ok": self.ok, "result": self.result}
        if self.error is not None:
            document["error"] = self.error
        return _encode(document)

    @classmethod
    def decode(cls, payload: bytes) -> "CommandResult":
        document = _object(payload)
        ok = document.get("ok")
        if not isinstance(ok, bool):
            raise DecodeError("ok must be true or false", reason="field")
        error = document.get("error")
        if error is not None and not isinstance(error, str):
            raise DecodeError("error must be a string", reason="field")
        return cls(_text(document, "id"), ok, _dict(document, "result"), error and error[:1000])


@dataclass(frozen=True, slots=True)
class Renewal:
    """A device asks for a new certificate over a key it just made (its private key stays)."""

    csr: str

    def encode(self) -> bytes:
        return _encode({"csr": self.csr})

    @classmethod
    def decode(cls, payload: bytes) -> "Renewal":
        return cls(_text(_object(payload), "csr", MAX_PEM))


@dataclass(frozen=True, slots=True)
class Certificate:
    """The hub's answer to a :class:`Renewal`: the new certificate, or why there is none."""

    certificate: str | None
    error: str | None = None

    def encode(self) -> bytes:
        if self.certificate is not None:
            return _encode({"certificate": self.certificate})
        return _encode({"error": self.error or "refused"})

    @classmethod
    def decode(cls, payload: bytes) -> "Certificate":
        document = _object(payload)
        if "certificate" in document:
            return cls(_text(document, "certificate", MAX_PEM))
        return cls(None, _text(document, "error", 500))


@dataclass(frozen=True, slots=True)
class Rejected:
    """The hub's notice that it refused a message of this device (at most one a minute per kind
    and reason): what kind of message, the reason's short name, and why in words."""

    kind: str
    reason: str
    detail: str

    def encode(self) -> bytes:
        return _encode({"kind": self.kind, "reason": self.reason, "detail": self.detail})

    @classmethod
    def decode(cls, payload: bytes) -> "Rejected":
        document = _object(payload)
        return cls(
            _text(document, "kind"), _text(document, "reason"), _text(document, "detail", 500)
        )
