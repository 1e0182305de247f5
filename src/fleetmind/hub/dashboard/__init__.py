"""The dashboard: NiceGUI pages served by the hub's own FastAPI app and port, a module a page.

``login`` signs a browser in (its server-side session keeps the token's id, never the token:
``session``); ``fleet`` lists the devices; ``device`` shows one (charts, health, lifecycle,
certificates, refusals; its twin editor in ``twin``); ``audit`` is the audit log for admins.
``layout`` holds the header and how values read. Pages parse, call one service, and format:
the services check what a caller may do and record it (the same rules as the API's).
"""

from fastapi import FastAPI
from nicegui import storage, ui

from fleetmind.hub.dashboard import audit, device, fleet, login
from fleetmind.hub.runtime import Hub


def mount(app: FastAPI, hub: Hub) -> None:
    """Add the dashboard's pages to ``app`` (once per process: NiceGUI's pages are global)."""
    storage.Storage.path = (hub.settings.data_dir / "dashboard").resolve()
    for page in (login, fleet, device, audit):
        page.register(hub)
    ui.run_with(
        app,
        title="FleetMind",
        storage_secret=hub.session_secret,
        show_welcome_message=False,
        favicon="📡",
    )
