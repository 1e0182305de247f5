"""REST routes for the device registry."""

from dataclasses import asdict
from datetime import datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Request, Response, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, Field

from fleetmind.auth.api import Operator, Reader, actor, source
from fleetmind.devices.enrollment import EnrollmentGroup
from fleetmind.devices.enrollments import EnrollmentService
from fleetmind.devices.errors import (
    CertificateError,
    ClaimRefused,
    DeviceExists,
    DeviceNotFound,
    InvalidDevice,
)
from fleetmind.devices.model import Device, DeviceState
from fleetmind.devices.service import DeviceService, NewDevice

router = APIRouter(prefix="/api/v1/devices", tags=["devices"])
enrollment_router = APIRouter(prefix="/api/v1", tags=["provisioning"])
_claim_bearer = HTTPBearer(auto_error=False, description="A claim token of an enrollment group.")


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
    tags: dict[str, str]

    @classmethod
    def of(cls, device: Device) -> "DeviceOut":
        return cls(
            id=device.id,
            name=device.name,
            created_at=device.created_at,
            online=device.online,
            last_seen=device.last_seen,
            state=device.state,
            tags=device.tags,
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
    #: the password endpoint (none in production: certificates only)
    mqtt: MqttCredentials | None
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


def _enrollments(request: Request) -> EnrollmentService:
    service: EnrollmentService = request.app.state.enrollments
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
        created = _service(request).add(
            body.name, csr=body.csr.encode() if body.csr else None, by=actor(request, principal)
        )
    except DeviceExists as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from None
    except (InvalidDevice, CertificateError) as exc:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, str(exc)) from None
    return _created(request, created)


