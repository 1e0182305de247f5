"""The device page's twin: desired editable by operators, reported read-only.

Desired is saved as a merge patch against the version the page shows, so a concurrent change is
refused, not overwritten.
"""

import json
from collections.abc import Callable
from typing import Any

from nicegui import ui

from fleetmind.auth.model import Scope
from fleetmind.hub.dashboard import session
from fleetmind.hub.runtime import Hub
from fleetmind.twins.errors import TwinError
from fleetmind.twins.model import Twin, make_patch


def twin_editor(hub: Hub, device_id: str, *, editable: bool) -> Callable[[], None]:
    """Build the twin's section; returns the function that refreshes the reported side."""
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
        who = session.authorize(
            hub, Scope.OPERATE, what=f"/devices/{device_id}", verb="save desired"
        )
        if who is None:
            ui.notify("Your role may not change twins.", type="negative")
            return
        try:
            twin = hub.twins.patch_desired(
                device_id,
                make_patch(loaded["document"], document),
                if_version=loaded["version"],
                by=session.actor(who),
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
