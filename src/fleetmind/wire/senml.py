"""SenML (RFC 8428) packs in CBOR and JSON, decoded straight into columns.

A pack is decoded once into a :class:`Pack` of parallel lists (name, time, value...), the shape the
hub's columnar store takes, so no later stage walks the records again.

FleetMind adds two optional extension fields to the first record of a pack, ``bid`` (the sender's
boot id) and ``seq`` (the pack's sequence number within that boot); together with the device id they
identify a pack, so a redelivered pack is never stored twice. Third-party senders may omit them.
Unknown fields are ignored, except those ending in ``_``, which RFC 8428 calls must-understand.

    >>> pack = decode_json(b'[{"bn": "d1/", "bt": 1.7e9, "n": "temp", "v": 21.5}]',
    ...                    device_id="d1", now=1.7e9)
    >>> pack.names, pack.values
    (['temp'], [21.5])
"""

import base64
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Final

import cbor2

from fleetmind.wire.errors import DecodeError, LimitError
from fleetmind.wire.limits import DEFAULT_LIMITS, Limits
from fleetmind.wire.text import check_text

#: RFC 8428 section 4.5.1: times below 2**28 are relative to now
RELATIVE_TIME_LIMIT: Final = 2**28
NAME_PATTERN: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9:./_-]*")
CONTENT_TYPE_CBOR: Final = "application/senml+cbor"
CONTENT_TYPE_JSON: Final = "application/senml+json"


@dataclass(frozen=True, slots=True)
class _Labels:
    bn: Any
    bt: Any
    bu: Any
    bv: Any
    bs: Any
    bver: Any
    n: Any
    u: Any
    v: Any
    vs: Any
    vb: Any
    vd: Any
    s: Any
    t: Any
    ut: Any


JSON_LABELS: Final = _Labels(
    bn="bn", bt="bt", bu="bu", bv="bv", bs="bs", bver="bver",
    n="n", u="u", v="v", vs="vs", vb="vb", vd="vd", s="s", t="t", ut="ut",
)  # fmt: skip
CBOR_LABELS: Final = _Labels(
    bn=-2, bt=-3, bu=-4, bv=-5, bs=-6, bver=-1,
    n=0, u=1, v=2, vs=3, vb=4, vd=8, s=5, t=6, ut=7,
)  # fmt: skip
#: names seen valid before: a fleet repeats a few names in every pack, a regex per record is waste
_VALID_NAMES: set[str] = set()
_VALID_NAMES_KEPT: Final = 100_000
BOOT_LABEL: Final = "bid"
SEQ_LABEL: Final = "seq"


@dataclass(slots=True)
class Pack:
    """One decoded pack as columns; ``boot``/``seq`` identify it when the sender set them."""

    names: list[str] = field(default_factory=list)
    times: list[float] = field(default_factory=list)
    values: list[float | None] = field(default_factory=list)
    strings: list[str | None] = field(default_factory=list)
    bools: list[bool | None] = field(default_factory=list)
    units: list[str | None] = field(default_factory=list)
    boot: str | None = None
    seq: int | None = None

    def __len__(self) -> int:
        return len(self.names)


@dataclass(frozen=True, slots=True)
class Reading:
    """One measurement to encode: ``value`` is a float, bool or str."""

    name: str
    time: float
    value: float | bool | str
    unit: str | None = None


def decode_cbor(
    payload: bytes, *, device_id: str, now: float, limits: Limits = DEFAULT_LIMITS
) -> Pack:
    """Decode a SenML CBOR pack sent by ``device_id``; raise a WireError if it is not acceptable."""
    _check_size(payload, limits)
    try:
        records = cbor2.loads(payload)
    except Exception as exc:  # noqa: BLE001 - cbor2 raises many unrelated types on bad input
        raise DecodeError(f"not valid CBOR: {type(exc).__name__}") from None
    return _resolve(records, CBOR_LABELS, device_id=device_id, now=now, limits=limits)


def decode_json(
    payload: bytes, *, device_id: str, now: float, limits: Limits = DEFAULT_LIMITS
) -> Pack:
    """Decode a SenML JSON pack sent by ``device_id``; raise a WireError if it is not acceptable."""
    import json

    _check_size(payload, limits)
    try:
        records = json.loads(payload)
    except (ValueError, UnicodeDecodeError, RecursionError):
        raise DecodeError("not valid JSON") from None
    return _resolve(records, JSON_LABELS, device_id=device_id, now=now, limits=limits)


