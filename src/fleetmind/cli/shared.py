"""What the commands share: the consoles, the options that reach a hub, one-line errors."""

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn

import typer
from rich.console import Console
from rich.markup import escape

if TYPE_CHECKING:  # the agent command stays light: the HTTP client loads on demand
    from fleetmind.transport.http import HubClient

out = Console()
err = Console(stderr=True)

DataDir = Annotated[
    Path, typer.Option(envvar="FLEETMIND_DATA_DIR", help="Where the hub keeps its state.")
]
Url = Annotated[
    str | None,
    typer.Option(envvar="FLEETMIND_URL", help="The hub's URL (default: the local hub's)."),
]
Token = Annotated[
    str | None,
    typer.Option(
        envvar="FLEETMIND_TOKEN",
        help="An API token (default: the local hub's admin token).",
        show_default=False,
    ),
]
DEFAULT_DATA_DIR = Path(".fleetmind")


def fail(message: str) -> NoReturn:
    """Say what went wrong in one line on stderr and end the command with status 1."""
    err.print(f"[red]error:[/red] {escape(message)}", highlight=False, soft_wrap=True)
    raise typer.Exit(1)


def hub_client(
    url: str | None, token: str | None, data_dir: Path = DEFAULT_DATA_DIR
) -> "HubClient":
    """A client for the hub; URL and token default to the local hub's files in ``data_dir``."""
    from fleetmind.transport.http import HubClient

    if url is None:
        url_file = data_dir / "hub.url"
        url = url_file.read_text().strip() if url_file.exists() else "http://127.0.0.1:8080"
    if token is None:
        token_file = data_dir / "admin.token"
        if not token_file.exists():
            fail("no API token: pass --token or set FLEETMIND_TOKEN")
        token = token_file.read_text().strip()
    ca_file = Path(os.environ.get("FLEETMIND_CA_FILE", data_dir / "ca" / "ca.crt"))
    return HubClient(url, token, ca_file=ca_file if ca_file.is_file() else None)


def print_json(document: Any) -> None:
    out.print_json(json.dumps(document, default=str))


def seconds(text: str) -> int:
    """A duration such as 30d in whole seconds; a bad one ends the command."""
    from fleetmind.telemetry.errors import InvalidQuery
    from fleetmind.telemetry.model import parse_duration

    try:
        return int(parse_duration(text).total_seconds())
    except InvalidQuery as exc:
        fail(str(exc))
