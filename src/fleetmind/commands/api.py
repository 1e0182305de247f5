"""REST routes for commands: send (and wait for the answer), read one."""

import time
from datetime import datetime
from typing import Annotated, Any

import anyio
from fastapi import APIRouter, HTTPException, Request, Response, status
from pydantic import BaseModel, Field

from fleetmind.auth.api import Operator, Reader, actor
from fleetmind.commands.errors import CommandNotFound, DeviceOffline, InvalidCommand
from fleetmind.commands.model import CommandRecord, Status
from fleetmind.commands.service import CommandService
from fleetmind.devices.errors import DeviceNotFound

router = APIRouter(prefix="/api/v1/devices", tags=["commands"])


class CommandIn(BaseModel):
    name: Annotated[str, Field(examples=["ping"], max_length=64)]
    args: dict[str, Any] = Field(default_factory=dict)
    #: how long to wait for the device's answer
    timeout_s: Annotated[float, Field(ge=0, le=300)] = 10.0
    #: if the device is offline, how long the command may wait for it (0: fail at once)
    ttl_s: Annotated[float, Field(ge=0, le=7 * 86400)] = 0.0


class CommandOut(BaseModel):
    id: str
    device_id: str
    name: str
    args: dict[str, Any]
    status: Status
    created_at: datetime
    expires_at: datetime
    result: dict[str, Any] | None
    error: str | None
    completed_at: datetime | None

    @classmethod
    def of(cls, record: CommandRecord) -> "CommandOut":
        return cls(
            id=record.id,
            device_id=record.device_id,
            name=record.name,
            args=record.args,
            status=record.status,
            created_at=record.created_at,
            expires_at=record.expires_at,
            result=record.result,
            error=record.error,
            completed_at=record.completed_at,
        )


def _service(request: Request) -> CommandService:
    service: CommandService = request.app.state.commands
    return service


@router.post("/{device_id}/commands")
async def send_command(
    request: Request, principal: Operator, device_id: str, body: CommandIn, response: Response
) -> CommandOut:
    """Send a command and wait up to ``timeout_s`` for the answer: 200 with the answer, or 202
    while it is still open (queued for an offline device, or sent without an answer yet)."""
    service, by = _service(request), actor(request, principal)
    try:
        record = await anyio.to_thread.run_sync(
            lambda: service.send(
                device_id,
                body.name,
                body.args,
                timeout_s=body.timeout_s,
                ttl_s=body.ttl_s,
                by=by,
            )
        )
    except DeviceNotFound as exc:
        raise HTTPException(status.HTTP_404_NOT_FOUND, str(exc)) from None
    except DeviceOffline as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from None
    except InvalidCommand as exc:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, str(exc)) from None
    deadline = time.monotonic() + body.timeout_s
    while record.status is Status.SENT and time.monotonic() < deadline:
        await anyio.sleep(0.05)
        record = await anyio.to_thread.run_sync(service.get, device_id, record.id)
    if not record.status.done:
        response.status_code = status.HTTP_202_ACCEPTED
    return CommandOut.of(record)


@router.get("/{device_id}/commands/{command_id}")
def get_command(request: Request, _: Reader, device_id: str, command_id: str) -> CommandOut:
    """One command with its status and, once answered, its result."""
    try:
        return CommandOut.of(_service(request).get(device_id, command_id))
    except CommandNotFound as exc:
        raise HTTPException(status.HTTP_404_NOT_FOUND, str(exc)) from None
