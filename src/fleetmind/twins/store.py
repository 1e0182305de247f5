"""Twins in the registry database, with optimistic concurrency on the desired version."""

import json
from datetime import UTC, datetime

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from fleetmind.sqltime import UtcDateTime
from fleetmind.twins.errors import VersionConflict
from fleetmind.twins.model import Twin, encode

metadata = sa.MetaData()

twins = sa.Table(
    "twins",
    metadata,
    sa.Column("device_id", sa.String(64), primary_key=True),
    sa.Column("desired", sa.Text, nullable=False),
    sa.Column("desired_version", sa.Integer, nullable=False),
    sa.Column("reported", sa.Text, nullable=False),
    sa.Column("reported_version", sa.Integer, nullable=False),
    sa.Column("updated_at", UtcDateTime(), nullable=False),
)


class TwinStore:
    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def get(self, device_id: str) -> Twin:
        """The twin; a device that never had one has empty documents at version 0."""
        with self._engine.connect() as connection:
            row = connection.execute(twins.select().where(twins.c.device_id == device_id)).first()
        if row is None:
            return Twin(device_id, {}, 0, {}, 0)
        return Twin(
            device_id,
            json.loads(row.desired),
            row.desired_version,
            json.loads(row.reported),
            row.reported_version,
            row.updated_at,
        )

    def replace_desired(self, device_id: str, desired: dict[str, object], version: int) -> None:
        """Store ``desired`` as ``version``, if the stored one is still ``version - 1``."""
        now = datetime.now(UTC)
        with self._engine.begin() as connection:
            updated = connection.execute(
                twins.update()
                .where(twins.c.device_id == device_id, twins.c.desired_version == version - 1)
                .values(desired=encode(desired), desired_version=version, updated_at=now)
            )
            if updated.rowcount:
                return
            if version != 1:
                raise VersionConflict("the twin changed meanwhile")
            try:  # the device's first twin
                connection.execute(
                    twins.insert().values(
                        device_id=device_id,
                        desired=encode(desired),
                        desired_version=1,
                        reported="{}",
                        reported_version=0,
                        updated_at=now,
                    )
                )
            except sa.exc.IntegrityError:
                raise VersionConflict("the twin changed meanwhile") from None

    def replace_reported(self, device_id: str, reported: dict[str, object], version: int) -> bool:
        """Store a reported document unless a newer one is stored; False if it was stale."""
        now = datetime.now(UTC)
        with self._engine.begin() as connection:
            updated = connection.execute(
                twins.update()
                .where(twins.c.device_id == device_id, twins.c.reported_version < version)
                .values(reported=encode(reported), reported_version=version, updated_at=now)
            )
            if updated.rowcount:
                return True
            exists = connection.execute(
                sa.select(twins.c.device_id).where(twins.c.device_id == device_id)
            ).first()
            if exists is not None:
                return False
            connection.execute(
                twins.insert().values(
                    device_id=device_id,
                    desired="{}",
                    desired_version=0,
                    reported=encode(reported),
                    reported_version=version,
                    updated_at=now,
                )
            )
            return True

    def delete(self, device_id: str) -> None:
        with self._engine.begin() as connection:
            connection.execute(twins.delete().where(twins.c.device_id == device_id))
