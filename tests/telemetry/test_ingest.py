"""Ingest: bad messages are rejected with a counted reason and never stop the batch."""

import json
import time

import cbor2

from fleetmind.telemetry.ingest import Ingestor, Message
from fleetmind.telemetry.store import MemoryTelemetryStore
from fleetmind.wire import senml


def good(seq: int, device: str = "d1") -> Message:
    reading = senml.Reading("temp", time.time(), 20.0 + seq)
    return Message(device, senml.encode_cbor([reading], boot="b", seq=seq))


def test_bad_input_is_counted_and_the_good_rest_is_stored() -> None:
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
        good(2),
    ]
    seen = ingestor.ingest(batch)
    assert store.count() == 2
    assert set(seen) == {"d1"}
    stats = ingestor.stats.snapshot()
    assert stats["messages"] == 7
    assert stats["rows_written"] == 2
    assert stats["rejected"] == {"decode": 1, "type": 1, "size": 1, "time": 2}


def test_duplicates_within_and_across_batches_are_counted() -> None:
    store = MemoryTelemetryStore()
    ingestor = Ingestor(store)
    ingestor.ingest([good(1), good(1), good(2)])
    ingestor.ingest([good(2), good(3)])
    assert store.count() == 3
    assert ingestor.stats.duplicates == 2
