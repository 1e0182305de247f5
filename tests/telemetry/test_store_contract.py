"""The TelemetryStore contract, run against every implementation."""

from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pytest

from fleetmind.telemetry.duckdb_store import DuckDBTelemetryStore
from fleetmind.telemetry.model import BATCH_SCHEMA, Aggregation, Point, Query
from fleetmind.telemetry.store import MemoryTelemetryStore, TelemetryStore

T0 = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)


def batch(rows: list[dict[str, object]]) -> pa.Table:
    defaults = {"string_value": None, "bool_value": None, "unit": None, "boot": None, "seq": None}
    return pa.Table.from_pylist([defaults | row for row in rows], schema=BATCH_SCHEMA)


def reading(
    device: str, seconds: float, value: float, *, boot: str | None = "b", seq: int | None = 0
) -> dict[str, object]:
    return {
        "device_id": device,
        "metric": "temp",
        "ts": T0 + timedelta(seconds=seconds),
        "value": value,
        "boot": boot,
        "seq": seq,
    }


@pytest.fixture(params=["memory", "duckdb"])
def make_store(
    request: pytest.FixtureRequest, tmp_path: Path
) -> Iterator[Callable[[], TelemetryStore]]:
    opened: list[TelemetryStore] = []

    def make() -> TelemetryStore:
        store: TelemetryStore
        if request.param == "memory":
            store = opened[0] if opened else MemoryTelemetryStore()
        else:
            store = DuckDBTelemetryStore(tmp_path / "t.duckdb")
        opened.append(store)
        return store

    yield make
    for store in opened:
        if request.param == "duckdb":
            store.close()


def test_append_then_query_raw(make_store: Callable[[], TelemetryStore]) -> None:
    store = make_store()
    assert store.append(batch([reading("d1", s, s * 1.5, seq=s) for s in range(10)])) == 10
    page = store.query(Query("d1", "temp", T0, T0 + timedelta(seconds=4)))
    points = page.points
    assert [p.value for p in points] == [0.0, 1.5, 3.0, 4.5, 6.0]
    assert page.next is None
    assert points[0].time == T0
    assert store.count() == 10
    assert store.count("d1") == 10
    assert store.count("d2") == 0


def test_redelivered_pack_is_stored_once(make_store: Callable[[], TelemetryStore]) -> None:
    store = make_store()
    first = batch([reading("d1", 0, 1.0, seq=1), reading("d1", 1, 2.0, seq=1)])
    assert store.append(first) == 2
    assert store.append(first) == 0
    # same seq, other boot or other device: a different pack
    assert store.append(batch([reading("d1", 0, 1.0, boot="b2", seq=1)])) == 1
    assert store.append(batch([reading("d2", 0, 1.0, seq=1)])) == 1
    assert store.count() == 4


def test_rows_without_pack_identity_are_always_written(
    make_store: Callable[[], TelemetryStore],
) -> None:
    store = make_store()
    row = reading("d1", 0, 1.0, boot=None, seq=None)
    assert store.append(batch([row])) == 1
    assert store.append(batch([row])) == 1


def test_bucket_aggregations(make_store: Callable[[], TelemetryStore]) -> None:
    store = make_store()
    store.append(batch([reading("d1", s, float(s), seq=s) for s in range(120)]))
    end = T0 + timedelta(seconds=119)
    expected = {
        Aggregation.AVG: [29.5, 89.5],
        Aggregation.MIN: [0.0, 60.0],
        Aggregation.MAX: [59.0, 119.0],
        Aggregation.COUNT: [60.0, 60.0],
        Aggregation.LAST: [59.0, 119.0],
    }
    for agg, values in expected.items():
        points = store.query(Query("d1", "temp", T0, end, timedelta(minutes=1), agg)).points
        assert [p.time for p in points] == [T0, T0 + timedelta(minutes=1)]
        assert [p.value for p in points] == values, agg


