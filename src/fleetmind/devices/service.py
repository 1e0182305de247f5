"""Registry use cases on the hub: add, list, get, delete devices; connectivity; broker files."""

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from fleetmind.devices import certificates, enrollment, model
from fleetmind.devices.ca import CertificateAuthority
from fleetmind.devices.certificates import Issued
from fleetmind.devices.enrollment import EnrollmentGroup
from fleetmind.devices.errors import (
    CertificateError,
    ClaimRefused,
    DeviceError,
    DeviceNotFound,
    InvalidDevice,
)
from fleetmind.devices.model import Device, DeviceCertificate, DeviceState
from fleetmind.devices.rejects import Reject, RejectLog
from fleetmind.devices.store import DeviceStore, EnrollmentStore
from fleetmind.wire import topics
from fleetmind.wire.errors import TopicError

log = logging.getLogger(__name__)

#: the shortest time between two certificates of one device
RENEWAL_INTERVAL = timedelta(minutes=10)


@dataclass(frozen=True, slots=True)
class NewDevice:
    """A device just created with its credentials: the only moment the secret (and a private key
    the hub made) exist in clear."""

    device: Device
    secret: str
    #: the device's certificate, the CA that signed it, and the key when the hub made it (PEM)
    certificate: bytes | None = None
    private_key: bytes | None = None
    ca: bytes | None = None


