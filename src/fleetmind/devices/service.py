"""Registry use cases on the hub: add, list, get, delete devices; connectivity; broker files;
MQTT logins with their lockout.

What changes a device, its credentials or an enrollment group is recorded in the audit log
here, so the API, the dashboard, the broker and the uplink consumer record the same events by
calling the same methods. Those methods take ``by``, the
:class:`~fleetmind.audit.model.Actor` who asked (None: the hub itself, not recorded); those
that check a credential (a claim, an MQTT login) take the ``source`` it came from.
"""

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from fleetmind.audit.model import Actor, Outcome
from fleetmind.audit.service import AuditService
from fleetmind.certificates import Issued
from fleetmind.devices import model
from fleetmind.devices.ca import CertificateAuthority
from fleetmind.devices.errors import (
    CertificateError,
    DeviceError,
    DeviceNotFound,
    InvalidDevice,
)
from fleetmind.devices.model import Device, DeviceCertificate, DeviceState
from fleetmind.devices.rejects import Reject, RejectLog
from fleetmind.devices.store import DeviceStore
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
        on_added: Callable[[str, dict[str, Any]], None] | None = None,
        on_credentials_changed: Callable[[], None] | None = None,
        on_deleted: Callable[[str], None] | None = None,
        on_online: Callable[[str], None] | None = None,
        rejects: RejectLog | None = None,
        audit: AuditService | None = None,
        hub_secret_hash: str | None = None,
    ) -> None:
        """``audit``: where events are recorded (None: nowhere, for tests of other domains);
        ``hub_secret_hash``: the hub's own MQTT secret, for :meth:`authenticate` on the
        embedded broker (None: the hub's identity is refused)."""
        self._store = store
        #: what the hub refused from each device (its uplink consumer records there)
        self.rejects = rejects or RejectLog()
        self.ca = ca
        self._on_added = on_added
        self._on_credentials_changed = on_credentials_changed
        self._on_deleted = on_deleted
        self._on_online = on_online
        self._audit = audit
        self._hub_secret_hash = hub_secret_hash
        #: failed MQTT logins and the lockouts they caused (the broker's threads share them)
        self._logins = model.LoginGuard()
        self._audited_failures = model.FailureQuota()
        self._logins_lock = threading.Lock()

    def record(
        self, kind: str, by: Actor | None, *, outcome: Outcome = Outcome.SUCCESS, detail: str = ""
    ) -> None:
        """Record an event of the devices domain (nothing when ``by`` is None: the hub itself)."""
        if by is not None and self._audit is not None:
            self._audit.record(kind, by, outcome=outcome, detail=detail)

    def add(
        self,
        name: str,
        *,
        csr: bytes | None = None,
        tags: dict[str, str] | None = None,
        desired: dict[str, Any] | None = None,
        by: Actor | None = None,
    ) -> NewDevice:
        """Register a device with a secret and, when the hub has a CA, a certificate (over the
        key of ``csr`` if given, so the private key never leaves the device). Recorded as
        ``device.add``."""
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
        how = "certificate over its CSR" if csr is not None else "secret and certificate"
        self.record("device.add", by, detail=f"{device_id}: {how}")
        return NewDevice(
            device,
            secret,
            certificate=issued.pem if issued else None,
            private_key=key,
            ca=self.ca.pem if self.ca else None,
        )

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

    def rotate_secret(self, device_id: str, *, by: Actor | None = None) -> str:
        """A new MQTT secret for the device (shown once); the old one stops working at once.
        Recorded as ``device.secret``."""
        if not self.may_connect(device_id):
            raise InvalidDevice(f"device {device_id!r} may not connect")
        secret = model.new_secret()
        self._store.set_secret_hash(device_id, model.hash_secret(secret))
        log.info("device %s: secret rotated", device_id)
        self._credentials_changed()
        self.record("device.secret", by, detail=device_id)
        return secret

    def renew(self, device_id: str, csr: bytes, *, by: Actor | None = None) -> Issued:
        """A new certificate for an active device over the key of ``csr`` (the device asked over
        its own authenticated connection). One renewal per ``RENEWAL_INTERVAL``; the previous
        certificate stays valid until it expires, so the device can switch over. Recorded as
        ``certificate.renew``, a refusal (DeviceError) too."""
        try:
            issued = self._renew(device_id, csr)
        except DeviceError as exc:
            self.record("certificate.renew", by, outcome=Outcome.FAILURE, detail=str(exc))
            raise
        self.record("certificate.renew", by, detail=f"serial {issued.serial}")
        return issued

    def _renew(self, device_id: str, csr: bytes) -> Issued:
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

    def set_state(self, device_id: str, state: DeviceState, *, by: Actor | None = None) -> Device:
        """Suspend, reactivate or decommission. Decommissioning revokes every certificate and is
        final; a suspended device's certificates are on hold (in the CRL) until reactivated.
        Recorded as ``device.state``."""
        device = self._store.get(device_id)
        if device.state is DeviceState.DECOMMISSIONED and state is not device.state:
            raise InvalidDevice(f"device {device_id!r} is decommissioned for good")
        self._store.set_state(device_id, state)
        if state is DeviceState.DECOMMISSIONED:
            self._store.revoke(datetime.now(UTC), device_uid=device.uid)
            self._store.set_secret_hash(device_id, model.hash_secret(model.new_secret()))
        log.info("device %s is %s", device_id, state)
        self._credentials_changed()
        device = self._store.get(device_id)
        self.record("device.state", by, detail=f"{device_id} is {state}")
        return device

    def revoke(self, device_id: str, serial: str, *, by: Actor | None = None) -> None:
        """Revoke one certificate of a device. Recorded as ``certificate.revoke``."""
        device = self._store.get(device_id)
        if not self._store.revoke(datetime.now(UTC), device_uid=device.uid, serial=serial):
            raise CertificateError(f"device {device_id!r} has no valid certificate {serial}")
        log.info("device %s: certificate %s revoked", device_id, serial)
        self._credentials_changed()
        self.record("certificate.revoke", by, detail=f"{device_id} {serial}")

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

    def delete(self, device_id: str, *, by: Actor | None = None) -> None:
        """Forget the device and revoke every certificate of it. Recorded as
        ``device.delete``."""
        self._store.delete(device_id, datetime.now(UTC))
        log.info("device %s deleted, its certificates revoked", device_id)
        self._credentials_changed()
        if self._on_deleted is not None:
            self._on_deleted(device_id)
        self.record("device.delete", by, detail=device_id)

    def authenticate(
        self,
        username: str | None,
        secret: str | None,
        *,
        source: str = "-",
        on_hub_listener: bool = False,
    ) -> bool:
        """An MQTT login by password from ``source``: a device that may connect, on a device
        listener, or the hub's own identity with the hub's secret, on the hub's listener.

        Brute force is stopped per username and source (:class:`model.LoginGuard`): a locked
        pair is refused even with the right secret, and the hub's identity is never locked.
        Failures are recorded (``mqtt.auth``, by the username), and so is the failure that
        locks a pair (``mqtt.lockout``), up to a quota per source (:class:`model.FailureQuota`)
        whose overflow is counted in the source's next record."""
        if not username or secret is None:
            self._login_failed(username or "-", source, "no credentials")
            return False
        with self._logins_lock:
            if self._logins.locked(username, source, time.monotonic()):
                return False
        if not model.right_listener(username, on_hub_listener=on_hub_listener):
            ok = False
        elif username == model.HUB_USERNAME:
            hub = self._hub_secret_hash
            ok = hub is not None and model.verify_secret(secret, hub)
        else:
            hashed = self._store.secret_hash(username)
            ok = (
                hashed is not None
                and model.verify_secret(secret, hashed)
                and self.may_connect(username)
            )
        if not ok:
            self._login_failed(username, source, "wrong or unknown credentials")
        return ok

    def _login_failed(self, username: str, source: str, why: str) -> None:
        now = time.monotonic()
        with self._logins_lock:
            locked = self._logins.failed(username, source, now)
            left_out = self._audited_failures.admit(source, now)
        if left_out is None:
            return
        kind, detail = "mqtt.auth", why
        if locked:
            kind = "mqtt.lockout"
            detail = f"{model.MQTT_MAX_FAILURES} failures from {source}; locked"
        if left_out:
            detail += f"; {left_out} earlier failures from {source} not recorded"
        self.record(kind, Actor(username, source), outcome=Outcome.FAILURE, detail=detail)

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
