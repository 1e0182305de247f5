"""The embedded broker: amqtt in a child process, with FleetMind's authentication and topic ACL.

The child loads :class:`RegistryAuthPlugin` and :class:`TopicAclPlugin` by dotted path; both read
the hub's registry (SQLite or PostgreSQL) directly, so a device added through the API can connect
at once and a deleted one cannot.

With a TLS listener, a client must present a certificate of the hub's CA (mutual TLS); its
subject's common name is its identity (the MQTT username it sent is ignored), and the registry
must know the certificate's serial as valid for an active device. Every few seconds the broker
checks its connected devices again and drops those no longer allowed (revoked, suspended,
decommissioned, deleted).
"""

import asyncio
import contextlib
import logging
import multiprocessing
import signal
import ssl
import time
from collections import deque
from dataclasses import dataclass
from multiprocessing.process import BaseProcess
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from amqtt.adapters import WriterAdapter
from amqtt.broker import Broker
from amqtt.contexts import Action as BrokerAction
from amqtt.plugins.base import BaseAuthPlugin, BaseTopicPlugin
from amqtt.session import Session
from cryptography import x509

from fleetmind.audit.model import Outcome
from fleetmind.audit.service import AuditService
from fleetmind.audit.store import AuditStore
from fleetmind.devices import certificates, model
from fleetmind.devices.errors import CertificateError
from fleetmind.devices.model import Action
from fleetmind.devices.service import DeviceService
from fleetmind.devices.store import DeviceStore

log = logging.getLogger(__name__)

#: seconds between checks of the connected devices against the registry
SWEEP_S = 2.0
#: usernames whose recent authentication failures are remembered
MAX_TRACKED = 10_000


class RegistryAuthPlugin(BaseAuthPlugin):  # type: ignore[misc]  # amqtt is untyped
    """Username and secret must match a registered device, or the hub's own identity.

    Brute force is stopped per username: ``MAX_FAILURES`` failed attempts within ``WINDOW_S``
    lock it for ``LOCKOUT_S``, even with the right secret; failures and the lockout are audited.
    """

    MAX_FAILURES = 10
    WINDOW_S = 300.0
    LOCKOUT_S = 900.0

    @dataclass
    class Config:
        registry_url: str = ""
        hub_secret_hash: str = ""
        hub_fingerprint: str = ""

    def __init__(self, context: Any) -> None:
        super().__init__(context)
        if not self.config.registry_url or not self.config.hub_secret_hash:
            raise ValueError("RegistryAuthPlugin needs registry_url and hub_secret_hash")
        engine = sa.create_engine(self.config.registry_url)
        self._devices = DeviceService(DeviceStore(engine))
        self._audit = AuditService(AuditStore(engine))
        self._failures: dict[str, deque[float]] = {}
        self._locked_until: dict[str, float] = {}

    async def authenticate(self, *, session: Session) -> bool | None:
        peer = session.ssl_object.getpeercert(binary_form=True) if session.ssl_object else None
        if peer:
            return await self._by_certificate(session, peer)
        username, secret = session.username, session.password
        if not username or secret is None:
            await self._failed(session, username or "-", "no credentials")
            return False
        if time.monotonic() < self._locked_until.get(username, 0.0):
            return False
        if isinstance(secret, bytes):
            secret = secret.decode(errors="replace")
        if username == model.HUB_USERNAME:
            ok = model.verify_secret(secret, self.config.hub_secret_hash)
        else:
            ok = await asyncio.to_thread(self._devices.authenticate, username, secret)
        if not ok:
            await self._failed(session, username, "wrong or unknown credentials")
        return ok

    async def _failed(self, session: Session, username: str, why: str) -> None:
        now = time.monotonic()
        recent = self._failures.setdefault(username, deque())
        recent.append(now)
        while recent and recent[0] < now - self.WINDOW_S:
            recent.popleft()
        source = str(getattr(session, "remote_address", None) or "-")
        kind, detail = "mqtt.auth", why
        if len(recent) >= self.MAX_FAILURES:
            self._locked_until[username] = now + self.LOCKOUT_S
            recent.clear()
            kind, detail = "mqtt.lockout", f"{self.MAX_FAILURES} failures; locked"
        if len(self._failures) > MAX_TRACKED:  # a flood of made-up names: forget the oldest
            self._failures.pop(next(iter(self._failures)))
        await asyncio.to_thread(
            self._audit.record, kind, actor=username, source=source,
            outcome=Outcome.FAILURE, detail=detail,
        )  # fmt: skip

    async def _by_certificate(self, session: Session, der: bytes) -> bool:
        """TLS verified the chain and validity; the registry decides whether it is still good."""
        try:
            certificate = x509.load_der_x509_certificate(der)
            device_id = certificates.device_id_of(certificate)
        except (ValueError, CertificateError):
            return False
        if device_id == model.HUB_USERNAME:  # only the certificate the hub made at its start
            fingerprint = certificates.fingerprint(certificate)
            if not self.config.hub_fingerprint or fingerprint != self.config.hub_fingerprint:
                return False
            session.username = device_id
            return True
        serial = certificates.serial_hex(certificate)
        if not await asyncio.to_thread(self._devices.may_connect, device_id, serial):
            return False
        session.username = device_id
        session.certificate_serial = serial
        return True


