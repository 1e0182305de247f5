"""``fleetmind agent``: one agent with simulated sensors. It runs on devices, so it imports no
HTTP client, no table or progress bar and no hub library."""

import asyncio
import contextlib
import json
import logging
from pathlib import Path
from typing import Annotated

import typer

from fleetmind.agent.credentials import Credentials
from fleetmind.cli.shared import fail, out
from fleetmind.devices.errors import DeviceError
from fleetmind.files import write_file


def agent(
    credentials: Annotated[
        Path | None,
        typer.Option(
            envvar="FLEETMIND_CREDENTIALS",
            help="The JSON that `fleetmind device add` printed, saved to a file.",
        ),
    ] = None,
    claim: Annotated[
        str | None,
        typer.Option(
            envvar="FLEETMIND_CLAIM",
            help="An enrollment group's claim token: get an identity from --hub at first start.",
            show_default=False,
        ),
    ] = None,
    hub: Annotated[
        str | None, typer.Option(envvar="FLEETMIND_HUB", help="The hub's URL, for --claim.")
    ] = None,
    name: Annotated[
        str | None,
        typer.Option(help="What this device calls itself when it claims (default: host name)."),
    ] = None,
    rate: Annotated[float, typer.Option(min=0.01, max=1000, help="Samples per second.")] = 1.0,
    state_dir: Annotated[
        Path,
        typer.Option(
            envvar="FLEETMIND_AGENT_STATE_DIR", help="The outbox and last known settings."
        ),
    ] = Path(".fleetmind-agent"),
    key: Annotated[
        Path | None,
        typer.Option(
            envvar="FLEETMIND_KEY",
            help="The private key (PEM) whose CSR the hub signed (`device add --csr`).",
        ),
    ] = None,
) -> None:
    """Run one agent with the simulated sensors until Ctrl-C."""
    from fleetmind.agent.agent import IDENTITY_FILE, Agent, AgentConfig
    from fleetmind.agent.settings import AgentSettings
    from fleetmind.sim.world import World

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    identity = state_dir / IDENTITY_FILE  # claimed, or renewed since: newer than --credentials
    try:
        kept = Credentials.load(identity) if identity.exists() else None
        if credentials is not None:
            device = Credentials.load(credentials, key_file=key)
            device = kept if kept is not None and kept.username == device.username else device
        elif kept is not None:
            device = kept
        elif claim is not None and hub is not None:
            device = _claim(hub, claim, name, identity)
        else:
            fail("give --credentials, or --claim with --hub for a device's first start")
    except (ValueError, DeviceError) as exc:
        fail(str(exc))
    world = World()  # the simulated sensors
    running = Agent(
        AgentConfig(
            credentials=device,
            settings=AgentSettings(sample_hz=rate),
            state_dir=state_dir,
            sensors=world.sensors,
            anomalies=world.inject,
        )
    )
    out.print(f"agent {device.username} -> {device.host}:{device.port} (Ctrl-C to stop)")
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(running.run())


def _claim(hub: str, token: str, name: str | None, identity: Path) -> Credentials:
    """Make a key, claim a certificate for it, and keep both (0600) for the next starts."""
    from fleetmind.agent.claim import claim, default_name

    document = claim(hub, token, name or default_name())
    write_file(identity, json.dumps(document))
    out.print(f"claimed the identity {document['id']} (kept in {identity})")
    return Credentials.from_device(document)
