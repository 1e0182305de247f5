"""Serve the hub with Uvicorn on a port chosen by :func:`choose_port`."""

import logging
from collections.abc import Callable

import uvicorn

from fleetmind.hub.app import create_app
from fleetmind.hub.runtime import Hub
from fleetmind.hub.settings import DEFAULT_HTTP_PORT, Settings, choose_port

#: the hub writes its URL here, so the CLI on the same machine finds it
URL_FILE = "hub.url"


def serve(settings: Settings, on_ready: Callable[[Hub, str], None]) -> None:
    """Run until SIGINT/SIGTERM; ``on_ready(hub, url)`` is called once the hub is up."""
    logging.basicConfig(
        level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    port = choose_port(settings.http_host, settings.http_port, DEFAULT_HTTP_PORT, "HTTP")
    url = f"http://{settings.http_host}:{port}"
    app = create_app(settings, on_ready=lambda hub: on_ready(hub, url))
    (settings.data_dir / URL_FILE).write_text(url + "\n")
    uvicorn.run(app, host=settings.http_host, port=port, log_level="warning", access_log=False)
