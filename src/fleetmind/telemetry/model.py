"""Telemetry as columns: the Arrow schema of an ingest batch, queries, pages, buckets and
aggregations.

Every answer is bounded: raw points come in pages (``limit``, at most :data:`MAX_LIMIT`, and a
:class:`Cursor` to the next page), aggregated queries in at most :data:`MAX_BUCKETS` buckets.
Times are checked here, not in the stores: a query names moments that UTC can represent, and
durations of at most :data:`MAX_DURATION`, so no arithmetic on them can overflow.
"""

import base64
import binascii
import math
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
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

#: a duration: numbers with units, ``500ms``, ``10s``, ``1m``, ``2h``, ``1d``, ``1h30m``
DURATION_PATTERN = r"^([0-9]+(ms|s|m|h|d))+$"
_DURATION = re.compile(r"([0-9]+)(ms|s|m|h|d)")
_MILLISECONDS = {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000}
#: the longest bucket or look-back
MAX_DURATION = timedelta(days=3650)
#: raw points per page: by default and at most
DEFAULT_LIMIT = 1000
MAX_LIMIT = 10_000
#: buckets in one aggregated answer, at most
MAX_BUCKETS = 10_000
#: without a start, a query reaches this far back from its end
DEFAULT_WINDOW = timedelta(hours=1)
#: the first and last moments a query may name: Python's range, in UTC
EARLIEST = datetime.min.replace(tzinfo=UTC)
LATEST = datetime.max.replace(tzinfo=UTC)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)


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
class Cursor:
    """Where a page of raw points ended: the time of its last point, and how many points at that
    time this page and the ones before it returned.

    The next page starts at that time and skips those points. Points at one time come in a
    fixed order (by value), and points that are equal in it are interchangeable, so paging
    neither skips nor repeats a point, however many share a time.
    """

    time: datetime
    skip: int

    def encode(self) -> str:
        """Opaque to clients: they pass it back as it is."""
        micros = (self.time - _EPOCH) // _MICROSECOND
        return base64.urlsafe_b64encode(f"{micros}.{self.skip}".encode()).decode().rstrip("=")

    @classmethod
    def decode(cls, text: str) -> "Cursor":
        try:
            padded = text + "=" * (-len(text) % 4)
            micros, skip = base64.urlsafe_b64decode(padded.encode()).decode("ascii").split(".")
            cursor = cls(_EPOCH + timedelta(microseconds=int(micros)), int(skip))
        except (ValueError, OverflowError, binascii.Error, UnicodeError):
            raise InvalidQuery("invalid cursor: pass the next value of the page before") from None
        if cursor.skip < 1:
            raise InvalidQuery("invalid cursor: pass the next value of the page before")
        return cursor


@dataclass(frozen=True, slots=True)
class Query:
    """Raw points from ``start`` to ``end`` (both included), ``limit`` of them after ``after``;
    or with ``bucket``, one ``agg`` point per bucket (all buckets at once, few enough)."""

    device_id: str
    metric: str
    start: datetime
    end: datetime
    bucket: timedelta | None = None
    agg: Aggregation = Aggregation.AVG
    limit: int = DEFAULT_LIMIT
    after: Cursor | None = None

    def __post_init__(self) -> None:
        if self.start.tzinfo is None or self.end.tzinfo is None:
            raise InvalidQuery("start and end need a time zone")
        if self.end < self.start:
            raise InvalidQuery("end is before start")
        if not 1 <= self.limit <= MAX_LIMIT:
            raise InvalidQuery(f"limit must be from 1 to {MAX_LIMIT}")
        if self.bucket is not None:
            _check_bucket(self.bucket, self.start, self.end)
            if self.after is not None:
                raise InvalidQuery("a cursor pages raw points; buckets come all at once")


