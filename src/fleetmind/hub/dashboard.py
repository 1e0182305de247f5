"""The dashboard: NiceGUI pages served by the hub's own FastAPI app and port.

A browser signs in once, with a user name and password or with an API token; its server-side
session then remembers the token's id (never the token) and every page checks that the token is
still valid and that its role may see the page (the audit log is for admins; a viewer sees the
twin but cannot change it).
"""

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from fastapi import FastAPI
from fastapi.responses import RedirectResponse
from nicegui import app as gui
from nicegui import storage, ui

from fleetmind.audit.model import AuditQuery
from fleetmind.auth.errors import AuthError, InvalidCredentials, LockedOut
from fleetmind.auth.model import Principal, Scope
from fleetmind.devices.errors import DeviceError, DeviceNotFound
from fleetmind.devices.model import Device, DeviceState
from fleetmind.hub.runtime import Hub
from fleetmind.telemetry.model import Aggregation, Latest, Query
from fleetmind.twins.errors import TwinError
from fleetmind.twins.model import Twin, make_patch

REFRESH_S = 2.0
#: the source of what the dashboard asks for, in the audit log
SOURCE = "dashboard"
CHART_WINDOW = timedelta(minutes=5)
CHART_BUCKET = timedelta(seconds=1)
#: the agent's own vital signs (shown apart from the sensors)
HEALTH = "health."


def _format_value(item: Latest) -> str:
    value = f"{item.value:.2f}" if isinstance(item.value, float) else str(item.value)
    return f"{item.metric} {value}{' ' + item.unit if item.unit else ''}"


def _battery(latest: list[Latest]) -> str:
    level = next((x.value for x in latest if x.metric == f"{HEALTH}battery_pct"), None)
    return "mains" if not isinstance(level, float) else f"{level:.0f} %"


def _status(device: Device) -> str:
    """Connectivity, or the lifecycle state when the device may not connect."""
    if device.state is not DeviceState.ACTIVE:
        return device.state.value
    return "online" if device.online else "offline"


def _bytes_saved(latest: list[Latest]) -> str:
    saved = next((x.value for x in latest if x.metric == f"{HEALTH}bytes_saved"), None)
    if not isinstance(saved, float):
        return ""
    return f"{saved / 1024:.1f} KiB" if saved >= 1024 else f"{saved:.0f} B"


def _ago(moment: datetime | None) -> str:
    if moment is None:
        return "never"
    seconds = int((datetime.now(UTC) - moment).total_seconds())
    if seconds < 60:
        return f"{max(seconds, 0)} s ago"
    if seconds < 3600:
        return f"{seconds // 60} min ago"
    return moment.strftime("%Y-%m-%d %H:%M UTC")


def _chart_options(metric: str, unit: str | None) -> dict[str, Any]:
    return {
        "animation": False,
        "title": {"text": f"{metric}{f' ({unit})' if unit else ''}", "textStyle": {"fontSize": 14}},
        "tooltip": {"trigger": "axis"},
        "grid": {"left": 60, "right": 20, "top": 40, "bottom": 30},
        "xAxis": {"type": "time"},
        "yAxis": {"type": "value", "scale": True},
        "series": [{"type": "line", "name": metric, "showSymbol": False, "data": []}],
    }


