"""The running hub: registry, stores, services, broker and ingest, started and stopped together."""

import contextlib
import dataclasses
import functools
import hashlib
import hmac
import logging
import ssl
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fleetmind.audit.service import AuditService
from fleetmind.audit.store import AuditStore
from fleetmind.auth.service import AuthService
from fleetmind.auth.store import TokenStore
from fleetmind.commands.service import CommandService
from fleetmind.commands.store import CommandStore
from fleetmind.devices import model, mosquitto
from fleetmind.devices.ca import CertificateAuthority
from fleetmind.devices.enrollments import EnrollmentService
from fleetmind.devices.rejects import RejectLog
from fleetmind.devices.renewal import RenewalQueue
from fleetmind.devices.service import DeviceService
from fleetmind.devices.store import DeviceStore, EnrollmentStore
from fleetmind.files import write_file
from fleetmind.hub.broker import EmbeddedBroker, TlsListener
from fleetmind.hub.consumer import UplinkConsumer
from fleetmind.hub.registry import create_engine, migrate
from fleetmind.hub.settings import (
    DEFAULT_MQTT_PORT,
    DEFAULT_MQTT_TLS_PORT,
    Settings,
    choose_port,
)
from fleetmind.telemetry.duckdb_store import DuckDBTelemetryStore
from fleetmind.telemetry.ingest import Ingestor
from fleetmind.telemetry.service import TelemetryService
from fleetmind.transport.address import BrokerAddress
from fleetmind.transport.errors import TransportError
from fleetmind.transport.subscriber import BatchSubscriber
from fleetmind.twins.service import TwinService
from fleetmind.twins.store import TwinStore
from fleetmind.wire import topics

log = logging.getLogger(__name__)

#: files in the data directory
ADMIN_TOKEN_FILE = "admin.token"
HUB_SECRET_FILE = "hub.secret"
#: names this hub among several sharing a broker (its client ids derive from it)
INSTANCE_FILE = "hub.instance"
SESSION_SECRET_FILE = "session.secret"
CA_DIR = "ca"
#: the embedded broker's server certificate
TLS_DIR = "tls"


def hub_client_id(secret: str, instance: str, index: int) -> str:
    """The client id of this hub's ``index``-th broker connection: the same at every start (the
    broker keeps its session and what is queued for it), its own among several hubs, and
    derived from the hub's secret, so no other client can guess it to take the session over."""
    tag = hmac.new(secret.encode(), instance.encode(), hashlib.sha256).hexdigest()
    return f"{model.HUB_USERNAME}-{tag[:20]}-{index}"


def read_or_create_secret(path: Path) -> str:
    """The secret in ``path``, created (random, mode 0600) on first use."""
    if path.exists():
        return path.read_text().strip()
    secret = model.new_secret()
    write_file(path, secret + "\n")
    return secret


@dataclass(frozen=True, slots=True)
class MqttEndpoint:
    """Where devices connect: told to them with their credentials (``tls_port``: mutual TLS)."""

    host: str
    #: the password listener (None in production: certificates only)
    port: int | None
    tls_port: int | None = None


