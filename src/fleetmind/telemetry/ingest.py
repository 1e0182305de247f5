"""Hub ingest: MQTT messages in, one Arrow batch out, written to the store in one call.

Each pack is decoded once into columns (:mod:`fleetmind.wire.senml`); a batch's columns are joined
and converted to Arrow once, then appended. A message that cannot be accepted is refused with a
reason, returned to the caller (who counts and reports it); it never stops the batch.

Two failures of a write are told apart. :class:`StoreUnavailable` (the store cannot commit) goes
up, so nothing of the batch is acknowledged and the broker delivers it again. Any other error is
caused by what some message holds: the batch is split in halves until the messages that fail on
their own are found; those are refused (reason ``store``), the rest is stored.
"""

import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
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


@dataclass(frozen=True, slots=True)
class _Decoded:
    message: Message
    pack: senml.Pack


def _table(items: list[_Decoded]) -> pa.Table:
    """One Arrow table of the packs' columns, built with one conversion per column."""
    device_ids: list[str] = []
    names: list[str] = []
    times: list[float] = []
    values: list[float | None] = []
    strings: list[str | None] = []
    bools: list[bool | None] = []
    units: list[str | None] = []
    boots: list[str | None] = []
    seqs: list[int | None] = []
    for item in items:
        pack, count = item.pack, len(item.pack)
        device_ids.extend([item.message.device_id] * count)
        names.extend(pack.names)
        times.extend(pack.times)
        values.extend(pack.values)
        strings.extend(pack.strings)
        bools.extend(pack.bools)
        units.extend(pack.units)
        boots.extend([pack.boot] * count)
        seqs.extend([pack.seq] * count)
    micros = (np.asarray(times, dtype=np.float64) * 1e6).astype(np.int64)
    return pa.Table.from_arrays(
        [
            pa.array(device_ids, pa.string()),
            pa.array(names, pa.string()),
            pa.array(micros, pa.timestamp("us", tz="UTC")),
            pa.array(values, pa.float64()),
            pa.array(strings, pa.string()),
            pa.array(bools, pa.bool_()),
            pa.array(units, pa.string()),
            pa.array(boots, pa.string()),
            pa.array(seqs, pa.int64()),
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
        decoded: list[_Decoded] = []
        refused: list[Refusal] = []
        packs: set[tuple[str, str, int]] = set()
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
            decoded.append(_Decoded(message, pack))
        written = self._append(decoded, refused) if decoded else 0
        rows = sum(len(item.pack) for item in decoded)
        with self._lock:
            self.stats.messages += count
            self.stats.batches += 1
            self.stats.rows_written += written
            self.stats.duplicates += duplicates + rows - written
        moment = datetime.fromtimestamp(now, UTC)
        return Ingested({item.message.device_id: moment for item in decoded}, refused)

    def _append(self, items: list[_Decoded], refused: list[Refusal]) -> int:
        """Append ``items``; find and refuse the ones no store write can take."""
        try:
            return self._store.append(_table(items))
        except StoreUnavailable:
            raise
        except Exception as exc:  # noqa: BLE001 - whatever a message made the write raise
            if len(items) == 1:
                detail = f"the store could not take it: {exc!r}"
                refused.append(Refusal(items[0].message, "store", detail, exc))
                return 0
        middle = len(items) // 2
        return self._append(items[:middle], refused) + self._append(items[middle:], refused)