def decode(payload: bytes, *, device_id: str, now: float, limits: Limits = DEFAULT_LIMITS) -> Pack:
    """Decode either encoding: a JSON pack starts with ``[`` (after optional white space)."""
    if payload[:1] in (b"[", b" ", b"\n", b"\r", b"\t"):
        return decode_json(payload, device_id=device_id, now=now, limits=limits)
    return decode_cbor(payload, device_id=device_id, now=now, limits=limits)


def encode_cbor(
    readings: Sequence[Reading], *, boot: str | None = None, seq: int | None = None
) -> bytes:
    """Encode readings as a SenML CBOR pack with a base time (shorter than absolute times)."""
    return cbor2.dumps(_records(readings, CBOR_LABELS, boot=boot, seq=seq))


def encode_json(
    readings: Sequence[Reading], *, boot: str | None = None, seq: int | None = None
) -> bytes:
    import json

    records = _records(readings, JSON_LABELS, boot=boot, seq=seq)
    return json.dumps(records, separators=(",", ":")).encode()


def _records(
    readings: Sequence[Reading], labels: _Labels, *, boot: str | None, seq: int | None
) -> list[dict[Any, Any]]:
    if not readings:
        raise ValueError("a SenML pack needs at least one reading")
    base_time = readings[0].time
    records: list[dict[Any, Any]] = []
    for reading in readings:
        record: dict[Any, Any] = {labels.n: reading.name}
        if reading.time != base_time:
            record[labels.t] = reading.time - base_time
        if reading.unit is not None:
            record[labels.u] = reading.unit
        if isinstance(reading.value, bool):
            record[labels.vb] = reading.value
        elif isinstance(reading.value, str):
            record[labels.vs] = reading.value
        else:
            record[labels.v] = reading.value
        records.append(record)
    records[0][labels.bt] = base_time
    if boot is not None:
        records[0][BOOT_LABEL] = boot
    if seq is not None:
        records[0][SEQ_LABEL] = seq
    return records


def _check_size(payload: bytes, limits: Limits) -> None:
    if len(payload) > limits.max_payload_bytes:
        raise LimitError(
            f"payload of {len(payload)} bytes exceeds {limits.max_payload_bytes}", reason="size"
        )
    if not payload:
        raise DecodeError("empty payload")


def _known(labels: _Labels) -> frozenset[Any]:
    return frozenset((*(getattr(labels, name) for name in labels.__slots__), BOOT_LABEL, SEQ_LABEL))


_KNOWN: Final = {JSON_LABELS: _known(JSON_LABELS), CBOR_LABELS: _known(CBOR_LABELS)}
_BASE: Final = {
    labels: frozenset((labels.bn, labels.bt, labels.bu, labels.bv, labels.bs, labels.bver))
    for labels in (JSON_LABELS, CBOR_LABELS)
}


def _number(value: object, what: str) -> float:
    # bool is an int in Python, but never a SenML number
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise DecodeError(f"{what} must be a number, not {type(value).__name__}", reason="type")
    try:
        number = float(value)
    except OverflowError:  # an integer of hundreds of digits (JSON, or a CBOR bignum)
        raise DecodeError(f"{what} is out of range", reason="number") from None
    if not math.isfinite(number):
        raise DecodeError(f"{what} must be finite", reason="type")
    return number


def _finite(number: float, what: str) -> float:
    """A value and its base may each be finite and their sum not (1.7e308 twice)."""
    if not math.isfinite(number):
        raise DecodeError(f"{what} with its base is out of range", reason="number")
    return number


def _string(value: object, what: str) -> str:
    if not isinstance(value, str):
        raise DecodeError(f"{what} must be a string, not {type(value).__name__}", reason="type")
    return value


def _text(value: object, what: str) -> str:
    """Free text (unit, string value, boot id): a string every store can keep."""
    if type(value) is str and value.isascii() and "\x00" not in value:  # the usual case, fast
        return value
    return check_text(_string(value, what), what)