class Hub:
    """Everything the API and the dashboard need, wired from :class:`Settings`."""

    def __init__(self, settings: Settings) -> None:
        settings.check_production()
        self.settings = settings
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        self._engine = create_engine(settings.registry)
        migrate(self._engine)
        self.audit = AuditService(AuditStore(self._engine))
        self.auth = AuthService(TokenStore(self._engine), audit=self.audit)
        device_store = DeviceStore(self._engine)
        self.ca = CertificateAuthority.open(
            settings.data_dir / CA_DIR, cert_file=settings.ca_cert, key_file=settings.ca_key
        )
        self.devices = DeviceService(
            device_store,
            ca=self.ca,
            on_added=self._device_added,
            on_credentials_changed=self._credentials_changed,
            on_deleted=self._device_deleted,
            on_online=self._device_online,
            rejects=RejectLog(),
            audit=self.audit,
        )
        self.enrollments = EnrollmentService(EnrollmentStore(self._engine), self.devices)
        self.twins = TwinService(
            TwinStore(self._engine), self.devices, self.publish, audit=self.audit
        )
        self.commands = CommandService(
            CommandStore(self._engine), self.devices, self.publish, audit=self.audit
        )
        self.store = DuckDBTelemetryStore(settings.telemetry_path)
        self.ingestor = Ingestor(self.store)
        self.telemetry = TelemetryService(self.store, self.ingestor.stats, self.devices.rejects)
        self.session_secret = read_or_create_secret(settings.data_dir / SESSION_SECRET_FILE)
        self._broker: EmbeddedBroker | None = None
        self._subscribers: list[BatchSubscriber] = []
        self._renewals: RenewalQueue | None = None
        self.admin_token: str | None = None
        self.mqtt = self._endpoint()

    def _endpoint(self) -> MqttEndpoint:
        """Where the hub and the devices reach the broker. The hub has a listener of its own on
        the loopback address (the embedded broker's, or Mosquitto's from ``--broker-url``); in
        production the hub, too, connects over mutual TLS, with a certificate of its own CA
        (common name ``_hub``)."""
        settings = self.settings
        if settings.broker_url is None:
            tls_port: int | None = choose_port(
                settings.mqtt_host, settings.mqtt_tls_port, DEFAULT_MQTT_TLS_PORT, "MQTT TLS"
            )
            device_port: int | None = None
            if not settings.production:
                device_port = choose_port(
                    settings.mqtt_host, settings.mqtt_port, DEFAULT_MQTT_PORT, "MQTT"
                )
            # the hub's listener: its port is known once the broker listens (start())
            address = BrokerAddress("127.0.0.1", 0, tls=settings.production)
            device_host = settings.mqtt_host
        else:
            address = BrokerAddress.parse(settings.broker_url)
            tls_port = settings.mqtt_tls_port
            device_port = None if settings.production else settings.mqtt_port or DEFAULT_MQTT_PORT
            device_host = address.host
        self._hub_secret = address.password or read_or_create_secret(
            settings.data_dir / HUB_SECRET_FILE
        )
        self.broker_address = BrokerAddress(
            address.host, address.port, address.username or model.HUB_USERNAME, self._hub_secret,
            address.tls,
        )  # fmt: skip
        self._hub_secret_hash = model.hash_secret(self._hub_secret)
        self._broker_tls: ssl.SSLContext | None = None
        self._hub_fingerprint = ""
        if address.tls:
            cert, key, issued = self.ca.client_files(
                settings.data_dir / TLS_DIR, model.HUB_USERNAME
            )
            context = ssl.create_default_context(cadata=self.ca.pem.decode())
            context.load_cert_chain(cert, key)
            self._broker_tls, self._hub_fingerprint = context, issued.fingerprint
        return MqttEndpoint(settings.public_host or device_host, device_port, tls_port)

    def _tls_hosts(self) -> list[str]:
        hosts = [self.mqtt.host, self.broker_address.host, "localhost", "127.0.0.1"]
        return [host for host in hosts if host not in ("0.0.0.0", "::")]  # noqa: S104 - filtered

    def start(self) -> None:
        """Create the admin token on first start, start the broker, subscribe to the fleet."""
        self.admin_token = self.auth.ensure_admin()
        if self.admin_token is not None:
            write_file(self.settings.data_dir / ADMIN_TOKEN_FILE, self.admin_token + "\n")
        address = self.broker_address
        if self.settings.embedded_broker:
            assert self.mqtt.tls_port is not None  # noqa: S101 - chosen for the embedded broker
            ca, cert, key = self.ca.server_files(
                self.settings.data_dir / TLS_DIR, self._tls_hosts()
            )
            self._broker = EmbeddedBroker(
                self.settings.mqtt_host,
                self.mqtt.port,
                self.settings.registry,
                self._hub_secret_hash,
                TlsListener(self.mqtt.tls_port, ca, cert, key, self._hub_fingerprint),
            )
            self._broker.start()
            address = self.broker_address = dataclasses.replace(address, port=self._broker.hub_port)
            # amqtt has no shared subscriptions: one connection receives everything
            topic_filter, connections = topics.UPLINK_FILTER, 1
        else:
            self._mosquitto_tls_files()
            self._credentials_changed()
            # a plain subscription by default: Mosquitto 2.0 drops messages for a shared
            # subscription restored from persistence until its member subscribes again (ADR 0003)
            topic_filter, connections = topics.UPLINK_FILTER, 1
            if self.settings.ingest_group is not None:
                topic_filter = f"$share/{self.settings.ingest_group}/{topics.UPLINK_FILTER}"
                connections = self.settings.ingest_connections
        self._renewals = RenewalQueue(self.devices, self.publish)
        consumer = UplinkConsumer(
            self.ingestor, self.devices, self.twins, self.commands, self._renewals,
            functools.partial(self.publish, qos=0),
        )  # fmt: skip
        instance = read_or_create_secret(self.settings.data_dir / INSTANCE_FILE)
        for index in range(connections):
            subscriber = BatchSubscriber(
                address,
                topic_filter,
                consumer,
                client_id=hub_client_id(self._hub_secret, instance, index),
                max_batch=self.settings.ingest_max_batch,
                max_wait=self.settings.ingest_max_wait_ms / 1000,
                tls=self._broker_tls,
            )
            subscriber.start(timeout=30)
            self._subscribers.append(subscriber)
        log.info(
            "ingesting from the broker at %s:%d over %d connection(s)",
            address.host,
            address.port,
            connections,
        )

    def publish(self, topic: str, payload: bytes, retain: bool = False, *, qos: int = 1) -> None:
        """Send to devices over the hub's broker connection (QoS 0 for a courtesy: nothing to
        track, nothing to send again)."""
        if not self._subscribers:
            raise TransportError("the hub is not connected to the broker yet")
        self._subscribers[0].publish(topic, payload, retain, qos=qos)

    def _device_deleted(self, device_id: str) -> None:
        self.twins.forget(device_id)
        self.commands.forget(device_id)
        with contextlib.suppress(ConnectionError):  # clear the retained desired document
            self.publish(topics.down(device_id, topics.Down.DESIRED), b"", retain=True)

    def _device_added(self, device_id: str, desired: dict[str, Any]) -> None:
        """A device from an enrollment group starts with the group's desired twin."""
        self.twins.patch_desired(device_id, desired, if_version=0)

    def _device_online(self, device_id: str) -> None:
        self.commands.device_online(device_id)

    @property
    def ingesting(self) -> bool:
        """Connected to the broker, and the last batch of every connection was committed."""
        return bool(self._subscribers) and all(sub.healthy for sub in self._subscribers)

    def stop(self) -> None:
        for subscriber in self._subscribers:
            subscriber.stop()
        if self._renewals is not None:
            self._renewals.close()
        if self._broker is not None:
            self._broker.stop()
        self.store.close()
        self._engine.dispose()

    def _mosquitto_tls_files(self) -> None:
        """The CA and a server certificate for an external Mosquitto's mutual-TLS listener."""
        if self.settings.mosquitto_dir is not None:
            self.ca.server_files(self.settings.mosquitto_dir, self._tls_hosts())

    def _credentials_changed(self) -> None:
        """Keep an external Mosquitto's password and ACL files current, and make it reload them."""
        directory = self.settings.mosquitto_dir
        if directory is None or self.settings.embedded_broker:
            return
        mosquitto.write_files(directory, self.devices, self._hub_secret_hash)
        try:
            mosquitto.reload(directory)
        except (OSError, ValueError) as exc:
            log.warning("could not ask Mosquitto in %s to reload its files: %s", directory, exc)
