"""The outbox: sealed packs wait here until the broker acknowledged them.

One SQLite table, one row per pack, in WAL mode with ``synchronous=FULL``: a pack is committed
before it is published and deleted only when the broker acknowledged it, so it survives a crash
(kill -9) and a power loss. ``Outbox(":memory:")`` is the same code without a file.

The outbox is bounded by bytes and by age. When a new pack does not fit, the overflow policy
decides: ``drop_oldest`` deletes the oldest packs until it fits, ``drop_newest`` refuses the new
one. Every dropped or expired pack is counted (packs and readings); the counters live in the same
database, so they survive restarts and reach the health telemetry.
"""

import asyncio
import contextlib
import sqlite3
import time
from collections.abc import Iterator
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

_SCHEMA = """
CREATE TABLE IF NOT EXISTS outbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    created REAL NOT NULL,
    readings INTEGER NOT NULL,
    payload BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
"""


class Overflow(StrEnum):
    DROP_OLDEST = "drop_oldest"
    DROP_NEWEST = "drop_newest"


@dataclass(frozen=True, slots=True)
class Entry:
    """A pack in the outbox; ``id`` orders the outbox across restarts."""

    id: int
    payload: bytes
    readings: int


@dataclass(slots=True)
class OutboxCounters:
    """Totals since the outbox file was created."""

    packs_accepted: int = 0
    readings_accepted: int = 0
    packs_acked: int = 0
    readings_acked: int = 0
    packs_dropped_oldest: int = 0
    readings_dropped_oldest: int = 0
    packs_dropped_newest: int = 0
    readings_dropped_newest: int = 0
    packs_expired: int = 0
    readings_expired: int = 0


@dataclass(frozen=True, slots=True)
class OutboxLimits:
    max_bytes: int = 64 * 1024 * 1024
    max_age_s: float = 7 * 24 * 3600
    overflow: Overflow = Overflow.DROP_OLDEST


class Outbox:
    """Packs in ``id`` order; ``changed`` is set whenever one arrives or leaves."""

    def __init__(self, path: Path | str, limits: OutboxLimits | None = None) -> None:
        self.limits = limits or OutboxLimits()
        self._db = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(_SCHEMA)
        self._load()
        self.changed = asyncio.Event()

    def _load(self) -> None:
        """Counters and size from the database (at start, and after a failed transaction)."""
        self.counters = OutboxCounters(
            **dict(self._db.execute("SELECT name, value FROM counters").fetchall())
        )
        count, size = self._db.execute(
            "SELECT count(*), coalesce(sum(length(payload)), 0) FROM outbox"
        ).fetchone()
        self._count, self._bytes = int(count), int(size)

    def put(self, payload: bytes, readings: int) -> int | None:
        """Commit a pack; return its id, or None if the overflow policy refused it."""
        now = time.time()
        bump: dict[str, int] = {"packs_accepted": 1, "readings_accepted": readings}
        with self._transaction():
            self._expire(now, bump)
            if self._bytes + len(payload) > self.limits.max_bytes:
                if self.limits.overflow is Overflow.DROP_NEWEST or len(payload) > (
                    self.limits.max_bytes
                ):
                    bump = {"packs_dropped_newest": 1, "readings_dropped_newest": readings}
                    self._count_up(bump)
                    return None
                self._drop_oldest(self._bytes + len(payload) - self.limits.max_bytes, bump)
            cursor = self._db.execute(
                "INSERT INTO outbox (created, readings, payload) VALUES (?, ?, ?)",
                (now, readings, payload),
            )
            self._count_up(bump)
        self._count += 1
        self._bytes += len(payload)
        self.changed.set()
        return cursor.lastrowid

    def pending(self, *, after: int, limit: int) -> list[Entry]:
        """Packs with an id above ``after``, oldest first."""
        rows = self._db.execute(
            "SELECT id, payload, readings FROM outbox WHERE id > ? ORDER BY id LIMIT ?",
            (after, limit),
        ).fetchall()
        return [Entry(row[0], row[1], row[2]) for row in rows]

    def ack(self, *entry_ids: int) -> None:
        """The broker has these packs: forget them, in one transaction (packs dropped by the
        overflow policy while in flight are skipped)."""
        if not entry_ids:
            return
        marks = ",".join("?" * len(entry_ids))
        with self._transaction():
            rows = self._db.execute(
                f"DELETE FROM outbox WHERE id IN ({marks}) RETURNING readings, length(payload)",
                entry_ids,
            ).fetchall()
            if not rows:
                return
            self._count_up({"packs_acked": len(rows), "readings_acked": sum(r[0] for r in rows)})
        self._count -= len(rows)
        self._bytes -= sum(r[1] for r in rows)
        self.changed.set()

    def __len__(self) -> int:
        return self._count

    @property
    def bytes(self) -> int:
        return self._bytes

    def pending_readings(self) -> int:
        row = self._db.execute("SELECT coalesce(sum(readings), 0) FROM outbox").fetchone()
        return int(row[0])

    def close(self) -> None:
        self._db.close()

    # -- inside a transaction -----------------------------------------------------------------

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[None]:
        """BEGIN IMMEDIATE ... COMMIT; on an error ROLLBACK and reload what memory holds."""
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            self._db.execute("ROLLBACK")
            self._load()
            raise
        self._db.execute("COMMIT")

    def _expire(self, now: float, bump: dict[str, int]) -> None:
        rows = self._db.execute(
            "DELETE FROM outbox WHERE created < ? RETURNING readings, length(payload)",
            (now - self.limits.max_age_s,),
        ).fetchall()
        self._forget(rows, "expired", bump)

    def _drop_oldest(self, excess: int, bump: dict[str, int]) -> None:
        rows = self._db.execute(
            "DELETE FROM outbox WHERE id <= (SELECT min(id) FROM ("
            " SELECT id, sum(length(payload)) OVER (ORDER BY id) AS running FROM outbox"
            ") WHERE running >= ?) RETURNING readings, length(payload)",
            (excess,),
        ).fetchall()
        self._forget(rows, "dropped_oldest", bump)

    def _forget(self, rows: list[tuple[int, int]], why: str, bump: dict[str, int]) -> None:
        if not rows:
            return
        bump[f"packs_{why}"] = bump.get(f"packs_{why}", 0) + len(rows)
        bump[f"readings_{why}"] = bump.get(f"readings_{why}", 0) + sum(r[0] for r in rows)
        self._count -= len(rows)
        self._bytes -= sum(r[1] for r in rows)

    def _count_up(self, bump: dict[str, int]) -> None:
        self._db.executemany(
            "INSERT INTO counters (name, value) VALUES (?, ?)"
            " ON CONFLICT (name) DO UPDATE SET value = value + excluded.value",
            list(bump.items()),
        )
        for name, value in bump.items():
            setattr(self.counters, name, getattr(self.counters, name) + value)