class DeviceService:
    def __init__(
        self,
        store: DeviceStore,
        *,
        ca: CertificateAuthority | None = None,
        enrollments: EnrollmentStore | None = None,
        on_added: Callable[[str, dict[str, Any]], None] | None = None,
        on_credentials_changed: Callable[[], None] | None = None,
        on_deleted: Callable[[str], None] | None = None,
        on_online: Callable[[str], None] | None = None,
        rejects: RejectLog | None = None,
    ) -> None:
        self._store = store
        #: what the hub refused from each device (its uplink consumer records there)
        self.rejects = rejects or RejectLog()
        self.ca = ca
        self._enrollments = enrollments
        self._on_added = on_added
        self._on_credentials_changed = on_credentials_changed
        self._on_deleted = on_deleted
        self._on_online = on_online

    def add(
        self,
        name: str,
        *,
        csr: bytes | None = None,
        tags: dict[str, str] | None = None,
        desired: dict[str, Any] | None = None,
    ) -> NewDevice:
        """Register a device with a secret and, when the hub has a CA, a certificate (over the
        key of ``csr`` if given, so the private key never leaves the device)."""
        try:
            device_id = topics.check_device_id(name)
        except TopicError as exc:
            raise InvalidDevice(str(exc)) from None
        if csr is not None and self.ca is None:
            raise InvalidDevice("this hub has no certificate authority to sign a CSR")
        issued, key = self.ca.issue_device(device_id, csr) if self.ca else (None, None)
        secret = model.new_secret()
        device = Device(
            id=device_id, name=name, created_at=datetime.now(UTC), uid=model.new_uid(),
            tags=tags or {},
        )  # fmt: skip
        self._store.add(device, model.hash_secret(secret))
        if issued is not None:
            self._keep(device, issued)
        log.info("device %s added", device_id)
        self._credentials_changed()
        if desired and self._on_added is not None:
            self._on_added(device_id, desired)
        return NewDevice(
            device,
            secret,
            certificate=issued.pem if issued else None,
            private_key=key,
            ca=self.ca.pem if self.ca else None,
        )

    # -- enrollment groups (provisioning by claim) --------------------------------------------

    def create_enrollment(
        self,
        name: str,
        *,
        name_template: str,
        max_uses: int,
        expires_in: timedelta,
        tags: dict[str, str],
        desired: dict[str, Any],
    ) -> tuple[EnrollmentGroup, str]:
        """A group and its claim token (in clear, this once; stored hashed)."""
        if self._enrollments is None or self.ca is None:
            raise InvalidDevice("provisioning by claim needs the hub's certificate authority")
        now = datetime.now(UTC)
        group = EnrollmentGroup(
            name, enrollment.check_template(name_template), max_uses, 0, now + expires_in, now,
            tags, desired,
        )  # fmt: skip
        token = enrollment.new_claim_token()
        self._enrollments.add(group, enrollment.hash_claim(token))
        return group, token

    def enrollment_groups(self) -> list[EnrollmentGroup]:
        return self._enrollments.list() if self._enrollments is not None else []

    def delete_enrollment(self, name: str) -> None:
        if self._enrollments is None or not self._enrollments.delete(name):
            raise DeviceNotFound(f"no enrollment group {name!r}")

    def claim(self, token: str, csr: bytes, requested: str | None) -> tuple[NewDevice, str]:
        """A new device of the token's group, certified over ``csr``; and the group's name."""
        if self._enrollments is None:
            raise ClaimRefused("this hub has no enrollment groups")
        certificates.load_csr(csr)  # refuse a bad CSR before it uses up the claim
        group = self._enrollments.claim(enrollment.hash_claim(token), datetime.now(UTC))
        if group is None:
            raise ClaimRefused("the claim token is unknown, expired or used up")
        try:
            name = enrollment.device_name(group.name_template, use=group.uses, requested=requested)
            created = self.add(name, csr=csr, tags=group.tags, desired=group.desired)
        except DeviceError:
            self._enrollments.give_back(group.name)
            raise
        return created, group.name

    def _keep(self, device: Device, issued: Issued) -> None:
        """Record ``issued`` as a certificate of this device record (not only of its name)."""
        self._store.add_certificate(
            DeviceCertificate(
                serial=issued.serial,
                device_id=device.id,
                device_uid=device.uid,
                fingerprint=issued.fingerprint,
                issued_at=datetime.now(UTC),
                not_after=issued.not_after,
            )
        )

    def rotate_secret(self, device_id: str) -> str:
        """A new MQTT secret for the device (shown once); the old one stops working at once."""
        if not self.may_connect(device_id):
            raise InvalidDevice(f"device {device_id!r} may not connect")
        secret = model.new_secret()
        self._store.set_secret_hash(device_id, model.hash_secret(secret))
        log.info("device %s: secret rotated", device_id)
        self._credentials_changed()
        return secret

    def renew(self, device_id: str, csr: bytes) -> Issued:
        """A new certificate for an active device over the key of ``csr`` (the device asked over
        its own authenticated connection). One renewal per ``RENEWAL_INTERVAL``; the previous
        certificate stays valid until it expires, so the device can switch over."""
        if self.ca is None:
            raise CertificateError("this hub has no certificate authority")
        if not self.may_connect(device_id):
            raise CertificateError(f"device {device_id!r} may not connect")
        device = self._store.get(device_id)
        now = datetime.now(UTC)
        recent = [
            c for c in self._store.certificates(device.uid) if now - c.issued_at < RENEWAL_INTERVAL
        ]
        if len(recent) >= 2:  # the first certificate and one renewal at most
            raise CertificateError("a certificate was renewed moments ago; try again later")
        issued, _ = self.ca.issue_device(device_id, csr)
        self._keep(device, issued)  # DeviceNotFound if deleted meanwhile: never handed out
        log.info("device %s: certificate renewed (serial %s)", device_id, issued.serial)
        self._credentials_changed()
        return issued

    def set_state(self, device_id: str, state: DeviceState) -> Device:
        """Suspend, reactivate or decommission. Decommissioning revokes every certificate and is
        final; a suspended device's certificates are on hold (in the CRL) until reactivated."""
        device = self._store.get(device_id)
        if device.state is DeviceState.DECOMMISSIONED and state is not device.state:
            raise InvalidDevice(f"device {device_id!r} is decommissioned for good")
        self._store.set_state(device_id, state)
        if state is DeviceState.DECOMMISSIONED:
            self._store.revoke(datetime.now(UTC), device_uid=device.uid)
            self._store.set_secret_hash(device_id, model.hash_secret(model.new_secret()))
        log.info("device %s is %s", device_id, state)
        self._credentials_changed()
        return self._store.get(device_id)

    def revoke(self, device_id: str, serial: str) -> None:
        """Revoke one certificate of a device."""
        device = self._store.get(device_id)
        if not self._store.revoke(datetime.now(UTC), device_uid=device.uid, serial=serial):
            raise CertificateError(f"device {device_id!r} has no valid certificate {serial}")
        log.info("device %s: certificate %s revoked", device_id, serial)
        self._credentials_changed()

    def secret_hashes(self) -> dict[str, str]:
        """The hashed secrets of the devices that may connect now."""
        return self._store.secret_hashes()

    def certificates(self, device_id: str) -> list[DeviceCertificate]:
        """The certificates of the device's current record (not of earlier devices of its
        name)."""
        return self._store.certificates(self._store.get(device_id).uid)

    def revocations(self) -> list[tuple[str, datetime]]:
        """What the CRL lists: revoked certificates (those of deleted devices are revoked at the
        deletion), and those not of an active device record (suspended or decommissioned, or
        issued to a record that is gone), as of when."""
        active = {d.uid for d in self._store.list() if d.state is DeviceState.ACTIVE}
        now = datetime.now(UTC)
        return [
            (item.serial, item.revoked_at or now)
            for item in self._store.certificates()
            if item.revoked_at is not None or item.device_uid not in active
        ]

    def cut_off(self) -> set[str]:
        """Devices that may not connect now and that the hub knows of: registered but not
        active, or deleted but holding a certificate."""
        states = {device.id: device.state for device in self._store.list()}
        inactive = {name for name, state in states.items() if state is not DeviceState.ACTIVE}
        gone = {item.device_id for item in self._store.certificates()} - states.keys()
        return inactive | gone

    def may_connect(self, device_id: str, serial: str | None = None) -> bool:
        """True for an active device (and, with ``serial``, an unrevoked certificate issued to
        its current record); reads only that device and certificate."""
        try:
            device = self._store.get(device_id)
        except DeviceNotFound:
            return False
        item = self._store.certificate(serial) if serial is not None else None
        active = {device.id: device.uid} if device.state is DeviceState.ACTIVE else {}
        return model.Admission(active, _valid([item] if item else [])).allows(device_id, serial)

    def admission(self) -> model.Admission:
        """Who may be connected now, for checking many connections at once (two queries)."""
        active = {d.id: d.uid for d in self._store.list() if d.state is DeviceState.ACTIVE}
        return model.Admission(active, _valid(self._store.certificates()))

    def get(self, device_id: str) -> Device:
        return self._store.get(device_id)

    def rejected(self, device_id: str) -> list[Reject]:
        """What the hub refused from the device lately, newest first (since the hub started)."""
        self._store.get(device_id)
        return self.rejects.recent(device_id)

    def list(self) -> list[Device]:
        return self._store.list()

    def delete(self, device_id: str) -> None:
        """Forget the device and revoke every certificate of it."""
        self._store.delete(device_id, datetime.now(UTC))
        log.info("device %s deleted, its certificates revoked", device_id)
        self._credentials_changed()
        if self._on_deleted is not None:
            self._on_deleted(device_id)

    def authenticate(self, username: str, secret: str) -> bool:
        hashed = self._store.secret_hash(username)
        return (
            hashed is not None
            and model.verify_secret(secret, hashed)
            and self.may_connect(username)
        )

    def status_changed(self, device_id: str, *, online: bool, boot_id: str | None) -> None:
        if not self._store.set_connectivity(
            device_id, online=online, at=datetime.now(UTC), boot_id=boot_id
        ):
            return
        log.info("device %s is %s", device_id, "online" if online else "offline")
        if online and self._on_online is not None:
            self._on_online(device_id)

    def seen(self, seen: dict[str, datetime]) -> None:
        self._store.touch(seen)

    def _credentials_changed(self) -> None:
        if self._on_credentials_changed is not None:
            self._on_credentials_changed()


def _valid(items: list[DeviceCertificate]) -> dict[str, str]:
    """Unrevoked certificates by serial, with the uid of the device record each belongs to."""
    return {
        item.serial: item.device_uid
        for item in items
        if item.revoked_at is None and item.device_uid is not None
    }