class TopicAclPlugin(BaseTopicPlugin):  # type: ignore[misc]  # amqtt is untyped
    """The ACL of :func:`fleetmind.devices.model.is_allowed` for publish, subscribe and receive."""

    @dataclass
    class Config:
        pass

    async def topic_filtering(
        self,
        *,
        session: Session | None = None,
        topic: str | None = None,
        action: BrokerAction | None = None,
    ) -> bool | None:
        if session is None or topic is None or action is None:
            return False
        wanted = Action.PUBLISH if action == BrokerAction.PUBLISH else Action.SUBSCRIBE
        return model.is_allowed(session.username, topic, wanted)


class _Subscriptions(dict[str, Any]):
    """amqtt's subscription table, iterated over a snapshot: amqtt walks the live table across
    awaits (routing a message, sending retained messages to a new client), and a client
    subscribing meanwhile aborted the walk ("dictionary changed size during iteration"): the
    remaining subscribers never got that message, or the new client's connection was dropped."""

    def items(self) -> Any:
        return list(super().items())

    def __iter__(self) -> Any:
        return iter(list(super().__iter__()))


class RoutingBroker(Broker):  # type: ignore[misc]  # amqtt is untyped
    """amqtt with two fixes. It acknowledges a QoS 1 PUBLISH once the message is queued, before
    routing it, and used to drop that queue when the client went away, so a device that
    disconnected right after its last acknowledgement lost data: route the queue first. And it
    routes over a snapshot of the subscription table (:class:`_Subscriptions`)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._subscriptions = _Subscriptions()

    @staticmethod
    def _create_ssl_context(listener: Any) -> ssl.SSLContext:
        """amqtt asks for a client certificate but accepts none; FleetMind requires one."""
        context: ssl.SSLContext = Broker._create_ssl_context(listener)
        context.verify_mode = ssl.CERT_REQUIRED
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        return context

    async def drop_disallowed(self, devices: DeviceService) -> int:
        """Close the connections of devices that may no longer connect; how many were closed.
        One snapshot of the registry serves every connection."""
        admission = await asyncio.to_thread(devices.admission)
        dropped = 0
        for session, handler in list(self._sessions.values()):
            username = session.username
            if username in (None, model.HUB_USERNAME) or session.transitions.state != "connected":
                continue
            if admission.allows(username, getattr(session, "certificate_serial", None)):
                continue
            writer: WriterAdapter | None = getattr(handler, "writer", None)
            if writer is not None:
                log.info("disconnecting %s: it may no longer connect", username)
                await writer.close()
                dropped += 1
        return dropped

    async def _handle_disconnect(self, session: Session, handler: Any, waiter: Any) -> None:
        queue = session.delivered_message_queue
        while not queue.empty():
            delivered = asyncio.get_running_loop().create_future()
            delivered.set_result(queue.get_nowait())
            await self._handle_message_delivery(session, handler, delivered)
        await super()._handle_disconnect(session, handler, waiter)


@dataclass(frozen=True, slots=True)
class TlsListener:
    """A mutual-TLS listener: its port and the CA, certificate and key files it serves."""

    port: int
    cafile: Path
    certfile: Path
    keyfile: Path
    #: the hub's own client certificate (its SHA-256 fingerprint), when it connects over TLS
    hub_fingerprint: str = ""


def broker_config(
    host: str,
    port: int | None,
    registry_url: str,
    hub_secret_hash: str,
    tls: TlsListener | None = None,
) -> dict[str, Any]:
    """amqtt's configuration: a plain listener on ``port`` (None: none) and ``tls``."""
    listeners: dict[str, Any] = {}
    if port is not None:
        listeners["default"] = {"type": "tcp", "bind": f"{host}:{port}"}
    if tls is not None:
        listeners["tls" if listeners else "default"] = {
            "type": "tcp",
            "bind": f"{host}:{tls.port}",
            "ssl": True,
            "cafile": str(tls.cafile),
            "certfile": str(tls.certfile),
            "keyfile": str(tls.keyfile),
        }
    return {
        "listeners": listeners,
        "plugins": {
            f"{__name__}.RegistryAuthPlugin": {
                "registry_url": registry_url,
                "hub_secret_hash": hub_secret_hash,
                "hub_fingerprint": tls.hub_fingerprint if tls is not None else "",
            },
            f"{__name__}.TopicAclPlugin": {},
        },
    }


