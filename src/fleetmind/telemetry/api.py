"""REST routes for telemetry: time-range queries in pages or buckets, and streamed exports."""

import csv
import io
import json
import re
from collections.abc import Iterable, Iterator
from dataclasses import asdict
from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated

from fastapi import APIRouter, HTTPException, Query, Request, status
from fastapi.responses import StreamingResponse
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
    #: pass as ``cursor`` for the next page of raw points; null on the last page (and for buckets)
    next: str | None


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
    #: refused uplink messages since start, by reason
    rejected: dict[str, int]
    #: the same, by uplink kind (telemetry, state, status...) and reason
    rejected_by_kind: dict[str, dict[str, int]]
    rows_stored: int


def _service(request: Request) -> TelemetryService:
    service: TelemetryService = request.app.state.telemetry
    return service


Start = Annotated[
    AwareDatetime | None,
    Query(description="Default: an hour before end.", examples=["2026-11-24T12:00:00Z"]),
]
End = Annotated[AwareDatetime | None, Query(description="Default: now.")]
Metric = Annotated[str, Query(min_length=1, max_length=256)]


def _window(start: datetime | None, end: datetime | None) -> tuple[datetime, datetime]:
    try:
        return model.window(start, end, datetime.now(UTC))
    except InvalidQuery as exc:
        raise _unprocessable(exc) from None


def _unprocessable(exc: InvalidQuery) -> HTTPException:
    return HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, str(exc))


@router.get("/devices/{device_id}/telemetry")
def query_telemetry(
    request: Request,
    _: Reader,
    device_id: str,
    metric: Metric,
    start: Start = None,
    end: End = None,
    bucket: Annotated[
        str | None,
        Query(
            max_length=32,
            pattern=model.DURATION_PATTERN,
            description="Aggregate per bucket (at most 10 years, and 10,000 buckets).",
            examples=["1m"],
        ),
    ] = None,
    agg: model.Aggregation = model.Aggregation.AVG,
    limit: Annotated[int, Query(ge=1, le=model.MAX_LIMIT, description="Raw points per page.")] = (
        model.DEFAULT_LIMIT
    ),
    cursor: Annotated[
        str | None, Query(max_length=64, description="The `next` of the page before.")
    ] = None,
) -> SeriesOut:
    """Points of one metric between ``start`` and ``end`` (both included), oldest first: a page
    of ``limit`` raw points, and in ``next`` the cursor of the following page (null on the last);
    or with ``bucket`` (e.g. ``1m``), one aggregated point per bucket, all at once."""
    first, last = _window(start, end)
    try:
        query = model.Query(
            device_id,
            metric,
            first,
            last,
            model.parse_duration(bucket) if bucket else None,
            agg,
            limit,
            model.Cursor.decode(cursor) if cursor else None,
        )
    except InvalidQuery as exc:
        raise _unprocessable(exc) from None
    page = _service(request).query(query)
    return SeriesOut(
        device_id=device_id,
        metric=metric,
        start=first,
        end=last,
        bucket=bucket,
        agg=agg if bucket else None,
        points=[PointOut(time=point.time, value=point.value) for point in page.points],
        next=page.next.encode() if page.next else None,
    )


class ExportFormat(StrEnum):
    CSV = "csv"
    NDJSON = "ndjson"


_MEDIA_TYPES = {ExportFormat.CSV: "text/csv", ExportFormat.NDJSON: "application/x-ndjson"}


@router.get(
    "/devices/{device_id}/telemetry/export",
    response_class=StreamingResponse,
    responses={200: {"content": {media: {} for media in _MEDIA_TYPES.values()}}},
)
def export_telemetry(
    request: Request,
    _: Reader,
    device_id: str,
    metric: Metric,
    start: Start = None,
    end: End = None,
    format: ExportFormat = ExportFormat.CSV,
) -> StreamingResponse:
    """Every raw point of one metric between ``start`` and ``end``, oldest first, as CSV
    (``time,value``) or NDJSON: streamed while it is read from the store a page at a time, so a
    series of any length takes little memory."""
    first, last = _window(start, end)
    try:
        query = model.Query(device_id, metric, first, last)
    except InvalidQuery as exc:
        raise _unprocessable(exc) from None
    pages = _service(request).export(query)
    name = re.sub(r"[^A-Za-z0-9_.-]", "_", f"{device_id}-{metric}")[:100]
    return StreamingResponse(
        _csv(pages) if format is ExportFormat.CSV else _ndjson(pages),
        media_type=_MEDIA_TYPES[format],
        headers={"Content-Disposition": f'attachment; filename="{name}.{format}"'},
    )


def _time(moment: datetime) -> str:
    """As in the JSON answers: ISO 8601 in UTC, with ``Z``."""
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _csv(pages: Iterable[list[model.Point]]) -> Iterator[str]:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["time", "value"])
    for points in pages:
        writer.writerows((_time(point.time), _csv_value(point.value)) for point in points)
        yield buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()


def _value(value: float | bool | str | None) -> float | bool | str | None:
    """A value JSON can carry: a stored infinity (from before the edge refused them) is null."""
    return model.finite(value) if isinstance(value, float) else value


def _csv_value(value: float | bool | str | None) -> str:
    value = _value(value)
    if value is None or isinstance(value, str):
        return value or ""
    return json.dumps(value)  # true/false, and floats as in JSON


def _ndjson(pages: Iterable[list[model.Point]]) -> Iterator[str]:
    for points in pages:
        yield "".join(
            json.dumps({"time": _time(point.time), "value": _value(point.value)}, allow_nan=False)
            + "\n"
            for point in points
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
