"""REST routes for twins: read, and patch desired with optimistic concurrency (ETag/If-Match)."""

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Body, Header, HTTPException, Request, Response, status
from pydantic import BaseModel

from fleetmind.auth.api import Operator, Reader, actor
from fleetmind.devices.errors import DeviceNotFound
from fleetmind.twins.errors import InvalidDocument, VersionConflict
from fleetmind.twins.model import Twin
from fleetmind.twins.service import TwinService

router = APIRouter(prefix="/api/v1/devices", tags=["twins"])


class TwinOut(BaseModel):
    device_id: str
    desired: dict[str, Any]
    desired_version: int
    reported: dict[str, Any]
    reported_version: int
    updated_at: datetime | None

    @classmethod
    def of(cls, twin: Twin) -> "TwinOut":
        return cls(
            device_id=twin.device_id,
            desired=twin.desired,
            desired_version=twin.desired_version,
            reported=twin.reported,
            reported_version=twin.reported_version,
            updated_at=twin.updated_at,
        )


def _service(request: Request) -> TwinService:
    service: TwinService = request.app.state.twins
    return service


def _etag(twin: Twin) -> str:
    return f'"{twin.desired_version}"'


def _if_match(value: str | None) -> int | None:
    if value is None or value.strip() == "*":
        return None
    try:
        return int(value.strip().removeprefix("W/").strip('"'))
    except ValueError:
        raise HTTPException(
            status.HTTP_412_PRECONDITION_FAILED, "If-Match must be an ETag of this twin"
        ) from None


@router.get("/{device_id}/twin")
def get_twin(request: Request, _: Reader, device_id: str, response: Response) -> TwinOut:
    """Both documents with their versions; the ETag is the desired version."""
    try:
        twin = _service(request).get(device_id)
    except DeviceNotFound as exc:
        raise HTTPException(status.HTTP_404_NOT_FOUND, str(exc)) from None
    response.headers["ETag"] = _etag(twin)
    return TwinOut.of(twin)


@router.patch("/{device_id}/twin/desired")
def patch_desired(
    request: Request,
    principal: Operator,
    device_id: str,
    response: Response,
    patch: Annotated[dict[str, Any], Body(examples=[{"settings": {"sample_hz": 2}}])],
    if_match: Annotated[str | None, Header()] = None,
) -> TwinOut:
    """Merge a JSON merge patch (RFC 7386) into desired. With ``If-Match``, refused (412) when
    the twin changed since that ETag."""
    try:
        twin = _service(request).patch_desired(
            device_id, patch, if_version=_if_match(if_match), by=actor(request, principal)
        )
    except DeviceNotFound as exc:
        raise HTTPException(status.HTTP_404_NOT_FOUND, str(exc)) from None
    except VersionConflict as exc:
        raise HTTPException(status.HTTP_412_PRECONDITION_FAILED, str(exc)) from None
    except InvalidDocument as exc:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, str(exc)) from None
    response.headers["ETag"] = _etag(twin)
    return TwinOut.of(twin)
