"""``fleetmind user ...``, ``fleetmind token ...`` and ``fleetmind audit``: people, their API
tokens, and the audit log."""

import sys
from typing import Annotated

import typer

from fleetmind.cli.shared import Token, Url, hub_client, out, print_json, seconds

user_app = typer.Typer(help="People: users and their roles.", no_args_is_help=True)
token_app = typer.Typer(help="API tokens: scoped, optionally expiring.", no_args_is_help=True)


@user_app.command("add")
def user_add(
    name: str,
    role: Annotated[str, typer.Option(help="viewer, operator or admin.")] = "viewer",
    url: Url = None,
    token: Token = None,
) -> None:
    """Add a user; the password is read from the terminal (or one line of stdin)."""
    password = (
        typer.prompt("Password (12 characters or more)", hide_input=True, confirmation_prompt=True)
        if sys.stdin.isatty()
        else sys.stdin.readline().rstrip("\n")
    )
    with hub_client(url, token) as client:
        user = client.add_user(name, role, password)
    out.print(f"{user['name']}: {user['role']}")


@user_app.command("list")
def user_list(url: Url = None, token: Token = None) -> None:
    """Users with their roles."""
    with hub_client(url, token) as client:
        print_json(client.list_users())


@user_app.command("role")
def user_role(name: str, role: str, url: Url = None, token: Token = None) -> None:
    """Change a user's role; their tokens narrow or widen at once."""
    with hub_client(url, token) as client:
        user = client.set_role(name, role)
    out.print(f"{user['name']}: {user['role']}")


@token_app.command("create")
def token_create(
    name: str,
    scope: Annotated[list[str], typer.Option(help="read, operate or admin; repeat for more.")],
    expires_in: Annotated[
        str | None, typer.Option(help="Lifetime, e.g. 12h or 30d (default: none).")
    ] = None,
    user: Annotated[str | None, typer.Option(help="Whose token (admins only).")] = None,
    url: Url = None,
    token: Token = None,
) -> None:
    """Create an API token; prints it (only now) as JSON."""
    lifetime = seconds(expires_in) if expires_in is not None else None
    with hub_client(url, token) as client:
        print_json(client.create_token(name, scope, user=user, expires_in_s=lifetime))


def audit(
    kind: Annotated[str | None, typer.Option("--type", help="A type or its prefix.")] = None,
    limit: Annotated[int, typer.Option(min=1, max=1000)] = 50,
    url: Url = None,
    token: Token = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """The audit log, newest first (admins)."""
    with hub_client(url, token) as client:
        events = client.audit(limit=limit, kind=kind)
    if as_json:
        print_json(events)
        return
    from rich.table import Table

    table = Table("time", "type", "outcome", "actor", "source", "detail")
    for event in events:
        table.add_row(event["at"], event["type"], event["outcome"], event["actor"],
                      event["source"], event["detail"])  # fmt: skip
    out.print(table)
