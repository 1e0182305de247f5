"""Record and read audit events; each one is also logged (without secrets, by construction)."""

import logging
from datetime import UTC, datetime

from fleetmind.audit.model import AuditEvent, AuditQuery, Outcome
from fleetmind.audit.store import AuditStore

log = logging.getLogger(__name__)


class AuditService:
    def __init__(self, store: AuditStore) -> None:
        self._store = store

    def record(
        self,
        kind: str,
        *,
        actor: str,
        source: str = "-",
        outcome: Outcome = Outcome.SUCCESS,
        detail: str = "",
    ) -> AuditEvent:
        event = AuditEvent(kind, datetime.now(UTC), actor or "-", source or "-", outcome, detail)
        self._store.add(event)
        level = logging.INFO if outcome is Outcome.SUCCESS else logging.WARNING
        log.log(level, "audit %s %s by %s from %s %s", kind, outcome, event.actor, source, detail)
        return event

    def query(self, query: AuditQuery) -> list[AuditEvent]:
        return self._store.query(query)
