"""The ``fleetmind`` command: the hub, an agent, the simulator, the demo, and API clients."""

import asyncio
import contextlib
import json
import logging
import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn

import typer
from rich.console import Console
from rich.markup import escape

from fleetmind.agent.credentials import Credentials
from fleetmind.devices.errors import DeviceError
from fleetmind.files import write_file
from fleetmind.transport.errors import HubError

if TYPE_CHECKING:  # the agent command stays light: the HTTP client and tables load on demand
    from rich.progress import Progress

    from fleetmind.transport.http import HubClient

app = typer.Typer(
    help="FleetMind: a self-hosted AIoT platform (hub, agent, simulator).",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
device_app = typer.Typer(help="Manage the device registry.", no_args_is_help=True)
telemetry_app = typer.Typer(help="Read telemetry.", no_args_is_help=True)
people_app = typer.Typer(help="People: users and their roles.", no_args_is_help=True)
token_app = typer.Typer(help="API tokens: scoped, optionally expiring.", no_args_is_help=True)
enrollment_app = typer.Typer(help="Enrollment groups: provisioning by claim.", no_args_is_help=True)
app.add_typer(device_app, name="device")
app.add_typer(people_app, name="user")
app.add_typer(token_app, name="token")
app.add_typer(enrollment_app, name="enrollment")
app.add_typer(telemetry_app, name="telemetry")

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


def _fail(message: str) -> NoReturn:
    err.print(f"[red]error:[/red] {escape(message)}", highlight=False, soft_wrap=True)
    raise typer.Exit(1)


def _hub(url: str | None, token: str | None, data_dir: Path = DEFAULT_DATA_DIR) -> "HubClient":
    """A client for the hub; URL and token default to the local hub's files in ``data_dir``."""
    from fleetmind.transport.http import HubClient

    if url is None:
        url_file = data_dir / "hub.url"
        url = url_file.read_text().strip() if url_file.exists() else "http://127.0.0.1:8080"
    if token is None:
        token_file = data_dir / "admin.token"
        if not token_file.exists():
            _fail("no API token: pass --token or set FLEETMIND_TOKEN")
        token = token_file.read_text().strip()
    ca_file = Path(os.environ.get("FLEETMIND_CA_FILE", data_dir / "ca" / "ca.crt"))
    return HubClient(url, token, ca_file=ca_file if ca_file.is_file() else None)


def _print_json(document: Any) -> None:
    out.print_json(json.dumps(document, default=str))


# -- the hub --------------------------------------------------------------------------------


@app.command()
def hub(
    data_dir: DataDir = DEFAULT_DATA_DIR,
    http_host: Annotated[str, typer.Option(envvar="FLEETMIND_HTTP_HOST")] = "127.0.0.1",
    http_port: Annotated[
        int | None, typer.Option(envvar="FLEETMIND_HTTP_PORT", help="Default 8080 or a free one.")
    ] = None,
    mqtt_host: Annotated[str, typer.Option(envvar="FLEETMIND_MQTT_HOST")] = "127.0.0.1",
    mqtt_port: Annotated[
        int | None,
        typer.Option(
            envvar="FLEETMIND_MQTT_PORT",
            help="The devices' password port (embedded broker: 1883 or a free one; external:"
            " the port devices are told, default 1883).",
        ),
    ] = None,
    mqtt_tls_port: Annotated[
        int | None,
        typer.Option(
            envvar="FLEETMIND_MQTT_TLS_PORT",
            help="Mutual-TLS port devices use (embedded broker: 8883 or a free one).",
        ),
    ] = None,
    ca_cert: Annotated[
        Path | None,
        typer.Option(envvar="FLEETMIND_CA_CERT", help="Your root CA (default: the hub's own)."),
    ] = None,
    ca_key: Annotated[
        Path | None, typer.Option(envvar="FLEETMIND_CA_KEY", help="Its key, mode 0600.")
    ] = None,
    production: Annotated[
        bool,
        typer.Option(
            envvar="FLEETMIND_PRODUCTION",
            help="Refuse plaintext: MQTT over mutual TLS only, the API over HTTPS only.",
        ),
    ] = False,
    https_cert: Annotated[
        Path | None, typer.Option(envvar="FLEETMIND_HTTPS_CERT", help="The API's certificate.")
    ] = None,
    https_key: Annotated[
        Path | None, typer.Option(envvar="FLEETMIND_HTTPS_KEY", help="Its key.")
    ] = None,
    broker_url: Annotated[
        str | None,
        typer.Option(
            envvar="FLEETMIND_BROKER_URL",
            help="The hub's own listener on an external broker, mqtt://_hub:SECRET@127.0.0.1:PORT.",
        ),
    ] = None,
    mosquitto_dir: Annotated[
        Path | None,
        typer.Option(envvar="FLEETMIND_MOSQUITTO_DIR", help="Keep Mosquitto's passwd/acl here."),
    ] = None,
    registry_url: Annotated[
        str | None,
        typer.Option(envvar="FLEETMIND_REGISTRY_URL", help="SQLAlchemy URL (default: SQLite)."),
    ] = None,
    public_host: Annotated[
        str | None,
        typer.Option(envvar="FLEETMIND_PUBLIC_HOST", help="The host name devices connect to."),
    ] = None,
    ingest_group: Annotated[
        str | None,
        typer.Option(
            envvar="FLEETMIND_INGEST_GROUP",
            help="Share ingest with other hubs through $share/GROUP (external broker).",
        ),
    ] = None,
    log_level: Annotated[str, typer.Option(envvar="FLEETMIND_LOG_LEVEL")] = "INFO",
) -> None:
    """Run the hub: API, dashboard, ingest, and the embedded broker unless one is given."""
    try:
        from pydantic import ValidationError

        from fleetmind.hub.runtime import Hub
        from fleetmind.hub.server import serve
        from fleetmind.hub.settings import Settings
    except ImportError as exc:
        _fail(f"the hub needs the hub extra (pip install 'fleetmind[hub]'): {exc}")

    try:
        settings = Settings(
            data_dir=data_dir,
            http_host=http_host,
            http_port=http_port,
            mqtt_host=mqtt_host,
            mqtt_port=mqtt_port,
            mqtt_tls_port=mqtt_tls_port,
            ca_cert=ca_cert,
            ca_key=ca_key,
            production=production,
            https_cert=https_cert,
            https_key=https_key,
            broker_url=broker_url,
            mosquitto_dir=mosquitto_dir,
            registry_url=registry_url,
            public_host=public_host,
            ingest_group=ingest_group,
            log_level=log_level,
        )
    except ValidationError as exc:
        _fail("; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors()))

    def ready(running: Hub, url: str) -> None:
        out.print(f"FleetMind hub: dashboard {url}/  API {url}/docs", soft_wrap=True)
        if running.mqtt.port is not None:
            out.print(f"MQTT broker: {running.mqtt.host}:{running.mqtt.port}")
        if running.mqtt.tls_port is not None:
            out.print(f"MQTT mutual TLS: {running.mqtt.host}:{running.mqtt.tls_port}")
        if running.admin_token is not None:  # the token itself never goes to a log or journal
            out.print(
                f"Admin token created: read it from {data_dir / 'admin.token'} (mode 0600)",
                highlight=False,
                soft_wrap=True,
            )

    serve(settings, ready)


# -- an agent -------------------------------------------------------------------------------


@app.command()
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
            _fail("give --credentials, or --claim with --hub for a device's first start")
    except (ValueError, DeviceError) as exc:
        _fail(str(exc))
    running = Agent(
        AgentConfig(credentials=device, settings=AgentSettings(sample_hz=rate), state_dir=state_dir)
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


# -- the simulator ----------------------------------------------------------------------------


@app.command()
def sim(
    devices: Annotated[int, typer.Option(min=1, max=100_000)] = 10,
    rate: Annotated[float, typer.Option(min=0.01, max=1000, help="Samples per second.")] = 1.0,
    duration: Annotated[
        float | None, typer.Option(min=0.1, help="Seconds to run; default until Ctrl-C.")
    ] = None,
    prefix: Annotated[str, typer.Option(help="Simulated devices are PREFIX-0000...")] = "sim",
    url: Url = None,
    token: Token = None,
    data_dir: DataDir = DEFAULT_DATA_DIR,
    state_dir: Annotated[
        Path | None,
        typer.Option(help="Durable outboxes, one directory per device (default: in memory)."),
    ] = None,
    drain_timeout: Annotated[
        float,
        typer.Option(min=0, help="Seconds the agents may take to empty their outboxes at the end."),
    ] = 60.0,
    claim: Annotated[
        str | None,
        typer.Option(
            envvar="FLEETMIND_CLAIM",
            help="Provision new devices by claim (an enrollment group whose template uses {name}).",
            show_default=False,
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as JSON.")] = False,
) -> None:
    """Run N real agents with simulated sensors against a hub, then summarise."""
    from fleetmind.sim.fleet import Fleet, FleetConfig, device_names, provision

    config = FleetConfig(
        devices=devices,
        rate_hz=rate,
        duration_s=duration,
        prefix=prefix,
        state_dir=state_dir,
        drain_timeout_s=drain_timeout,
    )
    with _hub(url, token, data_dir) as client, _progress() as progress:
        task = progress.add_task("provisioning", total=devices)
        try:
            credentials = provision(
                client,
                device_names(config),
                data_dir / "sim-devices.json",
                lambda n: progress.advance(task, n),
                claim_token=claim,
            )
        except (HubError, DeviceError) as exc:
            _fail(str(exc))
        fleet = Fleet(config, credentials)
        expected = None if duration is None else int(devices * rate * duration * 4)
        running = progress.add_task("readings acked", total=expected)
        summary = asyncio.run(
            _run_fleet(
                fleet, lambda: progress.update(running, completed=fleet.summary().readings_acked)
            )
        )
    if as_json:
        _print_json(summary.as_dict())
        return
    from rich.table import Table

    table = Table(title="simulation")
    table.add_column("")
    table.add_column("", justify="right")
    for key, value in summary.as_dict().items():
        table.add_row(key.replace("_", " "), str(value))
    out.print(table)


def _progress() -> "Progress":
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
    )

    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err,
    )


async def _run_fleet(fleet: Any, tick: Any) -> Any:
    run = asyncio.create_task(fleet.run())
    try:
        while not run.done():
            tick()
            await asyncio.wait({run}, timeout=0.5)
        tick()
        return run.result()
    except asyncio.CancelledError:
        run.cancel()
        await asyncio.gather(run, return_exceptions=True)
        return fleet.summary()


# -- the demo ---------------------------------------------------------------------------------


@app.command()
def demo(
    devices: Annotated[int, typer.Option(min=1, max=10_000)] = 50,
    data_dir: DataDir = DEFAULT_DATA_DIR,
) -> None:
    """Start a hub with the embedded broker and a simulated fleet; run until Ctrl-C."""
    signal.signal(signal.SIGTERM, _interrupt)  # stop the hub on SIGTERM as on Ctrl-C
    data_dir.mkdir(parents=True, exist_ok=True)
    (data_dir / "hub.url").unlink(missing_ok=True)
    log = data_dir / "hub.log"
    with log.open("ab") as log_file:
        hub_process = subprocess.Popen(
            [sys.executable, "-m", "fleetmind", "hub", "--data-dir", str(data_dir)],
            stdout=subprocess.DEVNULL,
            stderr=log_file,
        )
    try:
        url = _wait_for_hub(data_dir, hub_process)
        token = (data_dir / "admin.token").read_text().strip()
        out.print(f"\n[bold]FleetMind demo[/bold] (hub log: {log})", soft_wrap=True)
        out.print(f"Dashboard: {url}/", soft_wrap=True)
        out.print(f"API:       {url}/docs", soft_wrap=True)
        out.print(f"Admin token: {token}\n", highlight=False, soft_wrap=True)
        out.print(f"Running {devices} simulated devices; Ctrl-C stops the demo.")
        sim(
            devices=devices,
            rate=1.0,
            duration=None,
            prefix="demo",
            url=url,
            token=token,
            data_dir=data_dir,
            as_json=False,
        )
    except KeyboardInterrupt:
        out.print("stopping")
    finally:
        hub_process.terminate()
        hub_process.wait(timeout=30)


def _interrupt(_signal: int, _frame: object) -> None:
    raise KeyboardInterrupt


def _wait_for_hub(data_dir: Path, process: "subprocess.Popen[bytes]", timeout: float = 60) -> str:
    import httpx

    deadline = time.monotonic() + timeout
    url_file = data_dir / "hub.url"
    while time.monotonic() < deadline:
        if process.poll() is not None:
            _fail("the hub did not start; run `fleetmind hub` to see why")
        if url_file.exists():
            url = url_file.read_text().strip()
            try:
                if httpx.get(f"{url}/healthz", timeout=2).status_code == 200:
                    return url
            except httpx.HTTPError:
                pass
        time.sleep(0.2)
    _fail(f"the hub did not answer within {timeout:.0f} s")


# -- API clients ------------------------------------------------------------------------------


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
        _fail(f"cannot read the CSR: {exc}")
    with _hub(url, token) as client:
        _print_json(client.add_device(name, csr=request))


def _set_state(device_id: str, state: str, url: str | None, token: str | None) -> None:
    with _hub(url, token) as client:
        device = client.set_state(device_id, state)
    out.print(f"{device['id']}: {device['state']}")


@device_app.command("rotate-secret")
def device_rotate_secret(device_id: str, url: Url = None, token: Token = None) -> None:
    """Give a device a new MQTT secret (printed once); the old one stops working."""
    with _hub(url, token) as client:
        _print_json(client.request("POST", f"/api/v1/devices/{device_id}/secret"))


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
    with _hub(url, token) as client:
        devices = client.list_devices()
    if as_json:
        _print_json(devices)
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
    with _hub(url, token) as client:
        _print_json(client.get_device(device_id))


@device_app.command("rejects")
def device_rejects(
    device_id: str,
    url: Url = None,
    token: Token = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """What the hub refused from a device lately, and why (newest first)."""
    with _hub(url, token) as client:
        items = client.rejects(device_id)
    if as_json:
        _print_json(items)
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
    with _hub(url, token) as client:
        client.delete_device(device_id)
    out.print(f"deleted {device_id}")


@telemetry_app.command("query")
def telemetry_query(
    device_id: str,
    metric: str,
    since: Annotated[str, typer.Option(help="How far back, e.g. 10m, 2h, 1d.")] = "10m",
    bucket: Annotated[str | None, typer.Option(help="Aggregate per bucket, e.g. 1m.")] = None,
    agg: Annotated[str, typer.Option(help="avg, min, max, count or last.")] = "avg",
    limit: Annotated[
        int | None,
        typer.Option(min=1, help="At most this many raw points (default: all, page by page)."),
    ] = None,
    url: Url = None,
    token: Token = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Points of one metric of one device over the last SINCE, oldest first."""
    from fleetmind.telemetry.errors import InvalidQuery
    from fleetmind.telemetry.model import parse_duration

    try:
        start = datetime.now(UTC) - parse_duration(since)
    except InvalidQuery as exc:
        _fail(str(exc))
    params = {"metric": metric, "start": start.isoformat()}
    if bucket is not None:
        params |= {"bucket": bucket, "agg": agg}
    with _hub(url, token) as client:
        series = client.telemetry(device_id, params, limit=limit)
    if as_json:
        _print_json(series)
        return
    from rich.table import Table

    table = Table("time", metric, title=f"{device_id} {metric}")
    for point in series["points"]:
        table.add_row(point["time"], str(point["value"]))
    out.print(table)


def _seconds(text: str) -> int:
    from fleetmind.telemetry.errors import InvalidQuery
    from fleetmind.telemetry.model import parse_duration

    try:
        return int(parse_duration(text).total_seconds())
    except InvalidQuery as exc:
        _fail(str(exc))


# -- people, tokens, enrollment groups, the audit log ----------------------------------------


@people_app.command("add")
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
    with _hub(url, token) as client:
        body = {"name": name, "role": role, "password": password}
        user = client.request("POST", "/api/v1/users", json=body)
    out.print(f"{user['name']}: {user['role']}")


@people_app.command("list")
def user_list(url: Url = None, token: Token = None) -> None:
    """Users with their roles."""
    with _hub(url, token) as client:
        _print_json(client.request("GET", "/api/v1/users"))


@people_app.command("role")
def user_role(name: str, role: str, url: Url = None, token: Token = None) -> None:
    """Change a user's role; their tokens narrow or widen at once."""
    with _hub(url, token) as client:
        user = client.request("PATCH", f"/api/v1/users/{name}", json={"role": role})
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
    body: dict[str, Any] = {"name": name, "scopes": scope, "user": user}
    if expires_in is not None:
        body["expires_in_s"] = _seconds(expires_in)
    with _hub(url, token) as client:
        _print_json(client.request("POST", "/api/v1/tokens", json=body))


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
    body = {"name": name, "name_template": template, "max_uses": max_uses,
            "expires_in_s": _seconds(expires_in), "tags": tags}  # fmt: skip
    with _hub(url, token) as client:
        _print_json(client.request("POST", "/api/v1/enrollments", json=body))


@app.command("audit")
def audit(
    kind: Annotated[str | None, typer.Option("--type", help="A type or its prefix.")] = None,
    limit: Annotated[int, typer.Option(min=1, max=1000)] = 50,
    url: Url = None,
    token: Token = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """The audit log, newest first (admins)."""
    params: dict[str, Any] = {"limit": limit} | ({"type": kind} if kind else {})
    with _hub(url, token) as client:
        events = client.request("GET", "/api/v1/audit", params=params)
    if as_json:
        _print_json(events)
        return
    from rich.table import Table

    table = Table("time", "type", "outcome", "actor", "source", "detail")
    for event in events:
        table.add_row(event["at"], event["type"], event["outcome"], event["actor"],
                      event["source"], event["detail"])  # fmt: skip
    out.print(table)


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
