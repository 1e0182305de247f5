"""Telemetry use cases on the hub: queries over the store and the ingest counters."""

from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta

from fleetmind.devices.rejects import RejectLog
from fleetmind.telemetry.ingest import IngestStats
from fleetmind.telemetry.model import MAX_LIMIT, DeviceRows, Latest, Page, Point, Query
from fleetmind.telemetry.store import TelemetryStore


class TelemetryService:
    def __init__(self, store: TelemetryStore, stats: IngestStats, rejects: RejectLog) -> None:
        self._store = store
        self._stats = stats
        self._rejects = rejects

    def query(self, query: Query) -> Page:
        return self._store.query(query)

    def export(self, query: Query) -> Iterator[list[Point]]:
        """Every point of ``query``'s range, one page of :data:`MAX_LIMIT` at a time: memory
        stays bounded however many there are, and each read is a short query of its own."""
        query = replace(query, limit=MAX_LIMIT, after=None)
        while True:
            page = self._store.query(query)
            yield page.points
            if page.next is None:
                return
            query = replace(query, after=page.next)

    def latest(self, within: timedelta = timedelta(hours=1)) -> dict[str, list[Latest]]:
        return self._store.latest(datetime.now(UTC) - within)

    def count(self, device_id: str | None = None) -> int:
        return self._store.count(device_id)

    def census(self) -> dict[str, DeviceRows]:
        return self._store.census()

    def stats(self) -> dict[str, object]:
        """Ingest counters, and what was refused (by reason, and by uplink kind and reason)."""
        return self._stats.snapshot() | {
            "rejected": self._rejects.by_reason(),
            "rejected_by_kind": self._rejects.counts(),
        }
