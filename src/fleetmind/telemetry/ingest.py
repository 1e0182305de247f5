"""Hub ingest: MQTT messages in, one Arrow batch out, written to the store in one call.

Each pack is decoded once into columns (:mod:`fleetmind.wire.senml`); a batch's columns are joined
and converted to Arrow once, then appended. A message that cannot be accepted is rejected with a
counted reason and logged once per (device, reason); it never stops the batch.
"""

import logging
import threading
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime

import numpy as np
import pyarrow as pa

from fleetmind.telemetry.model import BATCH_SCHEMA
from fleetmind.telemetry.store import TelemetryStore
from fleetmind.wire import senml
from fleetmind.wire.errors import WireError
from fleetmind.wire.limits import DEFAULT_LIMITS, Limits

log = logging.getLogger(__name__)
_MAX_LOGGED = 10_000


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
    rejected: Counter[str] = field(default_factory=Counter)

    def snapshot(self) -> dict[str, object]:
        return {
            "messages": self.messages,
            "rows_written": self.rows_written,
            "duplicates": self.duplicates,
            "batches": self.batches,
            "rejected": dict(self.rejected),
        }


@dataclass(slots=True)
class _Columns:
    device_ids: list[str] = field(default_factory=list)
    names: list[str] = field(default_factory=list)
    times: list[float] = field(default_factory=list)
    values: list[float | None] = field(default_factory=list)
    strings: list[str | None] = field(default_factory=list)
    bools: list[bool | None] = field(default_factory=list)
    units: list[str | None] = field(default_factory=list)
    boots: list[str | None] = field(default_factory=list)
    seqs: list[int | None] = field(default_factory=list)

    def extend(self, device_id: str, pack: senml.Pack) -> None:
        count = len(pack)
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
        self._logged: set[tuple[str, str]] = set()
        self._lock = threading.Lock()

    def ingest(self, messages: Iterable[Message]) -> dict[str, datetime]:
        """Store a batch durably; return when each sending device was last seen in it.

        Returns only after the store committed, so the caller may then acknowledge every message
        of the batch (rejected ones included: redelivering them would not make them valid).
        """
        now = time.time()
        columns = _Columns()
        packs: set[tuple[str, str, int]] = set()
        seen: dict[str, datetime] = {}
        count = duplicates = 0
        for message in messages:
            count += 1
            try:
                pack = senml.decode(
                    message.payload, device_id=message.device_id, now=now, limits=self._limits
                )
            except WireError as exc:
                self.reject(message.device_id, exc)
                continue
            if pack.boot is not None and pack.seq is not None:
                key = (message.device_id, pack.boot, pack.seq)
                if key in packs:  # redelivered while this batch was gathering
                    duplicates += len(pack)
                    continue
                packs.add(key)
            columns.extend(message.device_id, pack)
            seen[message.device_id] = datetime.fromtimestamp(now, UTC)
        written = self._store.append(columns.table()) if columns.names else 0
        with self._lock:
            self.stats.messages += count
            self.stats.batches += 1
            self.stats.rows_written += written
            self.stats.duplicates += duplicates + len(columns.names) - written
        return seen

    def reject(self, device_id: str, error: WireError) -> None:
        """Count a refused message and log it the first time this device fails this way."""
        with self._lock:
            self.stats.rejected[error.reason] += 1
            key = (device_id, error.reason)
            if key in self._logged or len(self._logged) >= _MAX_LOGGED:
                return
            self._logged.add(key)
        log.warning(
            "rejected message from %s (%s): %s; further ones are only counted",
            device_id,
            error.reason,
            error,
        )