def test_latest_per_device_and_metric(make_store: Callable[[], TelemetryStore]) -> None:
    store = make_store()
    rows = [reading("d1", s, float(s), seq=s) for s in range(3)]
    rows.append(
        {"device_id": "d2", "metric": "door", "ts": T0, "bool_value": True, "boot": "b", "seq": 0}
    )
    store.append(batch(rows))
    latest = store.latest(T0 - timedelta(minutes=1))
    assert [(x.metric, x.value) for x in latest["d1"]] == [("temp", 2.0)]
    assert [(x.metric, x.value) for x in latest["d2"]] == [("door", True)]
    assert store.latest(T0 + timedelta(hours=1)) == {}


def test_dedupe_survives_reopening(make_store: Callable[[], TelemetryStore]) -> None:
    store = make_store()
    pack = batch([reading("d1", 0, 1.0, seq=5)])
    store.append(pack)
    if isinstance(store, DuckDBTelemetryStore):
        store.close()
    reopened = make_store()
    assert reopened.append(pack) == 0
    assert reopened.count() == 1


def test_census_counts_rows_and_distinct_readings(
    make_store: Callable[[], TelemetryStore],
) -> None:
    store = make_store()
    store.append(batch([reading("d1", s, 1.0, seq=s) for s in range(3)]))
    twice = reading("d2", 0, 1.0, boot=None, seq=None)
    store.append(batch([twice]))
    store.append(batch([twice]))  # no pack identity: stored again
    census = store.census()
    assert (census["d1"].rows, census["d1"].distinct) == (3, 3)
    assert (census["d2"].rows, census["d2"].distinct) == (2, 1)


def walk(store: TelemetryStore, query: Query) -> tuple[list[Point], list[int]]:
    """Every point of ``query``, following the pages; and the size of each page."""
    points: list[Point] = []
    sizes: list[int] = []
    page = store.query(query)
    while True:
        points.extend(page.points)
        sizes.append(len(page.points))
        if page.next is None:
            return points, sizes
        page = store.query(Query(query.device_id, query.metric, query.start, query.end,
                                 limit=query.limit, after=page.next))  # fmt: skip


def test_raw_points_come_in_pages_without_gaps_or_repeats(
    make_store: Callable[[], TelemetryStore],
) -> None:
    """Several points at one time (a burst, or packs without identity) are still paged
    exactly: each point once, in time order, and no empty last page."""
    store = make_store()
    rows = [  # 1 to 4 points at each time, some identical
        reading("d1", second, float(copy % 2), boot=None, seq=None)
        for second in range(20)
        for copy in range(1 + second % 4)
    ]
    rows += [reading("d1", 30, float(v), boot=None, seq=None) for v in range(25)]  # one burst
    store.append(batch(rows))
    expected = sorted((p["ts"], p["value"]) for p in rows)
    for limit in (1, 3, 7, 10, 24, len(rows), len(rows) + 1):
        query = Query("d1", "temp", T0, T0 + timedelta(minutes=1), limit=limit)
        points, sizes = walk(store, query)
        assert sorted((p.time, p.value) for p in points) == expected, limit
        assert [p.time for p in points] == sorted(p.time for p in points)
        assert all(size == limit for size in sizes[:-1]) and 0 < sizes[-1] <= limit


def test_a_page_ends_with_no_cursor_when_nothing_follows(
    make_store: Callable[[], TelemetryStore],
) -> None:
    store = make_store()
    store.append(batch([reading("d1", s, float(s), seq=s) for s in range(10)]))
    window = ("d1", "temp", T0, T0 + timedelta(seconds=9))
    first = store.query(Query(*window, limit=5))
    assert [p.value for p in first.points] == [0.0, 1.0, 2.0, 3.0, 4.0]
    assert first.next is not None
    second = store.query(Query(*window, limit=5, after=first.next))
    assert [p.value for p in second.points] == [5.0, 6.0, 7.0, 8.0, 9.0]
    assert second.next is None
    assert store.query(Query(*window, limit=10)).next is None


def test_an_average_beyond_the_float_range_is_no_value(
    make_store: Callable[[], TelemetryStore],
) -> None:
    """Two readings of 1e308 average to 1e308, but their sum overflows: never infinity (which
    JSON cannot carry)."""
    store = make_store()
    store.append(batch([reading("d1", s, 1e308, seq=s) for s in range(2)]))
    query = Query("d1", "temp", T0, T0 + timedelta(seconds=1), timedelta(minutes=1))
    assert [p.value for p in store.query(query).points] in ([1e308], [None])
