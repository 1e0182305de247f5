"""The device registry in SQL (SQLite by default, PostgreSQL at scale) through SQLAlchemy 2.

The schema is created and evolved by the hub's Alembic migrations; :data:`metadata` describes it.
"""

import builtins
import json
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.engine import Engine, RowMapping

from fleetmind.devices.enrollment import EnrollmentGroup
from fleetmind.devices.errors import DeviceExists, DeviceNotFound, InvalidDevice
from fleetmind.devices.model import Device, DeviceCertificate, DeviceState
from fleetmind.sqltime import UtcDateTime

metadata = sa.MetaData()

devices = sa.Table(
    "devices",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    #: the record's own identity (model.new_uid), which certificates are bound to (migration 0006)
    sa.Column("uid", sa.String(32), nullable=False, unique=True, index=True),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("secret_hash", sa.String(200), nullable=False),
    sa.Column("created_at", UtcDateTime(), nullable=False),
    sa.Column("online", sa.Boolean, nullable=False, default=False),
    sa.Column("last_seen", UtcDateTime()),
    sa.Column("boot_id", sa.String(64)),
    sa.Column("state", sa.String(20), nullable=False, default=DeviceState.ACTIVE.value),
    sa.Column("tags", sa.Text, nullable=False, default="{}"),
)

certificates = sa.Table(
    "certificates",
    metadata,
    sa.Column("serial", sa.String(40), primary_key=True),
    sa.Column("device_id", sa.String(64), nullable=False, index=True),
    sa.Column("device_uid", sa.String(32), index=True),
    sa.Column("fingerprint", sa.String(64), nullable=False, unique=True),
    sa.Column("issued_at", UtcDateTime(), nullable=False),
    sa.Column("not_after", UtcDateTime(), nullable=False),
    sa.Column("revoked_at", UtcDateTime()),
)


enrollments = sa.Table(
    "enrollments",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("name", sa.String(100), nullable=False, unique=True),
    sa.Column("claim_hash", sa.String(64), nullable=False, unique=True),
    sa.Column("name_template", sa.String(100), nullable=False),
    sa.Column("max_uses", sa.Integer, nullable=False),
    sa.Column("uses", sa.Integer, nullable=False),
    sa.Column("expires_at", UtcDateTime(), nullable=False),
    sa.Column("tags", sa.Text, nullable=False),
    sa.Column("desired", sa.Text, nullable=False),
    sa.Column("created_at", UtcDateTime(), nullable=False),
)


def _enrollment(row: RowMapping) -> EnrollmentGroup:
    return EnrollmentGroup(
        name=row["name"],
        name_template=row["name_template"],
        max_uses=row["max_uses"],
        uses=row["uses"],
        expires_at=row["expires_at"],
        created_at=row["created_at"],
        tags=json.loads(row["tags"]),
        desired=json.loads(row["desired"]),
    )


def _device(row: RowMapping) -> Device:
    return Device(
        id=row["id"],
        name=row["name"],
        created_at=row["created_at"],
        uid=row["uid"],
        online=row["online"],
        last_seen=row["last_seen"],
        boot_id=row["boot_id"],
        state=DeviceState(row["state"]),
        tags=json.loads(row["tags"]),
    )


def _certificate(row: RowMapping) -> DeviceCertificate:
    return DeviceCertificate(
        serial=row["serial"],
        device_id=row["device_id"],
        device_uid=row["device_uid"],
        fingerprint=row["fingerprint"],
        issued_at=row["issued_at"],
        not_after=row["not_after"],
        revoked_at=row["revoked_at"],
    )


