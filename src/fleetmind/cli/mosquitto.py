"""``fleetmind mosquitto setup``: a Mosquitto ready for this hub, before the hub first runs."""

from pathlib import Path
from typing import Annotated

import typer

from fleetmind.cli.shared import DEFAULT_DATA_DIR, DataDir, fail, out

mosquitto_app = typer.Typer(help="Run the hub on a Mosquitto of your own.", no_args_is_help=True)


@mosquitto_app.command("setup")
def setup(
    directory: Annotated[Path, typer.Argument(help="Where Mosquitto's files go.")],
    data_dir: DataDir = DEFAULT_DATA_DIR,
    host: Annotated[str, typer.Option(help="The address the devices' listeners bind to.")] = (
        "0.0.0.0"  # noqa: S104 - devices connect from the network
    ),
    port: Annotated[int, typer.Option(help="The devices' password port (0: none).")] = 1883,
    tls_port: Annotated[int, typer.Option(help="The devices' mutual-TLS port (0: none).")] = 8883,
    hub_port: Annotated[int, typer.Option(help="The hub's own port, on 127.0.0.1.")] = 1884,
    public_host: Annotated[
        list[str] | None, typer.Option(help="A name devices use for the broker (repeatable).")
    ] = None,
) -> None:
    """Write mosquitto.conf and the files it names for the hub whose state is in --data-dir (its
    CA and its MQTT secret are made there if it has none yet), then say how to start both."""
    try:
        from fleetmind.devices import model, mosquitto
        from fleetmind.devices.ca import CertificateAuthority
        from fleetmind.hub.runtime import CA_DIR, HUB_SECRET_FILE, read_or_create_secret
    except ImportError as exc:
        fail(f"this needs the hub extra (pip install 'fleetmind[hub]'): {exc}")
    data_dir.mkdir(parents=True, exist_ok=True)
    secret = read_or_create_secret(data_dir / HUB_SECRET_FILE)
    ca = CertificateAuthority.open(data_dir / CA_DIR) if tls_port else None
    hosts = [*(public_host or []), "localhost", "127.0.0.1"]
    conf = mosquitto.setup(
        directory.resolve(), ca=ca, hub_secret_hash=model.hash_secret(secret), host=host,
        port=port or None, hub_port=hub_port, tls_port=tls_port or None, hosts=hosts,
    )  # fmt: skip
    devices = f" --mqtt-port {port}" if port else ""
    devices += f" --mqtt-tls-port {tls_port}" if tls_port else ""
    out.print(f"Mosquitto's configuration: {conf} (its files are 0640: give Mosquitto's user "
              "a group that reads them)", soft_wrap=True)  # fmt: skip
    out.print(f"1. mosquitto -c {conf}", soft_wrap=True)
    out.print(
        f"2. fleetmind hub --data-dir {data_dir} --broker-url mqtt://127.0.0.1:{hub_port}"
        f"{devices} --mosquitto-dir {directory.resolve()}",
        soft_wrap=True,
    )