def _created(request: Request, created: NewDevice) -> DeviceCreated:
    """The new device with its credentials, and where it connects."""
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
    return DeviceCreated(
        **DeviceOut.of(created.device).model_dump(),
        mqtt=None
        if endpoint.port is None
        else MqttCredentials(
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
        device = _service(request).set_state(device_id, body.state, by=actor(request, principal))
    except DeviceNotFound as exc:
        raise HTTPException(status.HTTP_404_NOT_FOUND, str(exc)) from None
    except InvalidDevice as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from None
    return DeviceOut.of(device)


class SecretOut(BaseModel):
    #: the device's new MQTT password, shown this once
    password: str


@router.post("/{device_id}/secret")
def rotate_secret(request: Request, principal: Operator, device_id: str) -> SecretOut:
    """Give the device a new MQTT secret; the old one is refused from now on."""
    try:
        secret = _service(request).rotate_secret(device_id, by=actor(request, principal))
    except InvalidDevice as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from None
    return SecretOut(password=secret)


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


class RejectOut(BaseModel):
    at: datetime
    #: the uplink kind: telemetry, state, status, event/command, csr...
    kind: str
    #: the short reason counted in /api/v1/stats/ingest (time, decode, text, retained...)
    reason: str
    detail: str
    size: int


@router.get("/{device_id}/rejects")
def list_rejects(request: Request, _: Reader, device_id: str) -> list[RejectOut]:
    """The messages the hub refused from this device lately (at most 20, newest first, since
    the hub started), with the reason: a clock outside the accepted window, a malformed pack,
    a value no store can keep..."""
    try:
        items = _service(request).rejected(device_id)
    except DeviceNotFound as exc:
        raise HTTPException(status.HTTP_404_NOT_FOUND, str(exc)) from None
    return [RejectOut(**asdict(item)) for item in items]


@router.delete("/{device_id}/certificates/{serial}", status_code=status.HTTP_204_NO_CONTENT)
def revoke_certificate(
    request: Request, principal: Operator, device_id: str, serial: str
) -> Response:
    """Revoke one certificate (it goes into the CRL; the device stays registered)."""
    try:
        _service(request).revoke(device_id, serial, by=actor(request, principal))
    except DeviceNotFound as exc:
        raise HTTPException(status.HTTP_404_NOT_FOUND, str(exc)) from None
    except CertificateError as exc:
        raise HTTPException(status.HTTP_404_NOT_FOUND, str(exc)) from None
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.delete("/{device_id}", status_code=status.HTTP_204_NO_CONTENT)
def delete_device(request: Request, principal: Operator, device_id: str) -> Response:
    try:
        _service(request).delete(device_id, by=actor(request, principal))
    except DeviceNotFound as exc:
        raise HTTPException(status.HTTP_404_NOT_FOUND, str(exc)) from None
    return Response(status_code=status.HTTP_204_NO_CONTENT)


# -- provisioning by claim ----------------------------------------------------------------------


class EnrollmentIn(BaseModel):
    name: str = Field(min_length=1, max_length=100)
    name_template: str = Field(min_length=1, max_length=60, examples=["plant-a-{n}"])
    max_uses: int = Field(ge=1, le=1_000_000)
    expires_in_s: int = Field(ge=60, le=366 * 86400)
    tags: dict[str, str] = Field(default_factory=dict, max_length=50)
    desired: dict[str, Any] = Field(default_factory=dict)


class EnrollmentOut(BaseModel):
    name: str
    name_template: str
    max_uses: int
    uses: int
    expires_at: datetime
    created_at: datetime
    tags: dict[str, str]
    desired: dict[str, Any]

    @classmethod
    def of(cls, group: EnrollmentGroup) -> "EnrollmentOut":
        return cls(**asdict(group))


class EnrollmentCreated(EnrollmentOut):
    #: the claim token, shown this once; devices present it to ``POST /api/v1/claim``
    claim_token: str


class ClaimIn(BaseModel):
    #: a PEM CSR made on the device
    csr: str = Field(max_length=8192)
    #: what the device calls itself (``{name}`` in the group's template)
    name: str | None = Field(default=None, max_length=40)


@enrollment_router.post("/enrollments", status_code=status.HTTP_201_CREATED)
def create_enrollment(
    request: Request, principal: Operator, body: EnrollmentIn
) -> EnrollmentCreated:
    """An enrollment group and its claim token (shown only now)."""
    try:
        group, token = _enrollments(request).create(
            body.name, name_template=body.name_template, max_uses=body.max_uses,
            expires_in=timedelta(seconds=body.expires_in_s), tags=body.tags, desired=body.desired,
            by=actor(request, principal),
        )  # fmt: skip
    except InvalidDevice as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from None
    return EnrollmentCreated(claim_token=token, **EnrollmentOut.of(group).model_dump())


@enrollment_router.get("/enrollments")
def list_enrollments(request: Request, _: Reader) -> list[EnrollmentOut]:
    return [EnrollmentOut.of(group) for group in _enrollments(request).groups()]


@enrollment_router.delete("/enrollments/{name}", status_code=status.HTTP_204_NO_CONTENT)
def delete_enrollment(request: Request, principal: Operator, name: str) -> Response:
    try:
        _enrollments(request).delete(name, by=actor(request, principal))
    except DeviceNotFound as exc:
        raise HTTPException(status.HTTP_404_NOT_FOUND, str(exc)) from None
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@enrollment_router.post("/claim", status_code=status.HTTP_201_CREATED)
def claim(
    request: Request,
    body: ClaimIn,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_claim_bearer)],
) -> DeviceCreated:
    """A new device claims its identity: the bearer is an enrollment group's claim token, the
    body its CSR. The answer is its certificate (and MQTT secret); the claim token itself opens
    nothing else."""
    token = credentials.credentials if credentials else ""
    try:
        created, _ = _enrollments(request).claim(
            token, body.csr.encode(), body.name, source=source(request)
        )
    except ClaimRefused as exc:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED, str(exc), headers={"WWW-Authenticate": "Bearer"}
        ) from None
    except DeviceExists as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from None
    except (InvalidDevice, CertificateError) as exc:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, str(exc)) from None
    return _created(request, created)
