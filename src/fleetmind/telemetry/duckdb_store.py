"""The embedded TelemetryStore: one DuckDB file, written in Arrow batches.

Dedupe is durable: the (device_id, boot, seq) of every stored pack is kept in ``packs`` under a
primary key, and a batch's rows are inserted in the same transaction as its new keys, so a pack
redelivered after a hub restart is still recognised. Keys older than ``dedupe_window`` are pruned
(an agent's outbox never replays older packs).
"""

import contextlib
import logging
import threading
import time
from datetime import datetime, timedelta
from pathlib import Path

import duckdb
import pyarrow as pa

from fleetmind.telemetry.errors import StoreUnavailable
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

_SCHEMA = """
CREATE TABLE IF NOT EXISTS telemetry (
    device_id VARCHAR NOT NULL,
    metric VARCHAR NOT NULL,
    ts TIMESTAMPTZ NOT NULL,
    value DOUBLE,
    string_value VARCHAR,
    bool_value BOOLEAN,
    unit VARCHAR
);
CREATE TABLE IF NOT EXISTS packs (
    device_id VARCHAR NOT NULL,
    boot VARCHAR NOT NULL,
    seq BIGINT NOT NULL,
    stored_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (device_id, boot, seq)
);
"""

#: failures of the database itself, not of what a batch holds: the batch is not durable
_UNAVAILABLE = (
    duckdb.IOException,
    duckdb.OutOfMemoryException,
    duckdb.TransactionException,
    duckdb.FatalException,
    duckdb.ConnectionException,
    duckdb.InterruptException,
    duckdb.PermissionException,
)

log = logging.getLogger(__name__)

_COLUMNS = "device_id, metric, ts, value, string_value, bool_value, unit"
_INSERT = f"""
INSERT INTO telemetry
SELECT {_COLUMNS} FROM batch WHERE boot IS NULL OR seq IS NULL
UNION ALL
SELECT {_COLUMNS} FROM batch SEMI JOIN fresh USING (device_id, boot, seq)
"""

_MICROSECOND = timedelta(microseconds=1)
_AGGREGATES = {
    Aggregation.AVG: "avg(value)",
    Aggregation.MIN: "min(value)",
    Aggregation.MAX: "max(value)",
    Aggregation.COUNT: "count(*)",
    Aggregation.LAST: "arg_max(value, ts)",
}


