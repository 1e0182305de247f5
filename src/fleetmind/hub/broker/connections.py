"""One client connection of the embedded broker: bounded packets, enforced keepalive, QoS at
most 1, and a device's PUBACK held until the hub has the message.

amqtt acknowledges a QoS 1 PUBLISH as soon as it is queued in memory; a broker killed a moment
later loses messages the device already deleted from its outbox. Here the PUBACK to a device
waits for its message's *handoff*: the hub acknowledged it (after committing it), or the broker
let go of it on purpose (a publish the ACL refuses is acknowledged and dropped, as Mosquitto
does), or it was *refused* (the broker holds as much uplink as it may: no PUBACK, and the
connection is closed). A device therefore keeps everything in its outbox until it is durable on
the hub; if the broker or the hub dies first, or the broker is full, the device sends it again.
"""

import asyncio
import contextlib
import logging
import math
from typing import Any

from amqtt.adapters import ReaderAdapter
from amqtt.mqtt.constants import QOS_1, QOS_2
from amqtt.mqtt.protocol.broker_handler import BrokerProtocolHandler
from amqtt.mqtt.puback import PubackPacket
from amqtt.mqtt.publish import PublishPacket
from amqtt.session import IncomingApplicationMessage

from fleetmind.devices import model

log = logging.getLogger(__name__)

#: the keepalive a client asked for, times this, without a packet: the connection is dead
KEEPALIVE_GRACE = 1.5


class PacketTooLarge(Exception):
    """A packet longer than the broker accepts; the connection is closed."""


class LimitedReader(ReaderAdapter):  # type: ignore[misc]  # amqtt is untyped
    """A reader that refuses to read more than ``max_bytes`` at once: amqtt reads a packet's
    body in one call of its announced length, so this bounds what one packet can make the
    broker buffer (MQTT allows 256 MB)."""

    def __init__(self, reader: ReaderAdapter, max_bytes: int, listener: str) -> None:
        self._reader = reader
        self._max_bytes = max_bytes
        #: the name of the listener the connection came in on
        self.listener = listener

    async def read(self, n: int = -1) -> bytes:
        if n < 0 or n > self._max_bytes:
            raise PacketTooLarge(f"a packet of more than {self._max_bytes} bytes")
        data: bytes = await self._reader.read(n)
        return data

    def feed_eof(self) -> None:
        self._reader.feed_eof()


class HeldMessage(IncomingApplicationMessage):  # type: ignore[misc]  # amqtt is untyped
    """A device's QoS 1 message whose PUBACK waits for ``handoff``."""

    def __init__(self, packet: PublishPacket, handoff: "asyncio.Future[None]") -> None:
        super().__init__(
            packet.packet_id, packet.topic_name, packet.qos, packet.data, packet.retain_flag
        )
        self.publish_packet = packet
        self.handoff = handoff


class Refused(Exception):
    """The broker cannot take a held message now: it is not acknowledged, and its connection
    is closed (the device sends it again when it is back)."""


def refuse(message: Any) -> None:
    """Let a held message go without its PUBACK."""
    handoff = getattr(message, "handoff", None)
    if handoff is not None and not handoff.done():
        handoff.set_exception(Refused())


def release(message: Any) -> None:
    """Let a held message's PUBACK go (the hub has it, or the broker dropped it on purpose)."""
    handoff = getattr(message, "handoff", None)
    if handoff is not None and not handoff.done():
        handoff.set_result(None)


class ClientHandler(BrokerProtocolHandler):  # type: ignore[misc]  # amqtt is untyped
    """amqtt's protocol handler with the rules above. ``max_held``: QoS 1 messages a device may
    have waiting for their PUBACK (MQTT 5 calls it the receive maximum); more closes it."""

    max_held = 1000

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._held = 0
        self._closing = False

    def handle_read_timeout(self) -> None:
        """No packet within the keepalive and its grace: the connection is dead (amqtt would
        keep it forever, and the device's last will would never be published)."""
        log.info("%s: no packet within its keepalive; closing", self._client_id)
        self._close()

    def _close(self) -> None:
        if self.writer is not None and not self._closing:
            self._closing = True
            abort(self.writer)

    @property
    def _client_id(self) -> str:
        return str(self.session.client_id) if self.session is not None else "?"

    async def handle_publish(self, publish_packet: PublishPacket) -> None:
        qos = publish_packet.qos
        if self._closing:
            return
        if qos == QOS_2:  # as Mosquitto's max_qos 1: the client is disconnected
            log.info("%s: QoS 2 is not served; closing", self._client_id)
            self._close()
            return
        if qos != QOS_1 or self.session is None or self.session.username == model.HUB_USERNAME:
            await super().handle_publish(publish_packet)
            return
        if publish_packet.topic_name is None or publish_packet.data is None:
            return
        if self._held >= self.max_held:
            log.warning("%s: more than %d messages unacknowledged; closing", self._client_id,
                        self.max_held)  # fmt: skip
            self._close()
            return
        self._held += 1
        handoff: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        try:
            await self.session.delivered_message_queue.put(HeldMessage(publish_packet, handoff))
            await handoff
            await self._send_packet(PubackPacket.build(publish_packet.packet_id))
        except Refused:
            log.debug("%s: a message the broker cannot hold now; closing", self._client_id)
            self._close()
        finally:
            self._held -= 1


def keepalive_with_grace(seconds: int) -> int:
    """The read timeout for a client's keepalive (0: none, as MQTT says)."""
    return math.ceil(seconds * KEEPALIVE_GRACE) if seconds > 0 else 0


async def close_quietly(writer: Any) -> None:
    with contextlib.suppress(Exception):
        await writer.close()


def abort(writer: Any) -> None:
    """Drop a connection now: no TLS close_notify to wait for (a client that stopped reading
    would hold a graceful close for half a minute), no buffered data sent."""
    transport = getattr(getattr(writer, "_writer", None), "transport", None)
    if transport is not None:
        transport.abort()
