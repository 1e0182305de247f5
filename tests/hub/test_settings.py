"""Settings: bounded values and port choice."""

import logging
import socket

import pytest
from pydantic import ValidationError

from fleetmind.hub.settings import Settings, SettingsError, choose_port


def test_a_taken_default_port_moves_to_a_free_one(caplog: pytest.LogCaptureFixture) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with caplog.at_level(logging.WARNING):
            chosen = choose_port("127.0.0.1", None, port, "HTTP")
    assert chosen != port
    assert f"HTTP port {port} on 127.0.0.1 is taken; using free port {chosen}" in caplog.text


def test_a_taken_requested_port_is_a_clear_error() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(SettingsError, match=f"port {port} on 127.0.0.1 is already in use"):
            choose_port("127.0.0.1", port, 8080, "HTTP")


def test_settings_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLEETMIND_HTTP_PORT", "9999")
    monkeypatch.setenv("FLEETMIND_BROKER_URL", "mqtt://broker:1884")
    settings = Settings()
    assert settings.http_port == 9999
    assert not settings.embedded_broker


@pytest.mark.parametrize(
    "values",
    [{"http_port": 0}, {"mqtt_port": 70000}, {"broker_url": "http://x"}, {"log_level": "LOUD"}],
)
def test_bad_settings_are_refused(values: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        Settings(**values)  # type: ignore[arg-type]
