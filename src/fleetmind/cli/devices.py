"""``fleetmind device ...`` and ``fleetmind enrollment ...``: the registry and provisioning."""

from pathlib import Path
from typing import Annotated

import typer

from fleetmind.cli.shared import Token, Url, fail, hub_client, out, print_json, seconds

device_app = typer.Typer(help="Manage the device registry.", no_args_is_help=True)
enrollment_app = typer.Typer(help="Enrollment groups: provisioning by claim.", no_args_is_help=True)


@device_app.command("add")
def device_add(
    name: str,
    csr: Annotated[
        Path | None,
        typer.Option(help="A PEM CSR made on the device: its private key never leaves it."),
    ] = None,
    url: Url = None,
    token: Token = None,
) -> None:
    """Register a device; prints its id and credentials as JSON: its MQTT secret, and its
    certificate with the CA (and the private key, unless --csr), shown only now."""
    try:
        request = csr.read_text() if csr is not None else None
    except OSError as exc:
        fail(f"cannot read the CSR: {exc}")
    with hub_client(url, token) as client:
        print_json(client.add_device(name, csr=request))


def _set_state(device_id: str, state: str, url: str | None, token: str | None) -> None:
    with hub_client(url, token) as client:
        device = client.set_state(device_id, state)
    out.print(f"{device['id']}: {device['state']}")


@device_app.command("rotate-secret")
def device_rotate_secret(device_id: str, url: Url = None, token: Token = None) -> None:
    """Give a device a new MQTT secret (printed once); the old one stops working."""
    with hub_client(url, token) as client:
        print_json(client.rotate_secret(device_id))


@device_app.command("suspend")
def device_suspend(device_id: str, url: Url = None, token: Token = None) -> None:
    """Refuse the device's connections until it is reactivated."""
    _set_state(device_id, "suspended", url, token)


@device_app.command("reactivate")
def device_reactivate(device_id: str, url: Url = None, token: Token = None) -> None:
    """Let a suspended device connect again."""
    _set_state(device_id, "active", url, token)


@device_app.command("decommission")
def device_decommission(device_id: str, url: Url = None, token: Token = None) -> None:
    """Retire the device for good: its certificates are revoked and its secret destroyed."""
    _set_state(device_id, "decommissioned", url, token)


@device_app.command("list")
def device_list(
    url: Url = None,
    token: Token = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """List devices with their connectivity."""
    with hub_client(url, token) as client:
        devices = client.list_devices()
    if as_json:
        print_json(devices)
        return
    from rich.table import Table

    table = Table("id", "name", "status", "last seen")
    for device in devices:
        table.add_row(
            device["id"],
            device["name"],
            "[green]online[/green]" if device["online"] else "offline",
            device["last_seen"] or "never",
        )
    out.print(table)


@device_app.command("get")
def device_get(device_id: str, url: Url = None, token: Token = None) -> None:
    """Show one device as JSON."""
    with hub_client(url, token) as client:
        print_json(client.get_device(device_id))


@device_app.command("rejects")
def device_rejects(
    device_id: str,
    url: Url = None,
    token: Token = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """What the hub refused from a device lately, and why (newest first)."""
    with hub_client(url, token) as client:
        items = client.rejects(device_id)
    if as_json:
        print_json(items)
        return
    if not items:
        out.print(f"nothing refused from {device_id} since the hub started")
        return
    from rich.table import Table

    table = Table("at", "kind", "reason", "detail")
    for item in items:
        table.add_row(item["at"], item["kind"], item["reason"], item["detail"])
    out.print(table)


@device_app.command("delete")
def device_delete(device_id: str, url: Url = None, token: Token = None) -> None:
    """Delete a device; its credentials stop working at once."""
    with hub_client(url, token) as client:
        client.delete_device(device_id)
    out.print(f"deleted {device_id}")


@enrollment_app.command("create")
def enrollment_create(
    name: str,
    template: Annotated[str, typer.Option(help="Device names, with {n} or {name}.")],
    max_uses: Annotated[int, typer.Option(min=1, help="How many devices may claim.")],
    expires_in: Annotated[str, typer.Option(help="e.g. 7d.")] = "7d",
    tag: Annotated[list[str] | None, typer.Option(help="KEY=VALUE, repeat for more.")] = None,
    url: Url = None,
    token: Token = None,
) -> None:
    """Create an enrollment group; prints its claim token (only now) as JSON."""
    tags = dict(item.split("=", 1) for item in tag or [] if "=" in item)
    lifetime = seconds(expires_in)
    with hub_client(url, token) as client:
        group = client.create_enrollment(
            name, name_template=template, max_uses=max_uses, expires_in_s=lifetime, tags=tags
        )
    print_json(group)
