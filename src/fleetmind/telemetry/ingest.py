"""Hub ingest: MQTT messages in, one Arrow batch out, written to the store in one call.

Each pack is decoded once into columns (:mod:`fleetmind.wire.senml`); a batch's columns are joined
and converted to Arrow once, then appended. A message that cannot be accepted is refused with a
reason, returned to the caller (who counts and reports it); it never stops the batch.

Two failures of a write are told apart. :class:`StoreUnavailable` (the store cannot commit) goes
up, so nothing of the batch is acknowledged and the broker delivers it again. Any other error is
caused by what some message holds: the batch's table is split in halves (slices, no copies)
until the messages that fail on their own are found; those are refused (reason ``store``), the
rest is stored.
"""

import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime

import numpy as np
import pyarrow as pa

from fleetmind.telemetry.errors import StoreUnavailable
from fleetmind.telemetry.model import BATCH_SCHEMA
from fleetmind.telemetry.store import TelemetryStore
from fleetmind.wire import senml
from fleetmind.wire.errors import WireError
from fleetmind.wire.limits import DEFAULT_LIMITS, Limits


@dataclass(frozen=True, slots=True)
class Message:
    """One telemetry message: the sending device (from the topic) and the raw payload."""

    device_id: str
    payload: bytes


@dataclass(slots=True)
class IngestStats:
    """Counters since start; read by the API's ``/stats`` and the benchmarks."""

    messages: int = 0
    rows_written: int = 0
    duplicates: int = 0
    batches: int = 0

    def snapshot(self) -> dict[str, object]:
        return {
            "messages": self.messages,
            "rows_written": self.rows_written,
            "duplicates": self.duplicates,
            "batches": self.batches,
        }


@dataclass(frozen=True, slots=True)
class Refusal:
    """A message ingest refused: the counter's reason, why in words, and for an unexpected
    failure (not a refused input) the error itself."""

    message: Message
    reason: str
    detail: str
    error: BaseException | None = None


@dataclass(frozen=True, slots=True)
class Ingested:
    """What a batch came to: when each sending device was last seen, and what was refused."""

    seen: dict[str, datetime]
    refused: list[Refusal]


@dataclass(slots=True)
class _Columns:
    """A batch's packs as columns, extended pack by pack, converted to Arrow once."""

    device_ids: list[str] = field(default_factory=list)
    names: list[str] = field(default_factory=list)
    times: list[float] = field(default_factory=list)
    values: list[float | None] = field(default_factory=list)
    strings: list[str | None] = field(default_factory=list)
    bools: list[bool | None] = field(default_factory=list)
    units: list[str | None] = field(default_factory=list)
    boots: list[str | None] = field(default_factory=list)
    seqs: list[int | None] = field(default_factory=list)
    #: the first row of each pack, in the order they were added
    starts: list[int] = field(default_factory=list)

    def extend(self, device_id: str, pack: senml.Pack) -> None:
        count = len(pack)
        self.starts.append(len(self.names))
        self.device_ids.extend([device_id] * count)
        self.names.extend(pack.names)
        self.times.extend(pack.times)
        self.values.extend(pack.values)
        self.strings.extend(pack.strings)
        self.bools.extend(pack.bools)
        self.units.extend(pack.units)
        self.boots.extend([pack.boot] * count)
        self.seqs.extend([pack.seq] * count)

    def table(self) -> pa.Table:
        micros = (np.asarray(self.times, dtype=np.float64) * 1e6).astype(np.int64)
        return pa.Table.from_arrays(
            [
                pa.array(self.device_ids, pa.string()),
                pa.array(self.names, pa.string()),
                pa.array(micros, pa.timestamp("us", tz="UTC")),
                pa.array(self.values, pa.float64()),
                pa.array(self.strings, pa.string()),
                pa.array(self.bools, pa.bool_()),
                pa.array(self.units, pa.string()),
                pa.array(self.boots, pa.string()),
                pa.array(self.seqs, pa.int64()),
            ],
            schema=BATCH_SCHEMA,
        )


class Ingestor:
    """Decodes batches of telemetry messages and appends them to a :class:`TelemetryStore`."""

    def __init__(self, store: TelemetryStore, *, limits: Limits = DEFAULT_LIMITS) -> None:
        self._store = store
        self._limits = limits
        self.stats = IngestStats()
        self._lock = threading.Lock()

    def ingest(self, messages: Iterable[Message]) -> Ingested:
        """Store a batch durably.

        Returns only after the store committed, so the caller may then acknowledge every message
        of the batch (refused ones included: delivering them again would not make them valid).
        Raises :class:`StoreUnavailable` when nothing could be committed.
        """
        now = time.time()
        columns = _Columns()
        taken: list[Message] = []  # the packs themselves are not kept: the columns hold them
        refused: list[Refusal] = []
        packs: set[tuple[str, str, int]] = set()
        seen: dict[str, datetime] = {}
        moment = datetime.fromtimestamp(now, UTC)
        count = duplicates = 0
        for message in messages:
            count += 1
            try:
                pack = senml.decode(
                    message.payload, device_id=message.device_id, now=now, limits=self._limits
                )
            except WireError as exc:
                refused.append(Refusal(message, exc.reason, str(exc)))
                continue
            if pack.boot is not None and pack.seq is not None:
                key = (message.device_id, pack.boot, pack.seq)
                if key in packs:  # redelivered while this batch was gathering
                    duplicates += len(pack)
                    continue
                packs.add(key)
            columns.extend(message.device_id, pack)
            taken.append(message)
            seen[message.device_id] = moment
        written = lost = 0
        if taken:
            written, lost = self._append(columns.table(), taken, columns.starts, refused)
        with self._lock:
            self.stats.messages += count
            self.stats.batches += 1
            self.stats.rows_written += written
            self.stats.duplicates += duplicates + len(columns.names) - lost - written
        return Ingested(seen, refused)

    def _append(
        self, table: pa.Table, messages: list[Message], starts: list[int], refused: list[Refusal]
    ) -> tuple[int, int]:
        """Append ``table``, the rows of ``messages`` (message i from row ``starts[i]`` on);
        find and refuse the messages no store write can take. Returns the rows written and the
        rows of the refused messages."""
        try:
            return self._store.append(table), 0
        except StoreUnavailable:
            raise
        except Exception as exc:  # noqa: BLE001 - whatever a message made the write raise
            if len(messages) == 1:
                detail = f"the store could not take it: {exc!r}"
                refused.append(Refusal(messages[0], "store", detail, exc))
                return 0, table.num_rows
        middle = len(messages) // 2
        cut = starts[middle] - starts[0]
        first = self._append(table.slice(0, cut), messages[:middle], starts[:middle], refused)
        second = self._append(table.slice(cut), messages[middle:], starts[middle:], refused)
        return first[0] + second[0], first[1] + second[1]
