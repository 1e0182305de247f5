"""REST routes for telemetry: time-range queries with optional bucket aggregation."""

from dataclasses import asdict
from datetime import UTC, datetime, timedelta
from typing import Annotated

from fastapi import APIRouter, HTTPException, Query, Request, status
from pydantic import AwareDatetime, BaseModel

from fleetmind.auth.api import Reader
from fleetmind.telemetry import model
from fleetmind.telemetry.errors import InvalidQuery
from fleetmind.telemetry.service import TelemetryService

router = APIRouter(prefix="/api/v1", tags=["telemetry"])


class PointOut(BaseModel):
    time: datetime
    value: float | bool | str | None


class SeriesOut(BaseModel):
    device_id: str
    metric: str
    start: datetime
    end: datetime
    bucket: str | None
    agg: model.Aggregation | None
    points: list[PointOut]


class LatestOut(BaseModel):
    metric: str
    time: datetime
    value: float | bool | str | None
    unit: str | None


class IngestStatsOut(BaseModel):
    messages: int
    rows_written: int
    duplicates: int
    batches: int
    rejected: dict[str, int]
    rows_stored: int


def _service(request: Request) -> TelemetryService:
    service: TelemetryService = request.app.state.telemetry
    return service


@router.get("/devices/{device_id}/telemetry")
def query_telemetry(
    request: Request,
    _: Reader,
    device_id: str,
    metric: Annotated[str, Query(min_length=1, max_length=256)],
    start: AwareDatetime | None = None,
    end: AwareDatetime | None = None,
    bucket: Annotated[str | None, Query(max_length=32, examples=["1m"])] = None,
    agg: model.Aggregation = model.Aggregation.AVG,
) -> SeriesOut:
    """Points of one metric between ``start`` (default: an hour before ``end``) and ``end``
    (default: now); with ``bucket`` (e.g. ``1m``), one aggregated point per bucket."""
    end = end or datetime.now(UTC)
    start = start or end - timedelta(hours=1)
    try:
        query = model.Query(
            device_id,
            metric,
            start,
            end,
            model.parse_duration(bucket) if bucket else None,
            agg,
        )
    except InvalidQuery as exc:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, str(exc)) from None
    points = _service(request).query(query)
    return SeriesOut(
        device_id=device_id,
        metric=metric,
        start=start,
        end=end,
        bucket=bucket,
        agg=agg if bucket else None,
        points=[PointOut(time=point.time, value=point.value) for point in points],
    )


@router.get("/telemetry/latest")
def latest_values(request: Request, _: Reader) -> dict[str, list[LatestOut]]:
    """The newest value of each metric of each device that reported in the last hour."""
    return {
        device_id: [LatestOut(**asdict(item)) for item in items]
        for device_id, items in _service(request).latest().items()
    }


class DeviceRowsOut(BaseModel):
    rows: int
    distinct: int


@router.get("/stats/store")
def store_census(request: Request, _: Reader) -> dict[str, DeviceRowsOut]:
    """Per device: rows stored, and distinct (metric, time) among them (equal unless a reading
    was stored twice). Counts the whole store."""
    return {
        device: DeviceRowsOut(rows=item.rows, distinct=item.distinct)
        for device, item in _service(request).census().items()
    }


@router.get("/stats/ingest")
def ingest_stats(request: Request, _: Reader) -> IngestStatsOut:
    """Ingest counters since the hub started (rejections by reason) and rows in the store."""
    service = _service(request)
    return IngestStatsOut.model_validate(service.stats() | {"rows_stored": service.count()})
