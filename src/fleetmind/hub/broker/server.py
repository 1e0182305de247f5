"""amqtt with Mosquitto's rules where security and durability are concerned.

amqtt, as it comes, takes over (and with a clean session wipes) the session of a client id
before it checks the password; lets any client take any client id; publishes wills without the
topic ACL; sends new clients the retained messages of every subscription on the broker; keeps
connections that never send CONNECT, never enforces keepalive, and reads packets of any size.
:class:`StrictBroker` changes, in this order of a connection's life:

1. a connection over the total limit is closed at once; CONNECT must arrive within
   ``connect_timeout_s``; no packet may exceed ``max_packet_bytes``;
2. the client is authenticated first: a refused client gets CONNACK 5 and touches nothing;
3. a device's client id is its username (Mosquitto's ``use_username_as_clientid``), so one
   device cannot take over another's session; its own older connection is closed (one
   connection per device) without publishing that connection's will;
4. the ACL applies to publishes, subscriptions, deliveries, retained messages and wills; a
   device's uplink is retained only on ``up/status``; QoS is at most 1;
5. what devices publish under ``up/`` goes to the hub through :class:`~.hub_link.HubLink`,
   and a device's PUBACK waits until the hub has it (:mod:`.connections`).
"""

import asyncio
import contextlib
import logging
import ssl
from typing import Any

from amqtt.adapters import ReaderAdapter, WriterAdapter
from amqtt.broker import Broker
from amqtt.contexts import Action
from amqtt.errors import AMQTTError, MQTTError, NoDataError
from amqtt.mqtt.connack import IDENTIFIER_REJECTED, NOT_AUTHORIZED, ConnackPacket
from amqtt.mqtt.constants import QOS_1
from amqtt.session import Session

from fleetmind.devices import model
from fleetmind.devices.service import DeviceService
from fleetmind.hub.broker.connections import (
    ClientHandler,
    LimitedReader,
    abort,
    close_quietly,
    keepalive_with_grace,
    refuse,
    release,
)
from fleetmind.hub.broker.hub_link import HubLink, Uplink
from fleetmind.hub.broker.plugins import HUB_LISTENER, LISTENER
from fleetmind.hub.broker.rules import BrokerLimits, is_uplink, retains, valid_topic
from fleetmind.hub.broker.sessions import SessionTable, Subscriptions
from fleetmind.wire import topics

log = logging.getLogger(__name__)


_TURN = "fleetmind.connect_turn"


def _release_turn(session: Session) -> None:
    turn = session.attributes.pop(_TURN, None)
    if turn is not None:
        turn.release()