class DuckDBTelemetryStore:
    def __init__(
        self, path: Path | str = ":memory:", *, dedupe_window: timedelta = timedelta(days=7)
    ) -> None:
        self._db = duckdb.connect(str(path))
        # after connect: the TimeZone setting needs the ICU extension, loaded by then
        self._db.execute("SET TimeZone = 'UTC'")
        self._db.execute(_SCHEMA)
        self._write_lock = threading.Lock()
        self._dedupe_window = dedupe_window
        self._next_prune = 0.0

    def append(self, batch: pa.Table) -> int:
        with self._write_lock:
            cursor = self._db.cursor()
            try:
                cursor.register("batch", batch)
                cursor.execute("BEGIN")
                fresh = cursor.sql(
                    "INSERT OR IGNORE INTO packs (device_id, boot, seq)"
                    " SELECT DISTINCT device_id, boot, seq FROM batch"
                    " WHERE boot IS NOT NULL AND seq IS NOT NULL"
                    " RETURNING device_id, boot, seq"
                ).to_arrow_table()
                cursor.register("fresh", fresh)
                cursor.execute(_INSERT)
                written = cursor.fetchone()
                cursor.execute("COMMIT")
            except BaseException as exc:
                with contextlib.suppress(duckdb.Error):  # no transaction left if BEGIN failed
                    cursor.execute("ROLLBACK")
                if isinstance(exc, _UNAVAILABLE):
                    raise StoreUnavailable(f"the telemetry store cannot commit: {exc}") from exc
                raise
            finally:
                cursor.close()
            self._prune()
        return int(written[0]) if written else 0

    def _prune(self) -> None:
        """Forget dedupe keys older than the window, once an hour. Best effort: the batch before
        it is committed, so a failure here is logged and the keys wait for the next hour."""
        now = time.monotonic()
        if now < self._next_prune:
            return
        self._next_prune = now + 3600
        try:
            self._db.execute(
                "DELETE FROM packs WHERE stored_at < now() - ?::INTERVAL",
                [f"{int(self._dedupe_window.total_seconds())} seconds"],
            )
        except duckdb.Error as exc:
            log.warning("pruning old dedupe keys failed; trying again in an hour: %s", exc)

    def query(self, query: Query) -> Page:
        cursor = self._db.cursor()
        try:
            if query.bucket is None:
                return page(_points(cursor, query), query)
            return Page(_buckets(cursor, query, query.bucket))
        finally:
            cursor.close()

    def latest(self, since: datetime) -> dict[str, list[Latest]]:
        cursor = self._db.cursor()
        try:
            rows = cursor.execute(
                "SELECT device_id, metric, max(ts),"
                " arg_max(value, ts), arg_max(string_value, ts), arg_max(bool_value, ts),"
                " arg_max(unit, ts)"
                " FROM telemetry WHERE ts >= ? GROUP BY device_id, metric"
                " ORDER BY device_id, metric",
                [since],
            ).fetchall()
        finally:
            cursor.close()
        result: dict[str, list[Latest]] = {}
        for device_id, metric, ts, number, text, flag, unit in rows:
            value = next((v for v in (number, text, flag) if v is not None), None)
            result.setdefault(device_id, []).append(Latest(metric, ts, value, unit))
        return result

    def count(self, device_id: str | None = None) -> int:
        cursor = self._db.cursor()
        try:
            if device_id is None:
                row = cursor.execute("SELECT count(*) FROM telemetry").fetchone()
            else:
                row = cursor.execute(
                    "SELECT count(*) FROM telemetry WHERE device_id = ?", [device_id]
                ).fetchone()
        finally:
            cursor.close()
        return int(row[0]) if row else 0

    def census(self) -> dict[str, DeviceRows]:
        cursor = self._db.cursor()
        try:
            rows = cursor.execute(
                "SELECT device_id, count(*), count(DISTINCT (metric, ts)) FROM telemetry"
                " GROUP BY device_id ORDER BY device_id"
            ).fetchall()
        finally:
            cursor.close()
        return {device: DeviceRows(int(count), int(distinct)) for device, count, distinct in rows}

    def close(self) -> None:
        self._db.close()


def _points(cursor: duckdb.DuckDBPyConnection, query: Query) -> list[Point]:
    """Up to one more than a page: points at one time are ordered by their values (equal
    ones are interchangeable), so a cursor's skip count always skips the same points."""
    after = query.after
    rows = cursor.execute(
        "SELECT ts, value, string_value, bool_value FROM telemetry"
        " WHERE device_id = ? AND metric = ? AND ts BETWEEN ? AND ? AND ts >= ?"
        " ORDER BY ts, value, string_value, bool_value LIMIT ? OFFSET ?",
        [query.device_id, query.metric, query.start, query.end,
         after.time if after else query.start, query.limit + 1, after.skip if after else 0],
    ).fetchall()  # fmt: skip
    return [
        Point(ts, next((v for v in (number, text, flag) if v is not None), None))
        for ts, number, text, flag in rows
    ]


def _buckets(cursor: duckdb.DuckDBPyConnection, query: Query, bucket: timedelta) -> list[Point]:
    rows = cursor.execute(
        f"SELECT time_bucket(to_microseconds(?), ts) AS bucket, {_AGGREGATES[query.agg]}"
        " FROM telemetry WHERE device_id = ? AND metric = ? AND ts BETWEEN ? AND ?"
        " GROUP BY bucket ORDER BY bucket",
        [bucket // _MICROSECOND, query.device_id, query.metric, query.start, query.end],
    ).fetchall()
    return [
        Point(bucket, finite(None if value is None else float(value))) for bucket, value in rows
    ]