class DeviceStore:
    """Rows of the ``devices`` table; every method is one short transaction."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def add(self, device: Device, secret_hash: str) -> None:
        try:
            with self._engine.begin() as connection:
                connection.execute(
                    devices.insert().values(
                        id=device.id,
                        uid=device.uid,
                        name=device.name,
                        secret_hash=secret_hash,
                        created_at=device.created_at,
                        online=False,
                        state=device.state.value,
                        tags=json.dumps(device.tags),
                    )
                )
        except sa.exc.IntegrityError:
            raise DeviceExists(f"device {device.id!r} already exists") from None

    def get(self, device_id: str) -> Device:
        with self._engine.connect() as connection:
            row = (
                connection.execute(devices.select().where(devices.c.id == device_id))
                .mappings()
                .first()
            )
        if row is None:
            raise DeviceNotFound(f"no device {device_id!r}")
        return _device(row)

    def list(self) -> list[Device]:
        with self._engine.connect() as connection:
            rows = connection.execute(devices.select().order_by(devices.c.id)).mappings()
            return [_device(row) for row in rows]

    def delete(self, device_id: str, at: datetime) -> None:
        """Forget the device and revoke its certificates as of ``at``, in one transaction; the
        certificate rows stay, so the CRL keeps listing them."""
        with self._engine.begin() as connection:
            deleted = connection.execute(devices.delete().where(devices.c.id == device_id))
            if deleted.rowcount == 0:
                raise DeviceNotFound(f"no device {device_id!r}")
            connection.execute(
                certificates.update()
                .where(certificates.c.device_id == device_id, certificates.c.revoked_at.is_(None))
                .values(revoked_at=at)
            )

    def set_state(self, device_id: str, state: DeviceState) -> None:
        with self._engine.begin() as connection:
            updated = connection.execute(
                devices.update().where(devices.c.id == device_id).values(state=state.value)
            )
        if updated.rowcount == 0:
            raise DeviceNotFound(f"no device {device_id!r}")

    def add_certificate(self, certificate: DeviceCertificate) -> None:
        """Record a certificate of the device record ``certificate.device_uid``; DeviceNotFound
        when that record is gone (the device was deleted meanwhile)."""
        with self._engine.begin() as connection:
            found = connection.execute(
                sa.select(devices.c.id).where(
                    devices.c.id == certificate.device_id, devices.c.uid == certificate.device_uid
                )
            ).first()
            if found is None:
                raise DeviceNotFound(f"no device {certificate.device_id!r} to certify")
            connection.execute(
                certificates.insert().values(
                    serial=certificate.serial,
                    device_id=certificate.device_id,
                    device_uid=certificate.device_uid,
                    fingerprint=certificate.fingerprint,
                    issued_at=certificate.issued_at,
                    not_after=certificate.not_after,
                    revoked_at=certificate.revoked_at,
                )
            )

    def certificates(self, device_uid: str | None = None) -> "builtins.list[DeviceCertificate]":
        """The certificates of a device record (every one when ``device_uid`` is None), newest
        first."""
        query = certificates.select().order_by(certificates.c.issued_at.desc())
        if device_uid is not None:
            query = query.where(certificates.c.device_uid == device_uid)
        with self._engine.connect() as connection:
            return [_certificate(row) for row in connection.execute(query).mappings()]

    def certificate(self, serial: str) -> DeviceCertificate | None:
        with self._engine.connect() as connection:
            row = (
                connection.execute(certificates.select().where(certificates.c.serial == serial))
                .mappings()
                .first()
            )
        return None if row is None else _certificate(row)

    def revoke(self, at: datetime, *, device_uid: str, serial: str | None = None) -> int:
        """Revoke a certificate (``serial``) of a device record, or all of them; how many were
        revoked."""
        condition = sa.and_(
            certificates.c.device_uid == device_uid, certificates.c.revoked_at.is_(None)
        )
        if serial is not None:
            condition = sa.and_(condition, certificates.c.serial == serial)
        with self._engine.begin() as connection:
            updated = connection.execute(
                certificates.update().where(condition).values(revoked_at=at)
            )
        return int(updated.rowcount)

    def set_secret_hash(self, device_id: str, secret_hash: str) -> None:
        with self._engine.begin() as connection:
            updated = connection.execute(
                devices.update().where(devices.c.id == device_id).values(secret_hash=secret_hash)
            )
        if updated.rowcount == 0:
            raise DeviceNotFound(f"no device {device_id!r}")

    def secret_hash(self, device_id: str) -> str | None:
        with self._engine.connect() as connection:
            value: str | None = connection.execute(
                sa.select(devices.c.secret_hash).where(devices.c.id == device_id)
            ).scalar()
            return value

    def secret_hashes(self) -> dict[str, str]:
        """The secrets of the devices that may connect (active ones)."""
        with self._engine.connect() as connection:
            rows = connection.execute(
                sa.select(devices.c.id, devices.c.secret_hash).where(
                    devices.c.state == DeviceState.ACTIVE.value
                )
            )
            return {row.id: row.secret_hash for row in rows}

    def set_connectivity(
        self, device_id: str, *, online: bool, at: datetime, boot_id: str | None
    ) -> bool:
        """Record a status change; False if the device is unknown (deleted meanwhile)."""
        values: dict[str, object] = {"online": online, "last_seen": at}
        if boot_id is not None:
            values["boot_id"] = boot_id
        with self._engine.begin() as connection:
            updated = connection.execute(
                devices.update().where(devices.c.id == device_id).values(**values)
            )
        return updated.rowcount > 0

    def touch(self, seen: dict[str, datetime]) -> None:
        """Advance ``last_seen`` for devices that just sent data (one statement per batch)."""
        if not seen:
            return
        with self._engine.begin() as connection:
            connection.execute(
                devices.update()
                .where(devices.c.id == sa.bindparam("device_id"))
                .values(last_seen=sa.bindparam("seen")),
                [{"device_id": key, "seen": value} for key, value in seen.items()],
            )


class EnrollmentStore:
    """Enrollment groups; a claim is counted atomically, so ``max_uses`` holds under races."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def add(self, group: EnrollmentGroup, claim_hash: str) -> None:
        try:
            with self._engine.begin() as connection:
                connection.execute(
                    enrollments.insert().values(
                        name=group.name,
                        claim_hash=claim_hash,
                        name_template=group.name_template,
                        max_uses=group.max_uses,
                        uses=0,
                        expires_at=group.expires_at,
                        tags=json.dumps(group.tags),
                        desired=json.dumps(group.desired),
                        created_at=group.created_at,
                    )
                )
        except sa.exc.IntegrityError:
            raise InvalidDevice(f"enrollment group {group.name!r} exists") from None

    def list(self) -> builtins.list[EnrollmentGroup]:
        with self._engine.connect() as connection:
            rows = connection.execute(enrollments.select().order_by(enrollments.c.name))
            return [_enrollment(row) for row in rows.mappings()]

    def delete(self, name: str) -> bool:
        with self._engine.begin() as connection:
            deleted = connection.execute(enrollments.delete().where(enrollments.c.name == name))
            return deleted.rowcount > 0

    def claim(self, claim_hash: str, now: datetime) -> EnrollmentGroup | None:
        """Count one use of the group with this claim, if it is unexpired and has uses left;
        the group as of that use, or None."""
        valid = sa.and_(
            enrollments.c.claim_hash == claim_hash,
            enrollments.c.uses < enrollments.c.max_uses,
            enrollments.c.expires_at > now,
        )
        with self._engine.begin() as connection:
            updated = connection.execute(
                enrollments.update().where(valid).values(uses=enrollments.c.uses + 1)
            )
            if updated.rowcount != 1:
                return None
            row = (
                connection.execute(
                    enrollments.select().where(enrollments.c.claim_hash == claim_hash)
                )
                .mappings()
                .first()
            )
        return None if row is None else _enrollment(row)

    def give_back(self, name: str) -> None:
        """Undo a use whose device could not be created."""
        with self._engine.begin() as connection:
            connection.execute(
                enrollments.update()
                .where(enrollments.c.name == name)
                .values(uses=enrollments.c.uses - 1)
            )
