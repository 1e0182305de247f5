"""The embedded broker's authentication and topic ACL, as amqtt plugins (loaded by dotted path).

Both read the hub's registry (SQLite or PostgreSQL) directly, so a device added through the API
can connect at once and a deleted one cannot.

With a TLS listener, a client must present a certificate of the hub's CA (mutual TLS); its
subject's common name is its identity (the MQTT username it sent is ignored), and the registry
must know the certificate's serial as valid for an active device.
"""

import asyncio
from collections import deque
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
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

#: (username, source address) pairs whose recent authentication failures are remembered
MAX_TRACKED = 10_000
#: the session attribute naming the listener a client came in on
LISTENER = "fleetmind.listener"
#: the listener of the hub's own connections (bound to the loopback address); amqtt requires a
#: listener of this name
HUB_LISTENER = "default"


def right_listener(session: Session, username: str) -> bool:
    """The hub's identity only on the hub's listener, and devices only on theirs (as the
    per-listener password files of the Mosquitto layout do)."""
    on_hub_listener = bool(session.attributes.get(LISTENER) == HUB_LISTENER)
    return on_hub_listener == (username == model.HUB_USERNAME)


class RegistryAuthPlugin(BaseAuthPlugin):  # type: ignore[misc]  # amqtt is untyped
    """Username and secret must match a registered device, or the hub's own identity.

    The hub's identity is accepted only on the hub's listener (loopback), devices only on the
    others. Brute force is stopped per username and source address: ``MAX_FAILURES`` failed attempts
    within ``WINDOW_S`` lock that pair for ``LOCKOUT_S``, even with the right secret, so a
    guesser elsewhere cannot lock a device out of its own connection; the hub's identity is
    never locked (a 256-bit secret, and ingest must not stop). Failures and lockouts are audited.
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
        self._failures: dict[tuple[str, str], deque[float]] = {}
        self._locked_until: dict[tuple[str, str], float] = {}

    async def authenticate(self, *, session: Session) -> bool | None:
        peer = session.ssl_object.getpeercert(binary_form=True) if session.ssl_object else None
        if peer:
            return await self._by_certificate(session, peer)
        username, secret = session.username, session.password
        if not username or secret is None:
            await self._failed(session, username or "-", "no credentials")
            return False
        key = (username, str(session.remote_address))
        if asyncio.get_running_loop().time() < self._locked_until.get(key, 0.0):
            return False
        if isinstance(secret, bytes):
            secret = secret.decode(errors="replace")
        if not right_listener(session, username):
            ok = False
        elif username == model.HUB_USERNAME:
            ok = model.verify_secret(secret, self.config.hub_secret_hash)
        else:
            ok = await asyncio.to_thread(self._devices.authenticate, username, secret)
        if not ok:
            await self._failed(session, username, "wrong or unknown credentials")
        return ok

    async def _failed(self, session: Session, username: str, why: str) -> None:
        now = asyncio.get_running_loop().time()
        source = str(session.remote_address or "-")
        key = (username, source)
        recent = self._failures.setdefault(key, deque())
        recent.append(now)
        while recent and recent[0] < now - self.WINDOW_S:
            recent.popleft()
        kind, detail = "mqtt.auth", why
        if len(recent) >= self.MAX_FAILURES and username != model.HUB_USERNAME:
            self._locked_until[key] = now + self.LOCKOUT_S
            recent.clear()
            kind, detail = "mqtt.lockout", f"{self.MAX_FAILURES} failures from {source}; locked"
        if len(self._failures) > MAX_TRACKED:  # a flood of made-up names: forget the oldest
            self._failures.pop(next(iter(self._failures)))
        if len(self._locked_until) > MAX_TRACKED:
            self._locked_until = {k: t for k, t in self._locked_until.items() if t > now}
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