def mount(app: FastAPI, hub: Hub) -> None:
    """Add the dashboard's pages to ``app`` (once per process: NiceGUI's pages are global)."""
    storage.Storage.path = (hub.settings.data_dir / "dashboard").resolve()

    def principal() -> Principal | None:
        token_id = gui.storage.user.get("token_id")
        return hub.auth.get(token_id) if isinstance(token_id, int) else None

    def signed_in() -> bool:
        return principal() is not None

    def authorize(scope: Scope, *, what: str, verb: str) -> Principal | None:
        """The signed-in caller if their token still allows ``scope`` (a refusal is recorded
        by the auth service)."""
        token_id = gui.storage.user.get("token_id")
        try:
            return hub.auth.authorize(
                token_id if isinstance(token_id, int) else None, scope,
                source=SOURCE, what=what, verb=verb,
            )  # fmt: skip
        except AuthError:
            return None

    def header() -> None:
        def sign_out() -> None:
            gui.storage.user.clear()
            ui.navigate.to("/login")

        who = principal()
        with ui.header().classes("items-center justify-between"):
            ui.link("FleetMind", "/").classes("text-h6 text-white no-underline")
            with ui.row().classes("items-center"):
                if who is not None and who.allows(Scope.ADMIN):
                    ui.link("Audit log", "/audit").classes("text-white")
                if who is not None:
                    ui.label(f"{who.token.user} ({who.role})")
                ui.button("Sign out", on_click=sign_out).props("flat color=white")

    @ui.page("/login", title="FleetMind - sign in")
    def login_page() -> None:
        def attempt() -> None:
            if user.value.strip():
                with_password()
                return
            try:
                found = hub.auth.authorize(field.value.strip(), None, source=SOURCE)
            except InvalidCredentials:
                ui.notify("That token is not valid.", type="negative")
                return
            gui.storage.user["token_id"] = found.token.id
            ui.navigate.to("/")

        def with_password() -> None:
            try:
                _, token = hub.auth.login(user.value.strip(), password.value, source=SOURCE)
            except LockedOut as exc:
                ui.notify(f"Signed out for now: {exc}.", type="negative")
                return
            except InvalidCredentials:
                ui.notify("Unknown user or wrong password.", type="negative")
                return
            gui.storage.user["token_id"] = token.id
            ui.navigate.to("/")

        with ui.card().classes("absolute-center w-96"):
            ui.label("FleetMind").classes("text-h5")
            user = ui.input("User name").classes("w-full")
            password = ui.input("Password", password=True).classes("w-full")
            password.on("keydown.enter", attempt)
            ui.label("or").classes("self-center")
            field = ui.input("API token", password=True).classes("w-full")
            field.on("keydown.enter", attempt)
            ui.button("Sign in", on_click=attempt)

    @ui.page("/", title="FleetMind - fleet")
    def fleet_page() -> RedirectResponse | None:
        if not signed_in():
            return RedirectResponse("/login")
        header()
        summary = ui.label().classes("text-subtitle1")
        columns: list[dict[str, Any]] = [
            {"name": "id", "label": "Device", "field": "id", "align": "left", "sortable": True},
            {"name": "name", "label": "Name", "field": "name", "align": "left"},
            {"name": "status", "label": "Status", "field": "status", "align": "left"},
            {"name": "last_seen", "label": "Last seen", "field": "last_seen", "align": "left"},
            {"name": "battery", "label": "Battery", "field": "battery", "align": "left"},
            {"name": "saved", "label": "Bytes saved", "field": "saved", "align": "right"},
            {"name": "values", "label": "Last values", "field": "values", "align": "left"},
        ]
        table = ui.table(columns=columns, rows=[], row_key="id", pagination=50).classes("w-full")
        table.add_slot(
            "body-cell-id",
            '<q-td :props="props"><a :href="\'/devices/\' + props.value"'
            ' class="text-primary">{{ props.value }}</a></q-td>',
        )
        table.add_slot(
            "body-cell-status",
            "<q-td :props=\"props\"><q-badge :color=\"props.value === 'online' ? 'positive'"
            " : 'grey'\">{{ props.value }}</q-badge></q-td>",
        )

        def refresh() -> None:
            latest = hub.telemetry.latest()
            devices = hub.devices.list()
            table.rows = [
                {
                    "id": device.id,
                    "name": device.name,
                    "status": _status(device),
                    "last_seen": _ago(device.last_seen),
                    "battery": _battery(latest.get(device.id, [])),
                    "saved": _bytes_saved(latest.get(device.id, [])),
                    "values": ", ".join(
                        _format_value(item)
                        for item in latest.get(device.id, [])
                        if not item.metric.startswith(HEALTH)
                    ),
                }
                for device in devices
            ]
            table.update()
            online = sum(device.online for device in devices)
            summary.text = f"{len(devices)} devices, {online} online"

        refresh()
        ui.timer(REFRESH_S, refresh)
        return None

    def lifecycle(device_id: str, *, enabled: bool) -> None:
        """Suspend, reactivate, decommission (operators; recorded by the device service)."""

        def to(label: str, state: DeviceState) -> None:
            who = authorize(Scope.OPERATE, what=f"/devices/{device_id}", verb=label.lower())
            if who is None:
                ui.notify("Your role may not change devices.", type="negative")
                return
            try:
                hub.devices.set_state(device_id, state, by=who.as_actor(SOURCE))
            except DeviceError as exc:
                ui.notify(str(exc), type="negative")
                return
            ui.notify(f"{device_id} is {state}.", type="positive")

        for label, state in (
            ("Suspend", DeviceState.SUSPENDED),
            ("Reactivate", DeviceState.ACTIVE),
            ("Decommission", DeviceState.DECOMMISSIONED),
        ):
            button = ui.button(label, on_click=lambda _, lb=label, s=state: to(lb, s))
            button.props("flat dense")
            button.set_enabled(enabled)

    def certificate_table(device_id: str) -> None:
        ui.label("Certificates").classes("text-h6")
        columns: list[dict[str, Any]] = [
            {"name": name, "label": label, "field": name, "align": "left"}
            for name, label in (
                ("serial", "Serial"), ("not_after", "Valid until"), ("revoked_at", "Revoked"),
            )
        ]  # fmt: skip
        rows = [
            {
                "serial": item.serial,
                "not_after": item.not_after.strftime("%Y-%m-%d"),
                "revoked_at": item.revoked_at.strftime("%Y-%m-%d %H:%M") if item.revoked_at else "",
            }
            for item in hub.devices.certificates(device_id)
        ]
        ui.table(columns=columns, rows=rows, row_key="serial").classes("w-full")

    def rejects_table(device_id: str) -> Callable[[], None]:
        """What the hub refused from the device lately; returns the function that refreshes it."""
        ui.label("Refused messages").classes("text-h6")
        none = ui.label("Nothing refused since the hub started.")
        columns: list[dict[str, Any]] = [
            {"name": name, "label": label, "field": name, "align": "left"}
            for name, label in (
                ("at", "When"), ("kind", "Kind"), ("reason", "Reason"), ("detail", "Why"),
            )
        ]  # fmt: skip
        table = ui.table(columns=columns, rows=[], row_key="key").classes("w-full")

        def refresh() -> None:
            items = hub.devices.rejected(device_id)
            table.rows = [
                {"key": index, "at": item.at.strftime("%Y-%m-%d %H:%M:%S"), "kind": item.kind,
                 "reason": item.reason, "detail": item.detail}
                for index, item in enumerate(items)
            ]  # fmt: skip
            table.visible, none.visible = bool(items), not items

        refresh()
        return refresh

    def twin_editor(device_id: str, *, editable: bool) -> Callable[[], None]:
        """The twin: desired editable (saved as a merge patch against the version it shows,
        so a concurrent change is refused, not overwritten), reported read-only. Returns the
        function that refreshes the reported side."""
        loaded: dict[str, Any] = {}

        def load() -> None:
            show(hub.twins.get(device_id))

        def show(twin: Twin) -> None:
            loaded.update(document=twin.desired, version=twin.desired_version)
            desired_title.text = f"Desired, version {twin.desired_version}"
            editor.value = json.dumps(twin.desired, indent=2, sort_keys=True)

        def save() -> None:
            try:
                document = json.loads(editor.value or "{}")
            except json.JSONDecodeError as exc:
                ui.notify(f"Not JSON: {exc}", type="negative")
                return
            if not isinstance(document, dict):
                ui.notify("The desired document is a JSON object.", type="negative")
                return
            who = authorize(Scope.OPERATE, what=f"/devices/{device_id}", verb="save desired")
            if who is None:
                ui.notify("Your role may not change twins.", type="negative")
                return
            try:
                twin = hub.twins.patch_desired(
                    device_id,
                    make_patch(loaded["document"], document),
                    if_version=loaded["version"],
                    by=who.as_actor(SOURCE),
                )
            except TwinError as exc:
                ui.notify(f"Not saved: {exc}. Reload to see the current version.", type="negative")
                return
            ui.notify(f"Saved as version {twin.desired_version}.", type="positive")
            show(twin)

        def refresh_reported() -> None:
            twin = hub.twins.get(device_id)
            reported_title.text = f"Reported, version {twin.reported_version}"
            text = json.dumps(twin.reported, indent=2, sort_keys=True)
            if reported_view.content != text:
                reported_view.content = text

        # built with its content (not set afterwards): an update queued while the page loads is
        # replayed when its websocket connects and would wipe what the user typed by then
        twin = hub.twins.get(device_id)
        loaded.update(document=twin.desired, version=twin.desired_version)
        ui.label("Twin").classes("text-h6")
        with ui.row().classes("w-full no-wrap items-start"):
            with ui.column().classes("w-1/2"):
                desired_title = ui.label(f"Desired, version {twin.desired_version}")
                editor = ui.textarea(
                    "desired", value=json.dumps(twin.desired, indent=2, sort_keys=True)
                ).props("outlined autogrow spellcheck=false")
                editor.classes("w-full font-mono")
                with ui.row():
                    ui.button("Save desired", on_click=save).set_enabled(editable)
                    ui.button("Reload", on_click=load).props("flat")
            with ui.column().classes("w-1/2"):
                reported_title = ui.label()
                reported_view = ui.code("", language="json").classes("w-full")
        return refresh_reported

    @ui.page("/devices/{device_id}", title="FleetMind - device")
    def device_page(device_id: str) -> RedirectResponse | None:
        if not signed_in():
            return RedirectResponse("/login")
        header()
        try:
            device = hub.devices.get(device_id)
        except DeviceNotFound:
            ui.label(f"There is no device {device_id!r}.").classes("text-h6")
            ui.link("Back to the fleet", "/")
            return None
        title = device.id if device.name == device.id else f"{device.name} ({device.id})"
        ui.label(title).classes("text-h5")
        who = principal()
        operator = who is not None and who.allows(Scope.OPERATE)
        with ui.row().classes("items-center"):
            state = ui.label()
            lifecycle(device_id, enabled=operator)
        empty = ui.label("No telemetry in the last hour yet.")
        grid = ui.grid(columns=2).classes("w-full")
        ui.label("Health").classes("text-h6")
        health_grid = ui.grid(columns=4).classes("w-full")
        charts: dict[str, ui.echart] = {}
        reported = twin_editor(device_id, editable=operator)
        certificate_table(device_id)
        refused = rejects_table(device_id)

        def refresh() -> None:
            reported()
            refused()
            current = hub.devices.get(device_id)
            state.text = f"{_status(current)}, last seen {_ago(current.last_seen)}"
            end = datetime.now(UTC)
            latest = hub.telemetry.latest().get(device_id, [])
            health_grid.clear()
            with health_grid:
                for item in latest:
                    if item.metric.startswith(HEALTH):
                        ui.label(_format_value(item).removeprefix(HEALTH))
            for item in latest:
                if not isinstance(item.value, float) or item.metric.startswith(HEALTH):
                    continue
                if item.metric not in charts:
                    with grid:
                        charts[item.metric] = ui.echart(_chart_options(item.metric, item.unit))
                chart = charts[item.metric]
                points = hub.telemetry.query(
                    Query(
                        device_id,
                        item.metric,
                        end - CHART_WINDOW,
                        end,
                        CHART_BUCKET,
                        Aggregation.AVG,
                    )
                ).points  # 300 buckets: one page holds them all
                chart.options["series"][0]["data"] = [
                    [int(point.time.timestamp() * 1000), point.value] for point in points
                ]
                chart.update()
            empty.visible = not charts

        refresh()
        ui.timer(REFRESH_S, refresh)
        return None

    @ui.page("/audit", title="FleetMind - audit log")
    def audit_page() -> RedirectResponse | None:
        who = principal()
        if who is None:
            return RedirectResponse("/login")
        header()
        if authorize(Scope.ADMIN, what="/audit", verb="GET") is None:
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

    ui.run_with(
        app,
        title="FleetMind",
        storage_secret=hub.session_secret,
        show_welcome_message=False,
        favicon="📡",
    )
