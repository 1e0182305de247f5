"""The ``TelemetryStore`` seam and its in-memory implementation (for tests of other domains)."""

import threading
from collections import Counter, defaultdict
from datetime import datetime
from typing import Protocol

import pyarrow as pa

from fleetmind.telemetry.model import (
    Aggregation,
    DeviceRows,
    Latest,
    Page,
    Point,
    Query,
    finite,
    page,
)


class TelemetryStore(Protocol):
    """Where telemetry lives. Implementations: memory, DuckDB (PostgreSQL at scale)."""

    def append(self, batch: pa.Table) -> int:
        """Durably store a batch (:data:`BATCH_SCHEMA`); return the rows written.

        Rows whose (device_id, boot, seq) was stored before are skipped, so a redelivered pack is
        never stored twice; rows without boot or seq are always written. When this returns, the
        rows are committed.
        """
        ...

    def query(self, query: Query) -> Page:
        """Raw points: the ``query.limit`` points after ``query.after``, ordered by time and, at
        one time, in a fixed order (so pages follow each other exactly), with the cursor to the
        next page when more follow. With a bucket: every bucket's aggregate, in time order."""
        ...

    def latest(self, since: datetime) -> dict[str, list[Latest]]:
        """The newest value of every metric of every device that reported after ``since``."""
        ...

    def count(self, device_id: str | None = None) -> int: ...

    def census(self) -> dict[str, DeviceRows]:
        """Rows and distinct readings per device: the whole store, counted."""
        ...

    def close(self) -> None: ...


def _value(row: dict[str, object]) -> float | str | bool | None:
    for column in ("value", "string_value", "bool_value"):
        if row[column] is not None:
            return row[column]  # type: ignore[return-value]
    return None


class MemoryTelemetryStore:
    """A TelemetryStore in a Python list; not for production volumes."""

    def __init__(self) -> None:
        self._rows: list[dict[str, object]] = []
        self._keys: set[tuple[str, str, int]] = set()
        self._lock = threading.Lock()

    def append(self, batch: pa.Table) -> int:
        rows = batch.to_pylist()
        with self._lock:
            fresh = {
                (row["device_id"], row["boot"], row["seq"])
                for row in rows
                if row["boot"] is not None and row["seq"] is not None
            } - self._keys
            kept = [
                row
                for row in rows
                if row["boot"] is None
                or row["seq"] is None
                or (row["device_id"], row["boot"], row["seq"]) in fresh
            ]
            self._keys |= fresh
            self._rows.extend(kept)
        return len(kept)

    def query(self, query: Query) -> Page:
        with self._lock:
            rows = sorted(  # stable: points at one time keep the order they were stored in
                (
                    row
                    for row in self._rows
                    if row["device_id"] == query.device_id
                    and row["metric"] == query.metric
                    and query.start <= row["ts"] <= query.end  # type: ignore[operator]
                ),
                key=lambda row: row["ts"],  # type: ignore[arg-type, return-value]
            )
        if query.bucket is None:
            if query.after is not None:  # its points at its time come first: skip those
                after = query.after
                rows = [row for row in rows if row["ts"] >= after.time][after.skip :]  # type: ignore[operator]
            points = [Point(row["ts"], _value(row)) for row in rows[: query.limit + 1]]  # type: ignore[arg-type]
            return page(points, query)
        buckets: dict[datetime, list[dict[str, object]]] = defaultdict(list)
        epoch = datetime.fromtimestamp(0, query.start.tzinfo)
        for row in rows:
            ts: datetime = row["ts"]  # type: ignore[assignment]
            buckets[epoch + (ts - epoch) // query.bucket * query.bucket].append(row)
        return Page([Point(start, _aggregate(rows, query.agg)) for start, rows in buckets.items()])

    def latest(self, since: datetime) -> dict[str, list[Latest]]:
        newest: dict[tuple[str, str], dict[str, object]] = {}
        with self._lock:
            for row in self._rows:
                if row["ts"] < since:  # type: ignore[operator]
                    continue
                key = (str(row["device_id"]), str(row["metric"]))
                if key not in newest or newest[key]["ts"] <= row["ts"]:  # type: ignore[operator]
                    newest[key] = row
        result: dict[str, list[Latest]] = defaultdict(list)
        for (device_id, metric), row in sorted(newest.items()):
            result[device_id].append(
                Latest(metric, row["ts"], _value(row), row["unit"])  # type: ignore[arg-type]
            )
        return dict(result)

    def count(self, device_id: str | None = None) -> int:
        with self._lock:
            return sum(1 for row in self._rows if device_id in (None, row["device_id"]))

    def census(self) -> dict[str, DeviceRows]:
        with self._lock:
            rows = Counter(str(row["device_id"]) for row in self._rows)
            distinct = Counter(
                device
                for device, _, _ in {(r["device_id"], r["metric"], r["ts"]) for r in self._rows}
            )
        return {device: DeviceRows(rows[device], distinct[device]) for device in sorted(rows)}

    def close(self) -> None:
        pass


def _aggregate(rows: list[dict[str, object]], agg: Aggregation) -> float | None:
    if agg is Aggregation.COUNT:
        return float(len(rows))
    numbers: list[float] = [row["value"] for row in rows if row["value"] is not None]  # type: ignore[misc]
    if not numbers:
        return None
    if agg is Aggregation.LAST:
        return numbers[-1]
    if agg is Aggregation.MIN:
        return min(numbers)
    if agg is Aggregation.MAX:
        return max(numbers)
    return finite(sum(numbers) / len(numbers))
