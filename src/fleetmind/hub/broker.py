"""The embedded broker: amqtt in a child process, with FleetMind's authentication and topic ACL.

The child loads :class:`RegistryAuthPlugin` and :class:`TopicAclPlugin` by dotted path; both read
the hub's registry (SQLite or PostgreSQL) directly, so a device added through the API can connect
at once and a deleted one cannot.
"""

import asyncio
import contextlib
import logging
import multiprocessing
import signal
from dataclasses import dataclass
from multiprocessing.process import BaseProcess
from typing import Any

import sqlalchemy as sa
from amqtt.broker import Broker
from amqtt.contexts import Action as BrokerAction
from amqtt.plugins.base import BaseAuthPlugin, BaseTopicPlugin
from amqtt.session import Session

from fleetmind.devices import model
from fleetmind.devices.model import Action
from fleetmind.devices.service import DeviceService
from fleetmind.devices.store import DeviceStore

log = logging.getLogger(__name__)


class RegistryAuthPlugin(BaseAuthPlugin):  # type: ignore[misc]  # amqtt is untyped
    """Username and secret must match a registered device, or the hub's own identity."""

    @dataclass
    class Config:
        registry_url: str = ""
        hub_secret_hash: str = ""

    def __init__(self, context: Any) -> None:
        super().__init__(context)
        if not self.config.registry_url or not self.config.hub_secret_hash:
            raise ValueError("RegistryAuthPlugin needs registry_url and hub_secret_hash")
        self._devices = DeviceService(DeviceStore(sa.create_engine(self.config.registry_url)))

    async def authenticate(self, *, session: Session) -> bool | None:
        username, secret = session.username, session.password
        if not username or secret is None:
            return False
        if isinstance(secret, bytes):
            secret = secret.decode(errors="replace")
        if username == model.HUB_USERNAME:
            return model.verify_secret(secret, self.config.hub_secret_hash)
        return await asyncio.to_thread(self._devices.authenticate, username, secret)


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

    async def _handle_disconnect(self, session: Session, handler: Any, waiter: Any) -> None:
        queue = session.delivered_message_queue
        while not queue.empty():
            delivered = asyncio.get_running_loop().create_future()
            delivered.set_result(queue.get_nowait())
            await self._handle_message_delivery(session, handler, delivered)
        await super()._handle_disconnect(session, handler, waiter)


def broker_config(host: str, port: int, registry_url: str, hub_secret_hash: str) -> dict[str, Any]:
    return {
        "listeners": {"default": {"type": "tcp", "bind": f"{host}:{port}"}},
        "plugins": {
            f"{__name__}.RegistryAuthPlugin": {
                "registry_url": registry_url,
                "hub_secret_hash": hub_secret_hash,
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
        await stop.wait()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(broker.shutdown(), timeout=5)

    asyncio.run(main())


class EmbeddedBroker:
    """Run amqtt in a child process for the lifetime of a ``with`` block."""

    def __init__(self, host: str, port: int, registry_url: str, hub_secret_hash: str) -> None:
        self.host = host
        self.port = port
        self._config = broker_config(host, port, registry_url, hub_secret_hash)
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
        log.info("embedded broker starting on %s:%d", self.host, self.port)

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
