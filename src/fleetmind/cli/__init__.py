"""The ``fleetmind`` command: the hub, an agent, the simulator, the demo, and API clients.

A module per domain (``hub``, ``agent``, ``sim``, ``demo``, ``devices``, ``people``,
``telemetry``, ``mosquitto``) and what they share (``shared``). Client commands talk to the hub
only through ``HubClient``'s methods. Every module is imported at start, so each keeps its heavy
imports (the HTTP client, Rich's tables and progress bars, hub libraries) inside the commands
that need them.
"""

import os
import sys
from typing import NoReturn

import typer
from rich.markup import escape

from fleetmind.cli import agent, demo, devices, hub, mosquitto, people, sim, telemetry
from fleetmind.cli.shared import err
from fleetmind.transport.errors import HubError

app = typer.Typer(
    help="FleetMind: a self-hosted AIoT platform (hub, agent, simulator).",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
# the hub's options come from its settings, made when it runs: it takes every argument as is
app.command("hub", context_settings=hub.PASS_ON, add_help_option=False)(hub.hub)
app.command("agent")(agent.agent)
app.command("sim")(sim.sim)
app.command("demo")(demo.demo)
app.command("audit")(people.audit)
app.add_typer(devices.device_app, name="device")
app.add_typer(people.user_app, name="user")
app.add_typer(people.token_app, name="token")
app.add_typer(devices.enrollment_app, name="enrollment")
app.add_typer(telemetry.telemetry_app, name="telemetry")
app.add_typer(mosquitto.mosquitto_app, name="mosquitto")


def main() -> None:
    """Entry point: errors are one line on stderr (set FLEETMIND_DEBUG=1 for a traceback)."""
    try:
        app()
    except HubError as exc:
        _print_error(exc)
    except Exception as exc:
        if os.environ.get("FLEETMIND_DEBUG"):
            raise
        _print_error(exc)


def _print_error(exc: Exception) -> NoReturn:
    err.print(f"[red]error:[/red] {escape(str(exc))}", highlight=False, soft_wrap=True)
    sys.exit(1)
