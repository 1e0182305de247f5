"""``fleetmind hub``: its options are the fields of the hub's ``Settings``, so a setting is
declared once, in ``fleetmind.hub.settings``.

Each field becomes an option (``data_dir``: ``--data-dir``; a boolean: ``--production`` and
``--no-production``) whose help is the field's description. An option not given stays out of
``Settings(...)``, which then takes the ``FLEETMIND_*`` variable, or the field's default.
``Settings`` needs the hub extra, so the options are made only when ``fleetmind hub`` runs: the
other commands, the agent above all, start without pydantic-settings or any hub library.
"""

import inspect
import types
import typing
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.markup import escape

from fleetmind.cli.shared import fail, out

if TYPE_CHECKING:
    from pydantic.fields import FieldInfo

#: what `fleetmind hub` hands on to the command made from the settings: every argument
PASS_ON: dict[str, Any] = {"allow_extra_args": True, "ignore_unknown_options": True}

#: the types the command line parses itself; any other setting arrives as text for Settings
PARSED = (bool, int, float, Path, str)


def hub(ctx: typer.Context) -> None:
    """Run the hub: API, dashboard, ingest, and the embedded broker unless one is given."""
    command().main(ctx.args, prog_name=ctx.command_path)


def command() -> Any:
    """The command whose options are the settings' fields (a Click command)."""
    try:
        from fleetmind.hub.settings import Settings
    except ImportError as exc:
        fail(f"the hub needs the hub extra (pip install 'fleetmind[hub]'): {exc}")

    def run_hub(**given: Any) -> None:
        _run({name: value for name, value in given.items() if value is not None})

    fields = Settings.model_fields
    options = [_option(name, field) for name, field in fields.items()]
    run_hub.__signature__ = inspect.Signature(options)  # type: ignore[attr-defined]
    first, prefix = next(iter(fields)), Settings.model_config.get("env_prefix", "")
    variables = (
        f"Every option may also be set by a variable: {_flag(first)} by"
        f" {prefix}{first.upper()}, and so on."
    )
    app = typer.Typer(add_completion=False, pretty_exceptions_enable=False)
    app.command("hub", help=f"{hub.__doc__}\n\n{escape(variables)}")(run_hub)
    return typer.main.get_command(app)


def _option(name: str, field: "FieldInfo") -> inspect.Parameter:
    """A keyword parameter Typer makes ``--name-like-this`` of, None when not given."""
    kinds = [kind for kind in typing.get_args(field.annotation) if kind is not types.NoneType]
    kind = field.annotation if not kinds else kinds[0] if len(kinds) == 1 else str
    kind = kind if kind in PARSED else str
    default = field.get_default(call_default_factory=True)
    if field.is_required() or default is None:
        shown: bool | str = False
    elif isinstance(default, bool):  # a flag: --production or --no-production
        shown = f"{'' if default else 'no-'}{_flag(name)[2:]}"
    else:
        shown = str(default)
    option = typer.Option(help=escape(field.description or ""), show_default=shown)
    return inspect.Parameter(
        name,
        inspect.Parameter.KEYWORD_ONLY,
        default=None,
        annotation=Annotated[kind | None, option],
    )


def _flag(name: str) -> str:
    return f"--{name.replace('_', '-')}"


def _run(given: dict[str, Any]) -> None:
    try:
        from pydantic import ValidationError

        from fleetmind.hub.runtime import Hub
        from fleetmind.hub.server import serve
        from fleetmind.hub.settings import Settings
    except ImportError as exc:
        fail(f"the hub needs the hub extra (pip install 'fleetmind[hub]'): {exc}")

    try:
        settings = Settings(**given)
    except ValidationError as exc:
        fail("; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors()))

    def ready(running: Hub, url: str) -> None:
        out.print(f"FleetMind hub: dashboard {url}/  API {url}/docs", soft_wrap=True)
        if running.mqtt.port is not None:
            out.print(f"MQTT broker: {running.mqtt.host}:{running.mqtt.port}")
        if running.mqtt.tls_port is not None:
            out.print(f"MQTT mutual TLS: {running.mqtt.host}:{running.mqtt.tls_port}")
        if running.admin_token is not None:  # the token itself never goes to a log or journal
            out.print(
                f"Admin token created: read it from {settings.data_dir / 'admin.token'}"
                " (mode 0600)",
                highlight=False,
                soft_wrap=True,
            )

    serve(settings, ready)
