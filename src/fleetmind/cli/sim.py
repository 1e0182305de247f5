"""``fleetmind sim``: N real agents against a hub, with a progress bar and a summary."""

import asyncio
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from fleetmind.cli.shared import (
    DEFAULT_DATA_DIR,
    DataDir,
    Token,
    Url,
    err,
    fail,
    hub_client,
    out,
    print_json,
)
from fleetmind.devices.errors import DeviceError
from fleetmind.transport.errors import HubError

if TYPE_CHECKING:  # Rich's progress bar loads on demand
    from rich.progress import Progress


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
    with hub_client(url, token, data_dir) as client, _progress() as progress:
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
            fail(str(exc))
        fleet = Fleet(config, credentials)
        expected = None if duration is None else int(devices * rate * duration * 4)
        running = progress.add_task("readings acked", total=expected)
        summary = asyncio.run(
            _run_fleet(
                fleet, lambda: progress.update(running, completed=fleet.summary().readings_acked)
            )
        )
    if as_json:
        print_json(summary.as_dict())
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
