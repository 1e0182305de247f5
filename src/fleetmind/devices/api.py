"""REST routes for the device registry."""

from datetime import datetime

from fastapi import APIRouter, HTTPException, Request, Response, status
from pydantic import BaseModel, Field

from fleetmind.audit.api import record
from fleetmind.auth.api import Operator, Reader
from fleetmind.devices.errors import CertificateError, DeviceExists, DeviceNotFound, InvalidDevice
from fleetmind.devices.model import Device, DeviceState
from fleetmind.devices.service import DeviceService

router = APIRouter(prefix="/api/v1/devices", tags=["devices"])


class DeviceIn(BaseModel):
    name: str = Field(min_length=1, max_length=64, examples=["pump-7"])
    #: a PEM certificate signing request made on the device (its private key stays there)
    csr: str | None = Field(default=None, max_length=8192)


class DeviceOut(BaseModel):
    id: str
    name: str
    created_at: datetime
    online: bool
    last_seen: datetime | None
    state: DeviceState

    @classmethod
    def of(cls, device: Device) -> "DeviceOut":
        return cls(
            id=device.id,
            name=device.name,
            created_at=device.created_at,
            online=device.online,
            last_seen=device.last_seen,
            state=device.state,
        )


class MqttCredentials(BaseModel):
    host: str
    port: int
    username: str
    password: str


class MqttTlsIdentity(BaseModel):
    """The mutual-TLS endpoint and the device's certificate (PEM); ``private_key`` only when the
    hub made the key pair (never for a CSR), shown this once."""

    host: str
    port: int
    ca: str
    certificate: str
    private_key: str | None


class DeviceCreated(DeviceOut):
    mqtt: MqttCredentials
    mqtts: MqttTlsIdentity | None


class StateIn(BaseModel):
    state: DeviceState


class CertificateOut(BaseModel):
    serial: str
    fingerprint: str
    issued_at: datetime
    not_after: datetime
    revoked_at: datetime | None


def _service(request: Request) -> DeviceService:
    service: DeviceService = request.app.state.devices
    return service


@router.get("")
def list_devices(request: Request, _: Reader) -> list[DeviceOut]:
    return [DeviceOut.of(device) for device in _service(request).list()]


@router.post("", status_code=status.HTTP_201_CREATED)
def create_device(request: Request, principal: Operator, body: DeviceIn) -> DeviceCreated:
    """Register a device; the response holds its MQTT password and, when the hub made it, its
    private key: neither is ever shown again. With ``csr``, the certificate is issued over the
    CSR's key."""
    try:
        created = _service(request).add(body.name, csr=body.csr.encode() if body.csr else None)
    except DeviceExists as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from None
    except (InvalidDevice, CertificateError) as exc:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, str(exc)) from None
    endpoint = request.app.state.mqtt_endpoint
    tls = None
    if created.certificate and created.ca and endpoint.tls_port is not None:
        tls = MqttTlsIdentity(
            host=endpoint.host,
            port=endpoint.tls_port,
            ca=created.ca.decode(),
            certificate=created.certificate.decode(),
            private_key=created.private_key.decode() if created.private_key else None,
        )
    how = "certificate over its CSR" if body.csr else "secret and certificate"
    record(request, "device.add", principal.actor, detail=f"{created.device.id}: {how}")
    return DeviceCreated(
        **DeviceOut.of(created.device).model_dump(),
        mqtt=MqttCredentials(
            host=endpoint.host,
            port=endpoint.port,
            username=created.device.id,
            password=created.secret,
        ),
        mqtts=tls,
    )


@router.get("/{device_id}")
def get_device(request: Request, _: Reader, device_id: str) -> DeviceOut:
    try:
        return DeviceOut.of(_service(request).get(device_id))
    except DeviceNotFound as exc:
        raise HTTPException(status.HTTP_404_NOT_FOUND, str(exc)) from None


@router.put("/{device_id}/state")
def set_state(request: Request, principal: Operator, device_id: str, body: StateIn) -> DeviceOut:
    """Suspend (``suspended``), reactivate (``active``) or decommission (``decommissioned``,
    final: every certificate is revoked). A device that may no longer connect is refused at its
    next connection, and dropped by the embedded broker at once."""
    try:
        device = _service(request).set_state(device_id, body.state)
    except DeviceNotFound as exc:
        raise HTTPException(status.HTTP_404_NOT_FOUND, str(exc)) from None
    except InvalidDevice as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from None
    record(request, "device.state", principal.actor, detail=f"{device_id} is {body.state}")
    return DeviceOut.of(device)


@router.get("/{device_id}/certificates")
def list_certificates(request: Request, _: Reader, device_id: str) -> list[CertificateOut]:
    try:
        items = _service(request).certificates(device_id)
    except DeviceNotFound as exc:
        raise HTTPException(status.HTTP_404_NOT_FOUND, str(exc)) from None
    return [
        CertificateOut(
            serial=item.serial,
            fingerprint=item.fingerprint,
            issued_at=item.issued_at,
            not_after=item.not_after,
            revoked_at=item.revoked_at,
        )
        for item in items
    ]


@router.delete("/{device_id}/certificates/{serial}", status_code=status.HTTP_204_NO_CONTENT)
def revoke_certificate(
    request: Request, principal: Operator, device_id: str, serial: str
) -> Response:
    """Revoke one certificate (it goes into the CRL; the device stays registered)."""
    try:
        _service(request).revoke(device_id, serial)
    except DeviceNotFound as exc:
        raise HTTPException(status.HTTP_404_NOT_FOUND, str(exc)) from None
    except CertificateError as exc:
        raise HTTPException(status.HTTP_404_NOT_FOUND, str(exc)) from None
    record(request, "certificate.revoke", principal.actor, detail=f"{device_id} {serial}")
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.delete("/{device_id}", status_code=status.HTTP_204_NO_CONTENT)
def delete_device(request: Request, principal: Operator, device_id: str) -> Response:
    try:
        _service(request).delete(device_id)
    except DeviceNotFound as exc:
        raise HTTPException(status.HTTP_404_NOT_FOUND, str(exc)) from None
    record(request, "device.delete", principal.actor, detail=device_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
