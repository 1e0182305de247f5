"""The hub's settings: typed, bounded, read from options and ``FLEETMIND_*`` variables."""

import errno
import logging
import socket
from pathlib import Path

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from fleetmind.transport.address import BrokerAddress

log = logging.getLogger(__name__)

DEFAULT_HTTP_PORT = 8080
DEFAULT_MQTT_PORT = 1883
DEFAULT_MQTT_TLS_PORT = 8883


class SettingsError(ValueError):
    """A setting the hub refuses to start with."""


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="FLEETMIND_", extra="ignore")

    # Each field is also an option of `fleetmind hub` (--data-dir ...), its description the help.
    data_dir: Path = Field(default=Path(".fleetmind"), description="Where the hub keeps its state.")
    http_host: str = Field(
        default="127.0.0.1", description="The address the API and the dashboard listen on."
    )
    http_port: int | None = Field(
        default=None,
        ge=1,
        le=65535,
        description="The API's and the dashboard's port (default: 8080, or a free one).",
    )
    mqtt_host: str = Field(
        default="127.0.0.1",
        description="The address the embedded broker's device listeners bind to; devices are"
        " told it unless --public-host is given.",
    )
    mqtt_port: int | None = Field(
        default=None,
        ge=1,
        le=65535,
        description="The devices' password port (embedded broker: 1883 or a free one, where it"
        " listens; external broker: the port devices are told, default 1883).",
    )
    mqtt_tls_port: int | None = Field(
        default=None,
        ge=1,
        le=65535,
        description="The mutual-TLS port devices are told to use (embedded broker: 8883 or a free"
        " one, where it listens).",
    )
    ca_cert: Path | None = Field(
        default=None,
        description="Your root CA, with --ca-key (default: a CA the hub creates in DATA_DIR/ca).",
    )
    ca_key: Path | None = Field(default=None, description="The root CA's key, mode 0600.")
    production: bool = Field(
        default=False,
        description="Refuse plaintext: MQTT only over mutual TLS (external brokers: mqtts://),"
        " the API only over HTTPS (with --https-cert/--https-key, or a certificate from the"
        " hub's CA).",
    )
    https_cert: Path | None = Field(default=None, description="The API's certificate.")
    https_key: Path | None = Field(default=None, description="The API certificate's key.")
    public_host: str | None = Field(
        default=None,
        description="The host name devices are told to connect to (default: the broker's host).",
    )
    broker_url: str | None = Field(
        default=None,
        description="The hub's own listener on an external broker,"
        " mqtt://_hub:SECRET@127.0.0.1:PORT (default: run the embedded broker).",
    )
    mosquitto_dir: Path | None = Field(
        default=None,
        description="Where the hub keeps an external Mosquitto's passwd and acl files current.",
    )
    registry_url: str | None = Field(
        default=None,
        description="SQLAlchemy URL of the registry (default: SQLite in the data directory).",
    )
    ingest_max_batch: int = Field(
        default=5000, ge=1, le=100_000, description="At most this many messages per ingest batch."
    )
    ingest_max_wait_ms: int = Field(
        default=20,
        ge=1,
        le=5_000,
        description="A batch closes when its first message has waited this many milliseconds.",
    )
    ingest_group: str | None = Field(
        default=None,
        pattern=r"^[A-Za-z0-9_-]{1,32}$",
        description="Share the ingest load with other hubs through the shared subscription"
        " $share/GROUP/... (external broker; default: this hub takes every message itself).",
    )
    ingest_connections: int = Field(
        default=1,
        ge=1,
        le=64,
        description="This hub's connections in the shared subscription (needs --ingest-group).",
    )
    log_level: str = Field(default="INFO", description="DEBUG, INFO, WARNING or ERROR.")

    @field_validator("broker_url")
    @classmethod
    def _broker_url(cls, value: str | None) -> str | None:
        if value is not None:
            BrokerAddress.parse(value)
        return value

    @field_validator("log_level")
    @classmethod
    def _log_level(cls, value: str) -> str:
        if value.upper() not in logging.getLevelNamesMapping():
            raise ValueError(f"unknown log level {value!r}")
        return value.upper()

    def check_production(self) -> None:
        """Refuse settings that would leave something in plaintext or without a CA."""
        if (self.https_cert is None) != (self.https_key is None):
            raise SettingsError("give both --https-cert and --https-key, or neither")
        if (self.ca_cert is None) != (self.ca_key is None):
            raise SettingsError("give both --ca-cert and --ca-key, or neither")
        for path in (self.ca_cert, self.ca_key, self.https_cert, self.https_key):
            if path is not None and not path.is_file():
                raise SettingsError(f"{path} does not exist")
        if not self.production:
            return
        if self.broker_url is not None and not self.broker_url.startswith("mqtts://"):
            raise SettingsError("production refuses plaintext MQTT: use an mqtts:// broker URL")
        if self.broker_url is not None and self.mqtt_tls_port is None:
            raise SettingsError("production needs --mqtt-tls-port: the broker's mutual-TLS port")
        if self.mqtt_port is not None:
            raise SettingsError("production has no plaintext MQTT listener: drop --mqtt-port")
        conf = self.mosquitto_dir / "mosquitto.conf" if self.mosquitto_dir else None
        if conf is not None and conf.is_file() and _allows_anonymous(conf.read_text()):
            raise SettingsError(f"production refuses anonymous MQTT: {conf} allows it")

    @property
    def embedded_broker(self) -> bool:
        return self.broker_url is None

    @property
    def registry(self) -> str:
        return self.registry_url or f"sqlite:///{(self.data_dir / 'registry.db').resolve()}"

    @property
    def telemetry_path(self) -> Path:
        return self.data_dir / "telemetry.duckdb"


def _allows_anonymous(conf: str) -> bool:
    """True if a mosquitto.conf lets clients in without credentials."""
    for line in conf.splitlines():
        words = line.split("#", 1)[0].split()
        if words[:1] == ["allow_anonymous"] and words[1:2] == ["true"]:
            return True
    return False


def port_is_free(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            if exc.errno in (errno.EADDRINUSE, errno.EACCES):
                return False
            raise
    return True


def free_port(host: str) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        port: int = probe.getsockname()[1]
        return port


def choose_port(host: str, requested: int | None, default: int, what: str) -> int:
    """The port to listen on: the one asked for, or the default, or a free one.

    A port the user asked for must be free (a clear error otherwise); the default moves to a free
    port with a message, so a second hub or a system broker on 1883 does not stop the first start.
    """
    if requested is not None:
        if not port_is_free(host, requested):
            raise SettingsError(f"{what} port {requested} on {host} is already in use")
        return requested
    if port_is_free(host, default):
        return default
    port = free_port(host)
    log.warning("%s port %d on %s is taken; using free port %d instead", what, default, host, port)
    return port
