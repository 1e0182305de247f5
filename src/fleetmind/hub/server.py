"""Serve the hub with Uvicorn on a port chosen by :func:`choose_port`."""

import logging
from collections.abc import Callable

import uvicorn

from fleetmind.devices.ca import CertificateAuthority
from fleetmind.hub.app import create_app
from fleetmind.hub.runtime import CA_DIR, Hub
from fleetmind.hub.settings import DEFAULT_HTTP_PORT, Settings, choose_port

#: the hub writes its URL here, so the CLI on the same machine finds it
URL_FILE = "hub.url"
#: the API's certificate from the hub's CA, in production without one of the operator's
HTTPS_DIR = "https"


def serve(settings: Settings, on_ready: Callable[[Hub, str], None]) -> None:
    """Run until SIGINT/SIGTERM; ``on_ready(hub, url)`` is called once the hub is up."""
    logging.basicConfig(
        level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    settings.check_production()
    port = choose_port(settings.http_host, settings.http_port, DEFAULT_HTTP_PORT, "HTTP")
    cert, key = settings.https_cert, settings.https_key
    if cert is None and settings.production:  # HTTPS with a certificate of the hub's CA
        ca = CertificateAuthority.open(
            settings.data_dir / CA_DIR, cert_file=settings.ca_cert, key_file=settings.ca_key
        )
        hosts = [settings.public_host or settings.http_host, "localhost", "127.0.0.1"]
        _, cert, key = ca.server_files(settings.data_dir / HTTPS_DIR, hosts)
    url = f"{'https' if cert else 'http'}://{settings.http_host}:{port}"
    app = create_app(settings, on_ready=lambda hub: on_ready(hub, url))
    (settings.data_dir / URL_FILE).write_text(url + "\n")
    uvicorn.run(
        app,
        host=settings.http_host,
        port=port,
        log_level="warning",
        access_log=False,
        ssl_certfile=cert,
        ssl_keyfile=key,
    )
