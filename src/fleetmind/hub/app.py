"""The hub's FastAPI application: API routers, health, dashboard, and the runtime's lifespan."""

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

from fastapi import Depends, FastAPI, Request, Response, status

from fleetmind import __version__
from fleetmind.audit.api import router as audit_router
from fleetmind.auth.api import require
from fleetmind.auth.api import router as people_router
from fleetmind.auth.model import Scope
from fleetmind.commands.api import router as commands_router
from fleetmind.devices.api import enrollment_router
from fleetmind.devices.api import router as devices_router
from fleetmind.hub import dashboard
from fleetmind.hub.headers import SecurityHeaders
from fleetmind.hub.runtime import Hub
from fleetmind.hub.settings import Settings
from fleetmind.telemetry.api import router as telemetry_router
from fleetmind.twins.api import router as twins_router


def create_app(settings: Settings, on_ready: Callable[[Hub], None] | None = None) -> FastAPI:
    """One hub: the runtime starts with the app and stops with it."""
    hub = Hub(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        hub.start()
        app.state.devices = hub.devices
        app.state.enrollments = hub.enrollments
        app.state.auth = hub.auth
        app.state.audit = hub.audit
        app.state.telemetry = hub.telemetry
        app.state.twins = hub.twins
        app.state.commands = hub.commands
        app.state.mqtt_endpoint = hub.mqtt
        if on_ready is not None:
            on_ready(hub)
        try:
            yield
        finally:
            hub.stop()

    app = FastAPI(
        title="FleetMind",
        version=__version__,
        description=(
            "Devices, telemetry and fleet operations. Every route but the login needs a bearer"
            " token whose scopes (read, operate, admin) cover it."
        ),
        lifespan=lifespan,
    )
    app.state.hub = hub
    app.add_middleware(SecurityHeaders)
    app.include_router(devices_router)
    app.include_router(telemetry_router)
    app.include_router(twins_router)
    app.include_router(commands_router)
    app.include_router(enrollment_router)
    app.include_router(people_router)
    app.include_router(audit_router, dependencies=[Depends(require(Scope.ADMIN))])

    @app.get("/healthz", tags=["hub"])
    def health(request: Request, response: Response) -> dict[str, str]:
        """Liveness for load balancers (no token needed, nothing secret): 503 while the hub
        has no broker connection."""
        runtime: Hub = request.app.state.hub
        if not runtime.ingesting:
            response.status_code = status.HTTP_503_SERVICE_UNAVAILABLE
            return {"status": "no broker connection"}
        return {"status": "ok"}

    dashboard.mount(app, hub)
    return app