def _serve(config: dict[str, Any], log_level: int) -> None:
    logging.basicConfig(level=log_level, format="%(asctime)s broker %(levelname)s %(message)s")
    # amqtt logs every refused client at ERROR with a traceback; the hub logs what matters
    logging.getLogger("amqtt").setLevel(logging.CRITICAL)
    logging.getLogger("transitions").setLevel(logging.WARNING)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the hub stops us with SIGTERM

    async def main() -> None:
        broker = RoutingBroker(config)
        await broker.start()
        stop = asyncio.Event()
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
        registry = config["plugins"][f"{__name__}.RegistryAuthPlugin"]["registry_url"]
        devices = DeviceService(DeviceStore(sa.create_engine(registry)))
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), SWEEP_S)
            try:
                await broker.drop_disallowed(devices)
            except Exception:
                log.exception("checking connected devices failed; trying again")
        with contextlib.suppress(Exception):
            await asyncio.wait_for(broker.shutdown(), timeout=5)

    asyncio.run(main())


class EmbeddedBroker:
    """Run amqtt in a child process for the lifetime of a ``with`` block."""

    def __init__(
        self,
        host: str,
        port: int | None,
        registry_url: str,
        hub_secret_hash: str,
        tls: TlsListener | None = None,
    ) -> None:
        self.host = host
        self.port = port
        self.tls = tls
        self._config = broker_config(host, port, registry_url, hub_secret_hash, tls)
        self._process: BaseProcess | None = None

    def start(self) -> None:
        context = multiprocessing.get_context("spawn")
        self._process = context.Process(
            target=_serve,
            args=(self._config, logging.getLogger().getEffectiveLevel()),
            name="fleetmind-broker",
            daemon=True,
        )
        self._process.start()
        ports = [f"{self.port} (plain)"] if self.port is not None else []
        ports += [f"{self.tls.port} (mutual TLS)"] if self.tls is not None else []
        log.info("embedded broker starting on %s: %s", self.host, ", ".join(ports))

    @property
    def alive(self) -> bool:
        return self._process is not None and self._process.is_alive()

    def stop(self) -> None:
        if self._process is None:
            return
        self._process.terminate()
        self._process.join(timeout=10)
        if self._process.is_alive():
            self._process.kill()
            self._process.join()
        self._process = None

    def __enter__(self) -> "EmbeddedBroker":
        self.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()
