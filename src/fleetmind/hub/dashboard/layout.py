"""What every dashboard page shares: the header, the refresh period, and how values read."""

from datetime import UTC, datetime

from nicegui import ui

from fleetmind.auth.model import Scope
from fleetmind.devices.model import Device, DeviceState
from fleetmind.hub.dashboard import session
from fleetmind.hub.runtime import Hub
from fleetmind.telemetry.model import Latest

REFRESH_S = 2.0
#: the agent's own vital signs (shown apart from the sensors)
HEALTH = "health."


def header(hub: Hub) -> None:
    def sign_out() -> None:
        session.sign_out()
        ui.navigate.to("/login")

    who = session.principal(hub)
    with ui.header().classes("items-center justify-between"):
        ui.link("FleetMind", "/").classes("text-h6 text-white no-underline")
        with ui.row().classes("items-center"):
            if who is not None and who.allows(Scope.ADMIN):
                ui.link("Audit log", "/audit").classes("text-white")
            if who is not None:
                ui.label(f"{who.token.user} ({who.role})")
            ui.button("Sign out", on_click=sign_out).props("flat color=white")


def format_value(item: Latest) -> str:
    value = f"{item.value:.2f}" if isinstance(item.value, float) else str(item.value)
    return f"{item.metric} {value}{' ' + item.unit if item.unit else ''}"


def battery(latest: list[Latest]) -> str:
    level = next((x.value for x in latest if x.metric == f"{HEALTH}battery_pct"), None)
    return "mains" if not isinstance(level, float) else f"{level:.0f} %"


def status(device: Device) -> str:
    """Connectivity, or the lifecycle state when the device may not connect."""
    if device.state is not DeviceState.ACTIVE:
        return device.state.value
    return "online" if device.online else "offline"


def bytes_saved(latest: list[Latest]) -> str:
    saved = next((x.value for x in latest if x.metric == f"{HEALTH}bytes_saved"), None)
    if not isinstance(saved, float):
        return ""
    return f"{saved / 1024:.1f} KiB" if saved >= 1024 else f"{saved:.0f} B"


def ago(moment: datetime | None) -> str:
    if moment is None:
        return "never"
    seconds = int((datetime.now(UTC) - moment).total_seconds())
    if seconds < 60:
        return f"{max(seconds, 0)} s ago"
    if seconds < 3600:
        return f"{seconds // 60} min ago"
    return moment.strftime("%Y-%m-%d %H:%M UTC")
