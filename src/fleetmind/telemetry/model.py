"""Telemetry as columns: the Arrow schema of an ingest batch, buckets and aggregations."""

import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

import pyarrow as pa

from fleetmind.telemetry.errors import InvalidQuery

#: one row per SenML record; ``boot``/``seq`` identify the pack the row came in (for dedupe)
BATCH_SCHEMA = pa.schema(
    [
        pa.field("device_id", pa.string(), nullable=False),
        pa.field("metric", pa.string(), nullable=False),
        pa.field("ts", pa.timestamp("us", tz="UTC"), nullable=False),
        pa.field("value", pa.float64()),
        pa.field("string_value", pa.string()),
        pa.field("bool_value", pa.bool_()),
        pa.field("unit", pa.string()),
        pa.field("boot", pa.string()),
        pa.field("seq", pa.int64()),
    ]
)

_DURATION = re.compile(r"(\d+)(ms|s|m|h|d)")
_UNITS = {"ms": "milliseconds", "s": "seconds", "m": "minutes", "h": "hours", "d": "days"}
MAX_POINTS = 100_000


class Aggregation(StrEnum):
    AVG = "avg"
    MIN = "min"
    MAX = "max"
    COUNT = "count"
    LAST = "last"


@dataclass(frozen=True, slots=True)
class Point:
    time: datetime
    value: float | str | bool | None


@dataclass(frozen=True, slots=True)
class Latest:
    """The newest value of one metric of one device."""

    metric: str
    time: datetime
    value: float | str | bool | None
    unit: str | None


@dataclass(frozen=True, slots=True)
class DeviceRows:
    """What the store holds for one device: rows, and distinct (metric, time) among them.

    The two differ only if a reading was stored twice."""

    rows: int
    distinct: int


@dataclass(frozen=True, slots=True)
class Query:
    device_id: str
    metric: str
    start: datetime
    end: datetime
    bucket: timedelta | None = None
    agg: Aggregation = Aggregation.AVG

    def __post_init__(self) -> None:
        if self.start.tzinfo is None or self.end.tzinfo is None:
            raise InvalidQuery("start and end need a time zone")
        if self.end < self.start:
            raise InvalidQuery("end is before start")
        if self.bucket is not None:
            if self.bucket <= timedelta(0):
                raise InvalidQuery("bucket must be positive")
            if (self.end - self.start) / self.bucket > MAX_POINTS:
                raise InvalidQuery(f"more than {MAX_POINTS} buckets; choose a larger bucket")


def parse_duration(text: str) -> timedelta:
    """``"90s"``, ``"1m"``, ``"2h"``, ``"1h30m"`` to a timedelta.

    >>> parse_duration("1h30m")
    datetime.timedelta(seconds=5400)
    """
    parts = _DURATION.findall(text)
    if not parts or "".join(number + unit for number, unit in parts) != text:
        raise InvalidQuery(f"invalid duration {text!r}: use for example 500ms, 10s, 1m, 2h, 1d")
    return sum((timedelta(**{_UNITS[unit]: int(number)}) for number, unit in parts), timedelta())
