"""Telemetry use cases on the hub: queries over the store and the ingest counters."""

from datetime import UTC, datetime, timedelta

from fleetmind.telemetry.ingest import IngestStats
from fleetmind.telemetry.model import DeviceRows, Latest, Point, Query
from fleetmind.telemetry.store import TelemetryStore


class TelemetryService:
    def __init__(self, store: TelemetryStore, stats: IngestStats) -> None:
        self._store = store
        self._stats = stats

    def query(self, query: Query) -> list[Point]:
        return self._store.query(query)

    def latest(self, within: timedelta = timedelta(hours=1)) -> dict[str, list[Latest]]:
        return self._store.latest(datetime.now(UTC) - within)

    def count(self, device_id: str | None = None) -> int:
        return self._store.count(device_id)

    def census(self) -> dict[str, DeviceRows]:
        return self._store.census()

    def stats(self) -> dict[str, object]:
        return self._stats.snapshot()
