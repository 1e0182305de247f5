"""REST routes for the device registry."""

from datetime import datetime

from fastapi import APIRouter, HTTPException, Request, Response, status
from pydantic import BaseModel, Field

from fleetmind.auth.api import Authenticated
from fleetmind.devices.errors import DeviceExists, DeviceNotFound, InvalidDevice
from fleetmind.devices.model import Device
from fleetmind.devices.service import DeviceService

router = APIRouter(prefix="/api/v1/devices", tags=["devices"])


class DeviceIn(BaseModel):
    name: str = Field(min_length=1, max_length=64, examples=["pump-7"])


class DeviceOut(BaseModel):
    id: str
    name: str
    created_at: datetime
    online: bool
    last_seen: datetime | None

    @classmethod
    def of(cls, device: Device) -> "DeviceOut":
        return cls(
            id=device.id,
            name=device.name,
            created_at=device.created_at,
            online=device.online,
            last_seen=device.last_seen,
        )


class MqttCredentials(BaseModel):
    host: str
    port: int
    username: str
    password: str


class DeviceCreated(DeviceOut):
    mqtt: MqttCredentials


def _service(request: Request) -> DeviceService:
    service: DeviceService = request.app.state.devices
    return service


@router.get("")
def list_devices(request: Request, _: Authenticated) -> list[DeviceOut]:
    return [DeviceOut.of(device) for device in _service(request).list()]


@router.post("", status_code=status.HTTP_201_CREATED)
def create_device(request: Request, _: Authenticated, body: DeviceIn) -> DeviceCreated:
    """Register a device; the response holds its MQTT password, which is never shown again."""
    try:
        created = _service(request).add(body.name)
    except DeviceExists as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from None
    except InvalidDevice as exc:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, str(exc)) from None
    host, port = request.app.state.mqtt_endpoint
    return DeviceCreated(
        **DeviceOut.of(created.device).model_dump(),
        mqtt=MqttCredentials(
            host=host, port=port, username=created.device.id, password=created.secret
        ),
    )


@router.get("/{device_id}")
def get_device(request: Request, _: Authenticated, device_id: str) -> DeviceOut:
    try:
        return DeviceOut.of(_service(request).get(device_id))
    except DeviceNotFound as exc:
        raise HTTPException(status.HTTP_404_NOT_FOUND, str(exc)) from None


@router.delete("/{device_id}", status_code=status.HTTP_204_NO_CONTENT)
def delete_device(request: Request, _: Authenticated, device_id: str) -> Response:
    try:
        _service(request).delete(device_id)
    except DeviceNotFound as exc:
        raise HTTPException(status.HTTP_404_NOT_FOUND, str(exc)) from None
    return Response(status_code=status.HTTP_204_NO_CONTENT)
