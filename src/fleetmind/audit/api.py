"""The audit log over REST (mounted behind the admin scope by the hub). Events are recorded by
the domain services, not by routes."""

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, HTTPException, Query, Request, status
from pydantic import BaseModel

from fleetmind.audit.model import AuditEvent, AuditQuery, Outcome, in_utc
from fleetmind.audit.service import AuditService

router = APIRouter(prefix="/api/v1/audit", tags=["audit"])


class AuditEventOut(BaseModel):
    id: int
    type: str
    at: datetime
    actor: str
    source: str
    outcome: Outcome
    detail: str

    @classmethod
    def of(cls, event: AuditEvent) -> "AuditEventOut":
        return cls(
            id=event.id,
            type=event.type,
            at=event.at,
            actor=event.actor,
            source=event.source,
            outcome=event.outcome,
            detail=event.detail,
        )


def service(request: Request) -> AuditService:
    audit: AuditService = request.app.state.audit
    return audit


@router.get("")
def list_events(
    request: Request,
    type: Annotated[str | None, Query(max_length=64, description="A type or its prefix.")] = None,
    actor: Annotated[str | None, Query(max_length=200)] = None,
    since: datetime | None = None,
    outcome: Outcome | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[AuditEventOut]:
    """Security events, newest first (``since``: without a time zone, UTC)."""
    try:
        since = in_utc(since) if since is not None else None
    except ValueError as exc:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, f"since: {exc}") from None
    query = AuditQuery(type, actor, since, outcome, limit)
    return [AuditEventOut.of(event) for event in service(request).query(query)]
