"""The embedded broker's authentication and topic ACL, as amqtt plugins (loaded by dotted path).

Both read the hub's registry (SQLite or PostgreSQL) directly, so a device added through the API
can connect at once and a deleted one cannot.

With a TLS listener, a client must present a certificate of the hub's CA (mutual TLS); its
subject's common name is its identity (the MQTT username it sent is ignored), and the registry
must know the certificate's serial as valid for an active device.
"""

import asyncio
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from amqtt.contexts import Action as BrokerAction
from amqtt.plugins.base import BaseAuthPlugin, BaseTopicPlugin
from amqtt.session import Session
from cryptography import x509

from fleetmind import certificates
from fleetmind.audit.service import AuditService
from fleetmind.audit.store import AuditStore
from fleetmind.devices import model
from fleetmind.devices.errors import CertificateError
from fleetmind.devices.model import Action
from fleetmind.devices.service import DeviceService
from fleetmind.devices.store import DeviceStore

#: the session attribute naming the listener a client came in on
LISTENER = "fleetmind.listener"
#: the listener of the hub's own connections (bound to the loopback address); amqtt requires a
#: listener of this name
HUB_LISTENER = "default"


def right_listener(session: Session, username: str) -> bool:
    """The hub's identity only on the hub's listener, and devices only on theirs (as the
    per-listener password files of the Mosquitto layout do)."""
    return model.right_listener(username, on_hub_listener=_on_hub_listener(session))


def _on_hub_listener(session: Session) -> bool:
    return bool(session.attributes.get(LISTENER) == HUB_LISTENER)


class RegistryAuthPlugin(BaseAuthPlugin):  # type: ignore[misc]  # amqtt is untyped
    """Username and secret must match a registered device, or the hub's own identity.

    :meth:`DeviceService.authenticate` decides and records: the hub's identity only on the
    hub's listener (loopback), devices only on the others; ``MAX_FAILURES`` failed attempts of
    one username from one source address within ``WINDOW_S`` lock that pair for ``LOCKOUT_S``,
    even with the right secret (the hub's identity is never locked); failures and lockouts are
    audited. Its lockout state lives in this plugin's service, in the broker's process.
    """

    MAX_FAILURES = model.MQTT_MAX_FAILURES
    WINDOW_S = model.MQTT_WINDOW_S
    LOCKOUT_S = model.MQTT_LOCKOUT_S

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
        self._devices = DeviceService(
            DeviceStore(engine),
            audit=AuditService(AuditStore(engine)),
            hub_secret_hash=self.config.hub_secret_hash,
        )

    async def authenticate(self, *, session: Session) -> bool | None:
        peer = session.ssl_object.getpeercert(binary_form=True) if session.ssl_object else None
        if peer:
            return await self._by_certificate(session, peer)
        secret = session.password
        if isinstance(secret, bytes):
            secret = secret.decode(errors="replace")
        ok: bool = await asyncio.to_thread(
            self._devices.authenticate, session.username, secret,
            source=str(session.remote_address or "-"), on_hub_listener=_on_hub_listener(session),
        )  # fmt: skip
        return ok

    async def _by_certificate(self, session: Session, der: bytes) -> bool:
        """TLS verified the chain and validity; the registry decides whether it is still good."""
        try:
            certificate = x509.load_der_x509_certificate(der)
            device_id = certificates.device_id_of(certificate)
        except (ValueError, CertificateError):
            return False
        if not right_listener(session, device_id):
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
