"""The audit log page (admins): the newest events, filtered by the start of their type."""

from typing import Any

from fastapi.responses import RedirectResponse
from nicegui import ui

from fleetmind.audit.model import AuditQuery
from fleetmind.auth.model import Scope
from fleetmind.hub.dashboard import session
from fleetmind.hub.dashboard.layout import REFRESH_S, header
from fleetmind.hub.runtime import Hub

PATH = "/audit"


def register(hub: Hub) -> None:
    @ui.page(PATH, title="FleetMind - audit log")
    def audit_page() -> RedirectResponse | None:
        if session.principal(hub) is None:
            return RedirectResponse("/login")
        header(hub)
        if session.authorize(hub, Scope.ADMIN, what=PATH, verb="GET") is None:
            ui.label("The audit log is for admins.").classes("text-h6")
            return None
        ui.label("Audit log").classes("text-h5")
        prefix = ui.input("Type starts with", placeholder="auth.").classes("w-64")
        columns: list[dict[str, Any]] = [
            {"name": name, "label": name.capitalize(), "field": name, "align": "left"}
            for name in ("at", "type", "outcome", "actor", "source", "detail")
        ]
        table = ui.table(columns=columns, rows=[], row_key="id", pagination=50).classes("w-full")

        def refresh() -> None:
            events = hub.audit.query(AuditQuery(type_prefix=prefix.value or None, limit=500))
            table.rows = [
                {
                    "id": event.id,
                    "at": event.at.strftime("%Y-%m-%d %H:%M:%S UTC"),
                    "type": event.type,
                    "outcome": event.outcome.value,
                    "actor": event.actor,
                    "source": event.source,
                    "detail": event.detail,
                }
                for event in events
            ]
            table.update()

        prefix.on("keydown.enter", refresh)
        refresh()
        ui.timer(REFRESH_S, refresh)
        return None
