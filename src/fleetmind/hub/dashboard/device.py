"""The device page: state and lifecycle buttons, live charts of the last five minutes, health,
the twin (:mod:`.twin`), certificates, and what the hub refused from the device."""

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from fastapi.responses import RedirectResponse
from nicegui import ui

from fleetmind.auth.model import Scope
from fleetmind.devices.errors import DeviceError, DeviceNotFound
from fleetmind.devices.model import DeviceState
from fleetmind.hub.dashboard import session
from fleetmind.hub.dashboard.layout import HEALTH, REFRESH_S, ago, format_value, header, status
from fleetmind.hub.dashboard.twin import twin_editor
from fleetmind.hub.runtime import Hub
from fleetmind.telemetry.model import Aggregation, Query

CHART_WINDOW = timedelta(minutes=5)
CHART_BUCKET = timedelta(seconds=1)


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


def lifecycle(hub: Hub, device_id: str, *, enabled: bool) -> None:
    """Suspend, reactivate, decommission (operators; recorded by the device service)."""

    def to(label: str, state: DeviceState) -> None:
        who = session.authorize(
            hub, Scope.OPERATE, what=f"/devices/{device_id}", verb=label.lower()
        )
        if who is None:
            ui.notify("Your role may not change devices.", type="negative")
            return
        try:
            hub.devices.set_state(device_id, state, by=session.actor(who))
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
        button.props("flat dense").set_enabled(enabled)


def certificate_table(hub: Hub, device_id: str) -> None:
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


def rejects_table(hub: Hub, device_id: str) -> Callable[[], None]:
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


def register(hub: Hub) -> None:
    @ui.page("/devices/{device_id}", title="FleetMind - device")
    def device_page(device_id: str) -> RedirectResponse | None:
        who = session.principal(hub)
        if who is None:
            return RedirectResponse("/login")
        header(hub)
        try:
            device = hub.devices.get(device_id)
        except DeviceNotFound:
            ui.label(f"There is no device {device_id!r}.").classes("text-h6")
            ui.link("Back to the fleet", "/")
            return None
        title = device.id if device.name == device.id else f"{device.name} ({device.id})"
        ui.label(title).classes("text-h5")
        operator = who.allows(Scope.OPERATE)
        with ui.row().classes("items-center"):
            state = ui.label()
            lifecycle(hub, device_id, enabled=operator)
        empty = ui.label("No telemetry in the last hour yet.")
        grid = ui.grid(columns=2).classes("w-full")
        ui.label("Health").classes("text-h6")
        health_grid = ui.grid(columns=4).classes("w-full")
        charts: dict[str, ui.echart] = {}
        reported = twin_editor(hub, device_id, editable=operator)
        certificate_table(hub, device_id)
        refused = rejects_table(hub, device_id)

        def refresh() -> None:
            reported()
            refused()
            current = hub.devices.get(device_id)
            state.text = f"{status(current)}, last seen {ago(current.last_seen)}"
            end = datetime.now(UTC)
            latest = hub.telemetry.latest().get(device_id, [])
            health_grid.clear()
            with health_grid:
                for item in latest:
                    if item.metric.startswith(HEALTH):
                        ui.label(format_value(item).removeprefix(HEALTH))
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
