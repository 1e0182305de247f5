"""Ingest: bad messages are refused with a reason and never stop the batch; a message the store
itself cannot take is found and refused alone; a store that cannot commit stops the batch."""

import json
import time

import cbor2
import duckdb
import pyarrow as pa
import pytest

from fleetmind.telemetry.duckdb_store import DuckDBTelemetryStore
from fleetmind.telemetry.errors import StoreUnavailable
from fleetmind.telemetry.ingest import Ingestor, Message
from fleetmind.telemetry.store import MemoryTelemetryStore
from fleetmind.wire import senml


def good(seq: int, device: str = "d1") -> Message:
    reading = senml.Reading("temp", time.time(), 20.0 + seq)
    return Message(device, senml.encode_cbor([reading], boot="b", seq=seq))


def test_bad_input_is_refused_with_reasons_and_the_good_rest_is_stored() -> None:
    store = MemoryTelemetryStore()
    ingestor = Ingestor(store)
    now = time.time()
    batch = [
        good(1),
        Message("d1", b"\x00\xffgarbage"),
        Message("d1", json.dumps([{"n": "temp", "v": "hot"}]).encode()),
        Message("d1", b"[" + b" " * 70_000 + b"]"),
        Message("d1", json.dumps([{"n": "temp", "v": 1, "bt": now - 90 * 86400}]).encode()),
        Message("d1", cbor2.dumps([{0: "temp", 2: 1.0, 6: now + 86400}])),
        Message("d1", b'[{"n": "temp", "vs": "\\ud800"}]'),
        Message("d1", b'[{"n": "temp", "v": 1' + b"0" * 400 + b"}]"),
        good(2),
    ]
    ingested = ingestor.ingest(batch)
    assert store.count() == 2
    assert set(ingested.seen) == {"d1"}
    assert sorted(r.reason for r in ingested.refused) == [
        "decode", "number", "size", "text", "time", "time", "type",
    ]  # fmt: skip
    stats = ingestor.stats.snapshot()
    assert stats["messages"] == 9
    assert stats["rows_written"] == 2


def test_duplicates_within_and_across_batches_are_counted() -> None:
    store = MemoryTelemetryStore()
    ingestor = Ingestor(store)
    ingestor.ingest([good(1), good(1), good(2)])
    ingestor.ingest([good(2), good(3)])
    assert store.count() == 3
    assert ingestor.stats.duplicates == 2


class PickyStore(MemoryTelemetryStore):
    """A store that cannot take anything from the device ``poison`` (as if its values broke
    the database), or that is out altogether."""

    def __init__(self) -> None:
        super().__init__()
        self.out = False
        self.appends = 0

    def append(self, batch: pa.Table) -> int:
        self.appends += 1
        if self.out:
            raise StoreUnavailable("disk full")
        if "poison" in batch.column("device_id").to_pylist():
            raise ValueError("the database refused a value")
        return super().append(batch)


def test_a_message_the_store_cannot_take_is_found_and_refused_alone() -> None:
    store = PickyStore()
    ingestor = Ingestor(store)
    batch = [good(seq, "poison" if seq in (17, 40) else "d1") for seq in range(64)]
    ingested = ingestor.ingest(batch)
    assert store.count() == 62
    assert [(r.message.device_id, r.reason) for r in ingested.refused] == [("poison", "store")] * 2
    assert all(isinstance(r.error, ValueError) for r in ingested.refused)
    assert store.appends < 30  # halving: a few appends per culprit, not one per message
    assert (ingestor.stats.rows_written, ingestor.stats.duplicates) == (62, 0)


def test_a_store_that_cannot_commit_fails_the_whole_batch() -> None:
    store = PickyStore()
    store.out = True
    with pytest.raises(StoreUnavailable):
        Ingestor(store).ingest([good(1), good(2)])
    store.out = False
    assert store.count() == 0


class FailingPrune:
    """A DuckDB connection whose prune of old dedupe keys fails (as a full disk would)."""

    def __init__(self, connection: duckdb.DuckDBPyConnection) -> None:
        self._connection = connection

    def cursor(self) -> duckdb.DuckDBPyConnection:
        return self._connection.cursor()

    def execute(self, sql: str, *args: object) -> duckdb.DuckDBPyConnection:
        if sql.startswith("DELETE FROM packs"):
            raise duckdb.IOException("No space left on device")
        return self._connection.execute(sql, *args)


def test_a_prune_that_fails_after_the_commit_fails_nothing() -> None:
    store = DuckDBTelemetryStore()
    store._db = FailingPrune(store._db)  # type: ignore[assignment]
    ingestor = Ingestor(store)
    ingested = ingestor.ingest([good(1), good(2)])
    assert ingested.refused == []
    assert (ingestor.stats.rows_written, ingestor.stats.duplicates) == (2, 0)
    assert ingestor.ingest([good(1), good(2)]).refused == []  # stored once, still recognised
    assert ingestor.stats.rows_written == 2
