"""Reading a long series through the REST API: pages and exports stay bounded.

    python benchmarks/telemetry_query.py --json

A hub starts on a telemetry store holding a series of 500,000 points (one a second, the last
six days) beside four more series of that size. Measured against the running hub: the size and
time of the first page (1,000 points) and of a page of 10,000; every page of the series in turn
(10,000 points each); the series exported as CSV in one streamed answer; and the hub's resident
memory over all of it (sampled every 20 ms) beside its memory at rest. Baseline: the same
series read from the DuckDB file in one cursor, in this process, before the hub starts.

Prints one JSON object.
"""

import argparse
import json
import tempfile
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import numpy as np
import pyarrow as pa

from fleetmind.sim.stack import Stack
from fleetmind.telemetry.duckdb_store import DuckDBTelemetryStore
from fleetmind.telemetry.model import BATCH_SCHEMA

SERIES = 5
PAGE = 10_000


def fill(path: Path, points: int, end: datetime) -> datetime:
    """``SERIES`` series of ``points`` points, one a second up to ``end``; returns the start."""
    start = end - timedelta(seconds=points)
    first = int(start.timestamp()) * 1_000_000
    store = DuckDBTelemetryStore(path)
    for offset in range(0, points, 100_000):  # as ingest writes: the devices interleaved
        count = min(100_000, points - offset)
        times = first + (offset + np.arange(count, dtype=np.int64)) * 1_000_000
        for device in range(SERIES):
            nulls = pa.nulls(count)
            store.append(pa.Table.from_arrays([
                pa.array([f"bench-{device}"] * count), pa.array(["temperature"] * count),
                pa.array(times, pa.timestamp("us", tz="UTC")),
                pa.array(np.random.default_rng(device).normal(21, 2, count)),
                nulls.cast(pa.string()), nulls.cast(pa.bool_()), nulls.cast(pa.string()),
                nulls.cast(pa.string()), nulls.cast(pa.int64()),
            ], schema=BATCH_SCHEMA))  # fmt: skip
    store.close()
    return start


def direct_read(path: Path, start: datetime, end: datetime) -> tuple[int, float]:
    """The baseline: the series in one DuckDB cursor, fetched in chunks of a page."""
    store = DuckDBTelemetryStore(path)
    cursor = store._db.cursor()  # the baseline reads the file as directly as it can
    started = time.monotonic()
    cursor.execute(
        "SELECT ts, value FROM telemetry WHERE device_id = 'bench-0' AND metric = 'temperature'"
        " AND ts BETWEEN ? AND ? ORDER BY ts, value",
        [start, end],
    )
    rows = 0
    while chunk := cursor.fetchmany(PAGE):
        rows += len(chunk)
    seconds = time.monotonic() - started
    store.close()
    return rows, seconds


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


class PeakMemory:
    """The highest resident memory of a process while the block runs, sampled every 20 ms."""

    def __init__(self, pid: int) -> None:
        self._pid = pid
        self.peak = rss_mb(pid)
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        while not self._done.wait(0.02):
            self.peak = max(self.peak, rss_mb(self._pid))

    def __enter__(self) -> "PeakMemory":
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._done.set()
        self._thread.join()


def measure(api: httpx.Client, window: dict[str, str], points: int) -> dict[str, object]:
    path = "/api/v1/devices/bench-0/telemetry"
    started = time.monotonic()
    first = api.get(path, params=window)
    first_ms = (time.monotonic() - started) * 1000
    started = time.monotonic()
    wide = api.get(path, params=window | {"limit": str(PAGE)})
    wide_ms = (time.monotonic() - started) * 1000
    pages, seen, largest, slowest = 0, 0, 0, 0.0
    params = window | {"limit": str(PAGE)}
    started = time.monotonic()
    while True:
        asked = time.monotonic()
        answer = api.get(path, params=params)
        slowest = max(slowest, time.monotonic() - asked)
        page = answer.json()
        pages, seen, largest = (
            pages + 1,
            seen + len(page["points"]),
            max(largest, len(answer.content)),
        )
        if page["next"] is None:
            break
        params = window | {"limit": str(PAGE), "cursor": page["next"]}
    walk_s = time.monotonic() - started
    assert seen == points, (seen, points)  # every point, once
    started = time.monotonic()
    exported = 0
    with api.stream("GET", f"{path}/export", params=window | {"format": "csv"}) as stream:
        for chunk in stream.iter_bytes():
            exported += len(chunk)
    export_s = time.monotonic() - started
    return {
        "first_page_points": len(first.json()["points"]),
        "first_page_kib": round(len(first.content) / 1024, 1),
        "first_page_ms": round(first_ms, 1),
        "page_10k_kib": round(len(wide.content) / 1024, 1),
        "page_10k_ms": round(wide_ms, 1),
        "all_pages": pages,
        "all_pages_s": round(walk_s, 2),
        "all_pages_points_per_s": round(points / walk_s),
        "largest_page_kib": round(largest / 1024, 1),
        "slowest_page_ms": round(slowest * 1000, 1),
        "export_csv_mib": round(exported / 2**20, 1),
        "export_csv_s": round(export_s, 2),
        "export_points_per_s": round(points / export_s),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--json", action="store_true", help="print JSON only")
    parser.add_argument("--points", type=int, default=500_000)
    args = parser.parse_args()
    end = datetime.now(UTC).replace(microsecond=0)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        (work / "hub").mkdir()
        store = work / "hub" / "telemetry.duckdb"
        start = fill(store, args.points, end)
        window = {"metric": "temperature", "start": start.isoformat(), "end": end.isoformat()}
        rows, direct_s = direct_read(store, start, end)
        stack = Stack(work, embedded=True)
        try:
            stack.start_hub()
            assert stack.hub is not None
            hub = stack.hub
            with httpx.Client(
                base_url=stack.url, headers={"Authorization": f"Bearer {stack.token}"}, timeout=120
            ) as api:
                api.get("/api/v1/devices/bench-0/telemetry", params=window)  # warm up
                idle = rss_mb(hub.pid)
                with PeakMemory(hub.pid) as memory:
                    result: dict[str, object] = {"points": args.points, "series": SERIES}
                    result |= measure(api, window, args.points)
        finally:
            stack.close()
    result |= {
        "hub_rss_idle_mib": round(idle, 1),
        "hub_rss_peak_growth_mib": round(memory.peak - idle, 1),
        "baseline_direct_read_s": round(direct_s, 2),
        "baseline_direct_read_points_per_s": round(rows / direct_s),
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
