"""The fleet page: every device with its status, battery and last values.

A refresh reads the registry's device list and the telemetry store's latest values of every
metric of every device: one query each, however large the fleet.
"""

from typing import Any

from fastapi.responses import RedirectResponse
from nicegui import ui

from fleetmind.devices.model import Device
from fleetmind.hub.dashboard import session
from fleetmind.hub.dashboard.layout import (
    HEALTH,
    REFRESH_S,
    ago,
    battery,
    bytes_saved,
    format_value,
    header,
    status,
)
from fleetmind.hub.runtime import Hub
from fleetmind.telemetry.model import Latest

COLUMNS: list[dict[str, Any]] = [
    {"name": "id", "label": "Device", "field": "id", "align": "left", "sortable": True},
    {"name": "name", "label": "Name", "field": "name", "align": "left"},
    {"name": "status", "label": "Status", "field": "status", "align": "left"},
    {"name": "last_seen", "label": "Last seen", "field": "last_seen", "align": "left"},
    {"name": "battery", "label": "Battery", "field": "battery", "align": "left"},
    {"name": "saved", "label": "Bytes saved", "field": "saved", "align": "right"},
    {"name": "values", "label": "Last values", "field": "values", "align": "left"},
]


def rows(devices: list[Device], latest: dict[str, list[Latest]]) -> list[dict[str, Any]]:
    """The table's rows, from what one refresh read (no further query)."""
    return [
        {
            "id": device.id,
            "name": device.name,
            "status": status(device),
            "last_seen": ago(device.last_seen),
            "battery": battery(latest.get(device.id, [])),
            "saved": bytes_saved(latest.get(device.id, [])),
            "values": ", ".join(
                format_value(item)
                for item in latest.get(device.id, [])
                if not item.metric.startswith(HEALTH)
            ),
        }
        for device in devices
    ]


def register(hub: Hub) -> None:
    @ui.page("/", title="FleetMind - fleet")
    def fleet_page() -> RedirectResponse | None:
        if session.principal(hub) is None:
            return RedirectResponse("/login")
        header(hub)
        summary = ui.label().classes("text-subtitle1")
        table = ui.table(columns=COLUMNS, rows=[], row_key="id", pagination=50).classes("w-full")
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
            latest = hub.telemetry.latest()  # one store query for the whole fleet
            devices = hub.devices.list()
            table.rows = rows(devices, latest)
            table.update()
            online = sum(device.online for device in devices)
            summary.text = f"{len(devices)} devices, {online} online"

        refresh()
        ui.timer(REFRESH_S, refresh)
        return None