class StrictBroker(SessionTable, Broker):  # type: ignore[misc]  # amqtt is untyped
    def __init__(self, config: dict[str, Any], limits: BrokerLimits) -> None:
        super().__init__(config)
        self._subscriptions = Subscriptions()
        self.limits = limits
        self.hub_link = HubLink(limits.hub_inflight, limits.max_queued_bytes)
        self._open = 0
        self._refusing = False
        #: set when a connection's handling has ended (a takeover waits for it)
        self._ended: dict[Any, asyncio.Event] = {}
        #: a turn per client id, taken from authentication until the connection is registered
        self._connecting: dict[str, asyncio.Lock] = {}
        #: every connection being served, registered or not (the registry sweep checks them all)
        self.live: dict[Any, Session] = {}
        ClientHandler.max_held = limits.max_held_per_connection

    @property
    def hub_port(self) -> int:
        """The port the hub's listener is bound to."""
        server = self._servers[HUB_LISTENER].instance
        port: int = server.sockets[0].getsockname()[1]
        return port

    @staticmethod
    def _create_ssl_context(listener: Any) -> ssl.SSLContext:
        """amqtt asks for a client certificate but accepts none; FleetMind requires one."""
        context: ssl.SSLContext = Broker._create_ssl_context(listener)
        context.verify_mode = ssl.CERT_REQUIRED
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        return context

    async def _create_server_instance(
        self,
        listener_name: str,
        listener_type: Any,
        address: str | None,
        port: int,
        ssl_context: Any,
    ) -> Any:
        """TCP listeners whose TLS handshake, too, must finish within the CONNECT timeout."""
        from functools import partial

        return await asyncio.start_server(
            partial(self.stream_connected, listener_name=listener_name),
            address,
            port,
            reuse_address=True,
            ssl=ssl_context,
            ssl_handshake_timeout=self.limits.connect_timeout_s if ssl_context else None,
        )

    # -- a connection's life ----------------------------------------------------------------

    async def _client_connected(
        self, listener_name: str, reader: ReaderAdapter, writer: WriterAdapter
    ) -> None:
        if self._open >= self.limits.max_connections:
            if not self._refusing:
                log.warning("%d connections open: refusing new ones", self._open)
                self._refusing = True
            abort(writer)
            return
        if self._refusing:
            log.info("below %d connections again", self.limits.max_connections)
            self._refusing = False
        self._open += 1
        try:
            limited = LimitedReader(reader, self.limits.max_packet_bytes, listener_name)
            await super()._client_connected(listener_name, limited, writer)
        except Exception:  # one connection's failure must not reach asyncio
            log.exception("a connection on %s failed", listener_name)
            await close_quietly(writer)
        finally:
            self._open -= 1

    async def _initialize_client_session(
        self, reader: LimitedReader, writer: WriterAdapter, remote_address: str, remote_port: int
    ) -> tuple[ClientHandler, Session]:
        try:
            handler, session = await asyncio.wait_for(
                ClientHandler.init_from_connect(reader, writer, self.plugins_manager),
                self.limits.connect_timeout_s,
            )
        except TimeoutError:
            abort(writer)
            raise AMQTTError("no CONNECT in time") from None
        except (MQTTError, NoDataError) as exc:
            await close_quietly(writer)
            raise AMQTTError(f"not a valid CONNECT: {exc}") from None
        except Exception as exc:  # noqa: BLE001 - a packet too large, garbage amqtt cannot parse
            await close_quietly(writer)
            raise AMQTTError(f"not a valid CONNECT: {exc!r}") from None
        if session.will_flag and (
            not valid_topic(session.will_topic or "") or session.will_qos not in (0, 1, 2)
        ):  # a malformed CONNECT (MQTT 3.1.2-14, 4.7.1): closed, as Mosquitto does
            abort(writer)
            raise AMQTTError(f"{remote_address}: an invalid will")
        session.attributes[LISTENER] = reader.listener
        if not await self._authenticate(session, None):
            await self._refuse(writer, NOT_AUTHORIZED)
            raise AMQTTError(f"{remote_address}: not authorised")
        if session.username != model.HUB_USERNAME:
            session.client_id = session.username
        elif not session.client_id:
            await self._refuse(writer, IDENTIFIER_REJECTED)
            raise AMQTTError("the hub needs a client id")
        # one connection of a client id at a time, from here until it is registered: CONNECTs
        # that arrive together would each take over nothing and all stay connected
        turn = self._connecting.setdefault(session.client_id, asyncio.Lock())
        await turn.acquire()
        try:
            session = await self._settle(session)
        except BaseException:
            turn.release()
            raise
        session.attributes[_TURN] = turn  # released once the connection is registered
        return handler, session

    async def _settle(self, session: Session) -> Session:
        """Take over the client id's older connection; then start a clean session or resume a
        persistent one."""
        await self._take_over(session.client_id)
        session.keep_alive = keepalive_with_grace(session.keep_alive)
        if session.clean_session:
            await self._delete_session(session.client_id)
            session.parent = 0
        elif session.client_id in self._sessions:
            existing, _ = self._sessions[session.client_id]
            for name in ("will_flag", "will_message", "will_topic", "will_qos", "will_retain",
                         "keep_alive", "username", "password", "ssl_object", "remote_address",
                         "remote_port"):  # fmt: skip
                setattr(existing, name, getattr(session, name))
            existing.attributes.update(session.attributes)
            existing.certificate_serial = getattr(session, "certificate_serial", None)
            session, session.parent = existing, 1
        else:
            session.parent = 0
        return session

    async def _refuse(self, writer: WriterAdapter, code: int) -> None:
        with contextlib.suppress(Exception):
            await ConnackPacket.build(0, code).to_stream(writer)
        await close_quietly(writer)

    async def _take_over(self, client_id: str) -> None:
        """Close the connection that holds ``client_id`` now (its owner is back: no will) and
        wait until its handling has ended."""
        existing = self._sessions.get(client_id)
        if existing is None or not existing[0].transitions.is_connected():
            return
        session, handler = existing
        log.info("%s connected again; closing its older connection", client_id)
        session.will_flag = False
        ended = self._ended.get(handler)
        abort(handler.writer)
        if ended is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(ended.wait(), 10)

    async def _handle_client_session(
        self,
        reader: ReaderAdapter,
        writer: WriterAdapter,
        client_session: Session,
        handler: ClientHandler,
        server: Any,
        listener_name: str,
    ) -> None:
        """amqtt's, without its second authentication, its takeover before authentication and
        its retained messages of every subscription on the broker."""
        ended = self._ended[handler] = asyncio.Event()
        self.live[handler] = client_session
        try:
            self._forget_older(client_session)
            client_session.transitions.connect()
            handler.attach(client_session, reader, writer)
            self._sessions[client_session.client_id] = (client_session, handler)
            _release_turn(client_session)
            await handler.mqtt_connack_authorize(True)
            await handler.start()
            await self._publish_session_retained_messages(client_session)
            if self._takes_uplink(client_session):
                self.hub_link.attach(client_session, handler)
            await self._client_message_loop(client_session, handler)
        finally:
            _release_turn(client_session)
            self.live.pop(handler, None)
            self.hub_link.detach(handler)
            if client_session.transitions.is_connected():  # the loop ended on a bad packet
                await self._end(client_session, handler, abnormal=True)
            ended.set()
            self._ended.pop(handler, None)

    async def _handle_disconnect(
        self, client_session: Session, handler: ClientHandler, disconnect_waiter: Any
    ) -> None:
        result = disconnect_waiter.result()
        await self._end(client_session, handler, abnormal=not result)

    async def _end(self, session: Session, handler: ClientHandler, *, abnormal: bool) -> None:
        """Route what the client sent before it went, publish its will if it vanished (and the
        ACL lets it), and end the connection."""
        queue = session.delivered_message_queue
        while not queue.empty():
            delivered = asyncio.get_running_loop().create_future()
            delivered.set_result(queue.get_nowait())
            await self._handle_message_delivery(session, handler, delivered)
        if abnormal:  # the client is gone or broke the protocol: nothing to close gracefully
            abort(handler.writer)
            if session.will_flag and session.will_topic:
                will = bytes(session.will_message or b"")
                await self._publish(session, session.will_topic, will, session.will_retain, None)
        await self._stop_handler(handler)
        if session.transitions.is_connected():
            session.transitions.disconnect()

    # -- publishing -------------------------------------------------------------------------

    async def _handle_message_delivery(
        self, client_session: Session, handler: ClientHandler, wait_deliver: Any
    ) -> bool:
        message = wait_deliver.result()
        if message is None:
            return True
        topic = message.topic
        if not valid_topic(topic):
            log.info("%s published to an invalid topic; closing", client_session.client_id)
            return False
        retain = bool(message.publish_packet and message.publish_packet.retain_flag)
        await self._publish(client_session, topic, bytes(message.data), retain, message)
        return True

    async def _publish(
        self, session: Session, topic: str, data: bytes, retain: bool, source: Any
    ) -> None:
        """One message from ``session`` (a publish or its will): ACL, uplink or routing, retain.
        ``source`` is the held message whose PUBACK waits, if any."""
        if not valid_topic(topic) or not await self._topic_filtering(
            session, topic=topic, action=Action.PUBLISH
        ):
            log.debug("%s may not publish to %s; dropped", session.client_id, topic)
            release(source)  # acknowledged and dropped, as Mosquitto does
            return
        if session.username != model.HUB_USERNAME and is_uplink(topic):
            if not self.hub_link.offer(Uplink(topic, data, source)):
                refuse(source)
        else:
            await self._broadcast_message(session, topic, data)
            release(source)
        if retain and retains(session.username, topic):
            await self.retain_message(session, topic, data, QOS_1)

    # -- subscriptions -----------------------------------------------------------------------

    def _takes_uplink(self, session: Session) -> bool:
        return session.username == model.HUB_USERNAME and any(
            s.client_id == session.client_id
            for s, _ in self._subscriptions.get(topics.UPLINK_FILTER, [])
        )

    async def add_subscription(self, subscription: tuple[str, int], session: Session) -> int:
        topic_filter, qos = subscription
        granted: int = await super().add_subscription((topic_filter, min(qos, QOS_1)), session)
        if granted <= QOS_1 and self._takes_uplink(session):
            handler = self._get_handler(session)
            if handler is not None:
                self.hub_link.attach(session, handler)
        return granted

    async def _handle_unsubscription(
        self, client_session: Session, handler: Any, waiter: Any
    ) -> None:
        await super()._handle_unsubscription(client_session, handler, waiter)
        if not self._takes_uplink(client_session):
            self.hub_link.detach(handler)

    async def _publish_retained_messages_for_subscription(
        self, subscription: tuple[str, int], session: Session
    ) -> None:
        """The retained messages a new subscription matches, each as far as the ACL lets the
        subscriber receive it; the hub's go through the hub link like the rest of the uplink."""
        topic_filter, qos = subscription
        handler = self._get_handler(session)
        for topic, retained in self._retained_messages.items():
            if not self._matches(topic, topic_filter) or handler is None:
                continue
            if not await self._topic_filtering(session, topic=topic, action=Action.RECEIVE):
                continue
            if session.username == model.HUB_USERNAME and is_uplink(topic):
                self.hub_link.put(Uplink(topic, bytes(retained.data)))
                continue
            await handler.mqtt_publish(topic, retained.data, min(qos, retained.qos or qos), True)

    # -- the registry sweep -----------------------------------------------------------------

    async def drop_disallowed(self, devices: DeviceService) -> int:
        """Close the connections of devices that may no longer connect; how many were closed.
        One snapshot of the registry serves every connection."""
        admission = await asyncio.to_thread(devices.admission)
        dropped = 0
        for handler, session in list(self.live.items()):
            username = session.username
            if username in (None, model.HUB_USERNAME):
                continue
            if admission.allows(username, getattr(session, "certificate_serial", None)):
                continue
            log.info("disconnecting %s: it may no longer connect", username)
            abort(handler.writer)
            dropped += 1
        return dropped
