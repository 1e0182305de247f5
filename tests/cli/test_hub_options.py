"""``fleetmind hub`` takes its options from the hub's ``Settings``: one declaration per setting."""

from pathlib import Path

import pytest
from pydantic import Field
from typer.testing import CliRunner

from fleetmind import cli
from fleetmind.cli import hub as hub_command
from fleetmind.hub import server, settings
from fleetmind.hub.settings import Settings


@pytest.fixture
def served(monkeypatch: pytest.MonkeyPatch) -> list[Settings]:
    """The settings `fleetmind hub` would serve with; it serves nothing."""
    seen: list[Settings] = []
    monkeypatch.setattr(server, "serve", lambda given, _ready: seen.append(given))
    for name in Settings.model_fields:
        monkeypatch.delenv(f"FLEETMIND_{name.upper()}", raising=False)
    return seen


def fleetmind(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli.app, list(args), env={"COLUMNS": "200"})
    return result.exit_code, result.output


def test_every_setting_is_an_option_of_fleetmind_hub() -> None:
    options = {param.name: param.opts for param in hub_command.command().params}
    assert set(options) == set(Settings.model_fields)
    code, help_text = fleetmind("hub", "--help")
    assert code == 0
    for name, field in Settings.model_fields.items():
        assert options[name] == [f"--{name.replace('_', '-')}"]
        assert f"--{name.replace('_', '-')}" in help_text
        assert field.description, f"{name} needs a description: it is the option's help"
    assert "--no-production" in help_text


def test_options_given_reach_the_settings_and_variables_the_rest(
    served: list[Settings], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("FLEETMIND_MQTT_HOST", "10.0.0.7")
    monkeypatch.setenv("FLEETMIND_HTTP_PORT", "1")  # the option wins
    code, output = fleetmind(
        "hub", "--data-dir", str(tmp_path), "--http-port", "9999", "--production",
        "--ingest-max-batch", "7",
    )  # fmt: skip
    assert code == 0, output
    [given] = served
    assert (given.data_dir, given.http_port, given.production) == (tmp_path, 9999, True)
    assert given.ingest_max_batch == 7
    assert given.mqtt_host == "10.0.0.7"  # not given: the variable
    assert given.log_level == "INFO"  # neither: the default


def test_a_new_setting_is_a_new_option(
    served: list[Settings], monkeypatch: pytest.MonkeyPatch
) -> None:
    class Wider(Settings):
        new_knob: int = Field(default=3, description="A setting added later.")

    monkeypatch.setattr(settings, "Settings", Wider)
    code, output = fleetmind("hub", "--new-knob", "4")
    assert code == 0, output
    assert served[0].new_knob == 4  # type: ignore[attr-defined]
    assert "A setting added later." in fleetmind("hub", "--help")[1]


def test_a_refused_setting_is_one_line(served: list[Settings]) -> None:
    code, output = fleetmind("hub", "--http-port", "0", "--log-level", "LOUD")
    assert code == 1
    assert output.strip() == (
        "error: http_port: Input should be greater than or equal to 1;"
        " log_level: Value error, unknown log level 'LOUD'"
    )
    assert not served
