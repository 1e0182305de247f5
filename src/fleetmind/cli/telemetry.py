"""``fleetmind telemetry ...``: read a device's telemetry."""

from datetime import UTC, datetime
from typing import Annotated

import typer

from fleetmind.cli.shared import Token, Url, fail, hub_client, out, print_json

telemetry_app = typer.Typer(help="Read telemetry.", no_args_is_help=True)


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
        fail(str(exc))
    params = {"metric": metric, "start": start.isoformat()}
    if bucket is not None:
        params |= {"bucket": bucket, "agg": agg}
    with hub_client(url, token) as client:
        series = client.telemetry(device_id, params, limit=limit)
    if as_json:
        print_json(series)
        return
    from rich.table import Table

    table = Table("time", metric, title=f"{device_id} {metric}")
    for point in series["points"]:
        table.add_row(point["time"], str(point["value"]))
    out.print(table)