def _check_bucket(bucket: timedelta, start: datetime, end: datetime) -> None:
    if bucket <= timedelta(0):
        raise InvalidQuery("bucket must be positive")
    if bucket > MAX_DURATION:
        raise InvalidQuery(f"bucket is longer than {_years(MAX_DURATION)}")
    if (end - start) / bucket > MAX_BUCKETS:
        smallest = format_duration((end - start) / MAX_BUCKETS)
        raise InvalidQuery(
            f"more than {MAX_BUCKETS:,} buckets between start and end: choose a larger bucket"
            f" ({smallest} or more) or a shorter range"
        )
    # the first bucket begins up to one bucket before start, and must still be a moment
    if start - EARLIEST < bucket:
        raise InvalidQuery(f"a bucketed query starts at least one bucket after {EARLIEST:%Y-%m-%d}")


@dataclass(frozen=True, slots=True)
class Page:
    """Points of a query in time order, and where the next page starts (None: no more)."""

    points: list[Point]
    next: Cursor | None = None


def page(points: list[Point], query: Query) -> Page:
    """The page of ``query`` from the points that follow its cursor, in order: up to one more
    than its limit (a store reads one more to know whether another page follows)."""
    if query.bucket is not None or len(points) <= query.limit:
        return Page(points)
    kept = points[: query.limit]
    last = kept[-1].time
    skip = sum(1 for point in kept if point.time == last)
    if query.after is not None and query.after.time == last:  # the whole page at one time
        skip += query.after.skip
    return Page(kept, Cursor(last, skip))


def finite(value: float | None) -> float | None:
    """An aggregate JSON can carry: an average whose sum overflowed is no value, not infinity."""
    return value if value is None or math.isfinite(value) else None


def utc(moment: datetime, name: str) -> datetime:
    """``moment`` in UTC; InvalidQuery if UTC cannot represent it (year 1 at +01:00)."""
    try:
        return moment.astimezone(UTC)
    except OverflowError:
        raise InvalidQuery(
            f"{name} {moment.isoformat()} is outside {EARLIEST:%Y-%m-%d} to {LATEST:%Y-%m-%d}"
            " in UTC"
        ) from None


def window(
    start: datetime | None, end: datetime | None, now: datetime
) -> tuple[datetime, datetime]:
    """The UTC range of a query: ``end`` defaults to ``now``, ``start`` to
    :data:`DEFAULT_WINDOW` before ``end`` (but not before the first moment there is)."""
    last = utc(end, "end") if end is not None else now
    if start is not None:
        return utc(start, "start"), last
    return (last - DEFAULT_WINDOW if last - EARLIEST > DEFAULT_WINDOW else EARLIEST), last


def parse_duration(text: str) -> timedelta:
    """``"90s"``, ``"1m"``, ``"2h"``, ``"1h30m"`` to a timedelta, at most
    :data:`MAX_DURATION`.

    >>> parse_duration("1h30m")
    datetime.timedelta(seconds=5400)
    """
    parts = _DURATION.findall(text)
    if not parts or "".join(number + unit for number, unit in parts) != text:
        raise InvalidQuery(f"invalid duration {text!r}: use for example 500ms, 10s, 1m, 2h, 1d")
    longest = MAX_DURATION // timedelta(milliseconds=1)
    # long digit strings are refused before they become numbers (int() of 5,000 digits fails)
    if any(len(number) > len(str(longest)) for number, _ in parts):
        raise InvalidQuery(f"duration {text!r} is longer than {_years(MAX_DURATION)}")
    milliseconds = sum(int(number) * _MILLISECONDS[unit] for number, unit in parts)
    if milliseconds > longest:
        raise InvalidQuery(f"duration {text!r} is longer than {_years(MAX_DURATION)}")
    return timedelta(milliseconds=milliseconds)


def format_duration(duration: timedelta) -> str:
    """A duration in :func:`parse_duration`'s terms, rounded up (to seconds from a second on).

    >>> format_duration(timedelta(seconds=60.48))
    '1m1s'
    """
    milliseconds = math.ceil(duration / timedelta(milliseconds=1))
    if milliseconds >= 1000:
        milliseconds = math.ceil(milliseconds / 1000) * 1000
    parts = []
    for unit in ("d", "h", "m", "s", "ms"):
        count, milliseconds = divmod(milliseconds, _MILLISECONDS[unit])
        if count:
            parts.append(f"{count}{unit}")
    return "".join(parts) or "0ms"


def _years(duration: timedelta) -> str:
    return f"{duration.days // 365} years"