def _resolve(  # noqa: PLR0912, PLR0915 - one pass over the records, kept flat for speed
    records: object, labels: _Labels, *, device_id: str, now: float, limits: Limits
) -> Pack:
    if not isinstance(records, list) or not records:
        raise DecodeError("a SenML pack is a non-empty array of records")
    if len(records) > limits.max_records:
        raise LimitError(f"{len(records)} records exceed {limits.max_records}", reason="records")
    known = _KNOWN[labels]
    base_labels = _BASE[labels]
    value_labels = (labels.v, labels.vs, labels.vb, labels.vd, labels.s)
    prefixes = (f"{device_id}/", f"{device_id}:", f"{device_id}.")
    oldest, newest = now - limits.max_age_s, now + limits.max_future_s
    base_name, base_time, base_unit, base_value, base_sum = "", 0.0, None, 0.0, 0.0
    pack = Pack()
    first = records[0]
    if isinstance(first, dict):
        boot, seq = first.get(BOOT_LABEL), first.get(SEQ_LABEL)
        if boot is not None:
            pack.boot = _text(boot, "bid")[:64]
        if seq is not None:
            if isinstance(seq, bool) or not isinstance(seq, int) or not 0 <= seq < 2**63:
                raise DecodeError("seq must be a non-negative 64-bit integer", reason="type")
            pack.seq = seq
    for record in records:
        if not isinstance(record, dict):
            raise DecodeError("every SenML record is a map", reason="type")
        if not known.issuperset(record) and any(
            isinstance(key, str) and key.endswith("_") for key in record.keys() - known
        ):
            raise DecodeError("must-understand field not supported", reason="field")
        if not base_labels.isdisjoint(record):  # most records carry no base field
            if (bver := record.get(labels.bver)) is not None and (
                isinstance(bver, bool) or not isinstance(bver, int) or bver > 10
            ):
                raise DecodeError("unsupported SenML version", reason="field")
            if (value := record.get(labels.bn)) is not None:
                base_name = _string(value, "bn")  # a name matches NAME_PATTERN: ASCII
            if (value := record.get(labels.bt)) is not None:
                base_time = _number(value, "bt")
            if labels.bu in record:
                base_unit = record[labels.bu] and _text(record[labels.bu], "bu")
            if (value := record.get(labels.bv)) is not None:
                base_value = _number(value, "bv")
            if (value := record.get(labels.bs)) is not None:
                base_sum = _number(value, "bs")
        name_part = record.get(labels.n)
        values_present = [label for label in value_labels if label in record]
        if name_part is None and not values_present:
            continue  # a record carrying base fields only
        name = base_name + ("" if name_part is None else _string(name_part, "n"))
        if name.startswith(prefixes):
            name = name[len(device_id) + 1 :]
        if len(name) > limits.max_name_length:
            raise LimitError(f"name longer than {limits.max_name_length}", reason="name")
        if name not in _VALID_NAMES:
            if not NAME_PATTERN.fullmatch(name):
                raise DecodeError(f"invalid SenML name {name[:40]!r}", reason="name")
            if len(_VALID_NAMES) < _VALID_NAMES_KEPT:
                _VALID_NAMES.add(name)
        if len(values_present) != 1:
            raise DecodeError(f"record {name!r} needs exactly one value or sum", reason="value")
        time = base_time + (_number(record[labels.t], "t") if labels.t in record else 0.0)
        if time < RELATIVE_TIME_LIMIT:
            time += now
        if not oldest <= time <= newest:
            raise LimitError(f"time of {name!r} outside the accepted window", reason="time")
        unit = record.get(labels.u, base_unit)
        if unit is not None:
            unit = _text(unit, "u")[:32]
        number: float | None = None
        string: str | None = None
        flag: bool | None = None
        label = values_present[0]
        if label == labels.v:
            number = _finite(_number(record[label], "v") + base_value, "v")
        elif label == labels.s:
            number = _finite(_number(record[label], "s") + base_sum, "s")
        elif label == labels.vb:
            if not isinstance(record[label], bool):
                raise DecodeError("vb must be a boolean", reason="type")
            flag = record[label]
        elif label == labels.vs:
            string = _text(record[label], "vs")
        else:
            data = record[label]
            string = (
                base64.urlsafe_b64encode(data).decode()
                if isinstance(data, bytes)
                else _text(data, "vd")
            )
        if string is not None and len(string) > limits.max_string_value_length:
            raise LimitError("string value too long", reason="value")
        pack.names.append(name)
        pack.times.append(time)
        pack.values.append(number)
        pack.strings.append(string)
        pack.bools.append(flag)
        pack.units.append(unit)
    if not pack.names:
        raise DecodeError("pack holds no measurement", reason="value")
    return pack
