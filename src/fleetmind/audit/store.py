"""The audit log in the registry database (append-only from the hub's side)."""

import sqlalchemy as sa
from sqlalchemy.engine import Engine, RowMapping

from fleetmind.audit.model import AuditEvent, AuditQuery, Outcome
from fleetmind.sqltime import UtcDateTime

metadata = sa.MetaData()

audit = sa.Table(
    "audit",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("type", sa.String(64), nullable=False, index=True),
    sa.Column("at", UtcDateTime(), nullable=False, index=True),
    sa.Column("actor", sa.String(200), nullable=False),
    sa.Column("source", sa.String(100), nullable=False),
    sa.Column("outcome", sa.String(16), nullable=False),
    sa.Column("detail", sa.String(500), nullable=False),
)


def _event(row: RowMapping) -> AuditEvent:
    return AuditEvent(
        type=row["type"],
        at=row["at"],
        actor=row["actor"],
        source=row["source"],
        outcome=Outcome(row["outcome"]),
        detail=row["detail"],
        id=row["id"],
    )


class AuditStore:
    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def add(self, event: AuditEvent) -> None:
        with self._engine.begin() as connection:
            connection.execute(
                audit.insert().values(
                    type=event.type,
                    at=event.at,
                    actor=event.actor[:200],
                    source=event.source[:100],
                    outcome=event.outcome.value,
                    detail=event.detail[:500],
                )
            )

    def query(self, query: AuditQuery) -> list[AuditEvent]:
        """Newest first."""
        select = audit.select().order_by(audit.c.id.desc()).limit(query.limit)
        if query.type_prefix:
            select = select.where(audit.c.type.startswith(query.type_prefix, autoescape=True))
        if query.actor:
            select = select.where(audit.c.actor == query.actor)
        if query.since:
            select = select.where(audit.c.at >= query.since)
        if query.outcome:
            select = select.where(audit.c.outcome == query.outcome.value)
        with self._engine.connect() as connection:
            return [_event(row) for row in connection.execute(select).mappings()]
