"""Commands in the registry database, so any hub worker can take a device's answer."""

import json
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine, RowMapping

from fleetmind.commands.errors import CommandNotFound
from fleetmind.commands.model import CommandRecord, Status
from fleetmind.sqltime import UtcDateTime

metadata = sa.MetaData()

commands = sa.Table(
    "commands",
    metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("device_id", sa.String(64), nullable=False, index=True),
    sa.Column("name", sa.String(64), nullable=False),
    sa.Column("args", sa.Text, nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("created_at", UtcDateTime(), nullable=False),
    sa.Column("expires_at", UtcDateTime(), nullable=False),
    sa.Column("result", sa.Text),
    sa.Column("error", sa.Text),
    sa.Column("completed_at", UtcDateTime()),
)


def _record(row: RowMapping) -> CommandRecord:
    return CommandRecord(
        id=row["id"],
        device_id=row["device_id"],
        name=row["name"],
        args=json.loads(row["args"]),
        status=Status(row["status"]),
        created_at=row["created_at"],
        expires_at=row["expires_at"],
        result=None if row["result"] is None else json.loads(row["result"]),
        error=row["error"],
        completed_at=row["completed_at"],
    )


class CommandStore:
    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def add(self, record: CommandRecord) -> None:
        with self._engine.begin() as connection:
            connection.execute(
                commands.insert().values(
                    id=record.id,
                    device_id=record.device_id,
                    name=record.name,
                    args=json.dumps(record.args),
                    status=record.status.value,
                    created_at=record.created_at,
                    expires_at=record.expires_at,
                )
            )

    def get(self, device_id: str, command_id: str) -> CommandRecord:
        with self._engine.connect() as connection:
            row = (
                connection.execute(
                    commands.select().where(
                        commands.c.id == command_id, commands.c.device_id == device_id
                    )
                )
                .mappings()
                .first()
            )
        if row is None:
            raise CommandNotFound(f"no command {command_id!r} for device {device_id!r}")
        return _record(row)

    def queued(self, device_id: str) -> list[CommandRecord]:
        with self._engine.connect() as connection:
            rows = connection.execute(
                commands.select()
                .where(commands.c.device_id == device_id, commands.c.status == Status.QUEUED)
                .order_by(commands.c.created_at)
            ).mappings()
            return [_record(row) for row in rows]

    def set_status(self, command_id: str, status: Status, *, unless_done: bool = True) -> None:
        query = commands.update().where(commands.c.id == command_id)
        if unless_done:
            query = query.where(commands.c.status.in_([Status.QUEUED, Status.SENT]))
        with self._engine.begin() as connection:
            connection.execute(query.values(status=status.value))

    def complete(
        self,
        device_id: str,
        command_id: str,
        status: Status,
        result: dict[str, Any],
        error: str | None,
    ) -> bool:
        """Record the answer of a command still open; False if none such (late or unknown)."""
        with self._engine.begin() as connection:
            updated = connection.execute(
                commands.update()
                .where(
                    commands.c.id == command_id,
                    commands.c.device_id == device_id,
                    commands.c.status.in_([Status.QUEUED, Status.SENT]),
                )
                .values(
                    status=status.value,
                    result=json.dumps(result),
                    error=error,
                    completed_at=datetime.now(UTC),
                )
            )
        return updated.rowcount > 0

    def expire(self, now: datetime) -> int:
        with self._engine.begin() as connection:
            updated = connection.execute(
                commands.update()
                .where(
                    commands.c.status.in_([Status.QUEUED, Status.SENT]),
                    commands.c.expires_at < now,
                )
                .values(status=Status.EXPIRED.value, completed_at=now)
            )
        return updated.rowcount

    def delete_device(self, device_id: str) -> None:
        with self._engine.begin() as connection:
            connection.execute(commands.delete().where(commands.c.device_id == device_id))
