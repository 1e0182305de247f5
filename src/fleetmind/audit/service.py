"""Record and read audit events; each one is also logged (without secrets, by construction).

The domain services record what they were asked to do (auth, devices, twins, commands), so the
API, the dashboard, the broker and the uplink consumer get the same records by calling them; no
adapter records an event itself.
"""

import logging
from datetime import UTC, datetime

from fleetmind.audit.model import Actor, AuditEvent, AuditQuery, Outcome
from fleetmind.audit.store import AuditStore

log = logging.getLogger(__name__)


class AuditService:
    def __init__(self, store: AuditStore) -> None:
        self._store = store

    def record(
        self,
        kind: str,
        by: Actor,
        *,
        outcome: Outcome = Outcome.SUCCESS,
        detail: str = "",
    ) -> AuditEvent:
        """Record that ``by`` did ``kind`` (``detail`` names things, never a secret)."""
        actor, source = by.name or "-", by.source or "-"
        event = AuditEvent(kind, datetime.now(UTC), actor, source, outcome, detail)
        self._store.add(event)
        level = logging.INFO if outcome is Outcome.SUCCESS else logging.WARNING
        log.log(level, "audit %s %s by %s from %s %s", kind, outcome, actor, by.source, detail)
        return event

    def query(self, query: AuditQuery) -> list[AuditEvent]:
        return self._store.query(query)
