"""Uplink messages on their way from devices to the hub, inside the embedded broker.

Every message a device publishes under its ``up/`` tree joins one queue. Hub connections that
subscribed to the whole uplink tree take from it (several share the load, as a shared
subscription would); each message is sent to one of them with QoS 1 and stays in flight until
that connection acknowledges it, which the hub does only after committing it. Only then is the
device's own PUBACK released (:mod:`.connections`). A hub connection that goes away puts what it
had in flight back at the front of the queue, for the next one; to the same persistent session
a message goes again under its first packet id, as MQTT asks.

The queue is in memory and needs no disk: nothing in it was acknowledged to its device. It is
bounded in bytes: while the hub is away or behind and the queue is full, a QoS 0 message or a
will is dropped and counted, and a QoS 1 message is refused (its PUBACK never comes; the device
sends it again later). Held in flight to the hub, messages do not count against the bound.
"""

import asyncio
import functools
import logging
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from amqtt.mqtt.constants import QOS_1
from amqtt.mqtt.publish import PublishPacket
from amqtt.session import Session

from fleetmind.hub.broker.connections import release

log = logging.getLogger(__name__)

_PACKET_ID = "fleetmind.hub_link.packet_id"
#: bytes written to a hub connection at once
_BURST = 256 * 1024


@dataclass(eq=False, slots=True)
class Uplink:
    topic: str
    data: bytes
    #: the device's held message, released when the hub has this one (None: QoS 0, a will)
    source: Any = None
    #: the hub session it went to last, and under which packet id
    session: Session | None = None
    packet_id: int = 0


@dataclass(eq=False)
class _Consumer:
    session: Session
    handler: Any
    inflight: dict[int, Uplink] = field(default_factory=dict)
    room: asyncio.Event = field(default_factory=asyncio.Event)
    task: "asyncio.Task[None] | None" = None
    attached: bool = True


def _size(uplink: Uplink) -> int:
    return len(uplink.topic) + len(uplink.data)


class HubLink:
    def __init__(self, max_inflight: int = 10_000, max_queued_bytes: int = 256 * 1024**2) -> None:
        self._max_inflight = max_inflight
        self._max_queued_bytes = max_queued_bytes
        self._queue: deque[Uplink] = deque()
        self._queued_bytes = 0
        #: messages refused since the queue was last full (None: it is not full)
        self._refused: int | None = None
        self._ready = asyncio.Event()
        self._consumers: dict[Any, _Consumer] = {}

    def __len__(self) -> int:
        """Messages waiting for a hub connection (not those in flight)."""
        return len(self._queue)

    @property
    def consumers(self) -> int:
        return len(self._consumers)

    @property
    def queued_bytes(self) -> int:
        return self._queued_bytes

    def offer(self, uplink: Uplink) -> bool:
        """Queue ``uplink`` if there is room for it; False (counted) if the queue is full."""
        if self._queued_bytes + _size(uplink) > self._max_queued_bytes:
            if self._refused is None:
                self._refused = 0
                log.warning(
                    "%d bytes of uplink wait for the hub, the most the broker holds; "
                    "more is refused until the hub catches up",
                    self._queued_bytes,
                )
            self._refused += 1
            return False
        self.put(uplink)
        return True

    def put(self, uplink: Uplink) -> None:
        """Queue ``uplink`` whatever the bound (a retained message replayed to the hub)."""
        self._queue.append(uplink)
        self._queued_bytes += _size(uplink)
        self._ready.set()

    def _take(self) -> Uplink:
        uplink = self._queue.popleft()
        self._queued_bytes -= _size(uplink)
        if self._refused is not None and self._queued_bytes <= self._max_queued_bytes // 2:
            log.warning("uplink is taken again; %d messages were refused", self._refused)
            self._refused = None
        return uplink

    def attach(self, session: Session, handler: Any) -> None:
        """A hub connection subscribed to the uplink tree: it takes messages from now on."""
        if handler in self._consumers:
            return
        consumer = _Consumer(session, handler)
        consumer.room.set()
        consumer.task = asyncio.get_running_loop().create_task(
            self._pump(consumer), name=f"hub-link/{session.client_id}"
        )
        self._consumers[handler] = consumer
        log.info("hub connection %s takes the uplink (%d waiting)", session.client_id, len(self))

    def detach(self, handler: Any) -> None:
        """A hub connection ended: what it had in flight goes to the front of the queue."""
        consumer = self._consumers.pop(handler, None)
        if consumer is None:
            return
        consumer.attached = False
        if consumer.task is not None:
            consumer.task.cancel()
        unacknowledged = list(consumer.inflight.values())
        consumer.inflight.clear()
        self._queue.extendleft(reversed(unacknowledged))
        self._queued_bytes += sum(map(_size, unacknowledged))
        if self._queue:
            self._ready.set()
        if unacknowledged:
            log.info("hub connection %s left %d unacknowledged; they go again",
                     consumer.session.client_id, len(unacknowledged))  # fmt: skip

    async def _pump(self, consumer: _Consumer) -> None:
        try:
            await self._send_all(consumer)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception(
                "sending to hub connection %s failed; closing it", consumer.session.client_id
            )
            self.detach(consumer.handler)
            if consumer.handler.writer is not None:
                await consumer.handler.writer.close()

    async def _send_all(self, consumer: _Consumer) -> None:
        """Send what waits, a burst at a time: one write and one drain per burst, not per
        message (the broker shares its core with the hub)."""
        while True:
            if not self._queue:
                self._ready.clear()
                await self._ready.wait()
                continue
            if len(consumer.inflight) >= self._max_inflight:
                consumer.room.clear()
                await consumer.room.wait()
                continue
            burst = bytearray()
            while (
                self._queue and len(consumer.inflight) < self._max_inflight and len(burst) < _BURST
            ):
                burst += self._packet(consumer, self._take())
            handler = consumer.handler
            async with handler._write_lock:
                handler.writer.write(bytes(burst))
                await handler.writer.drain()

    def _packet(self, consumer: _Consumer, uplink: Uplink) -> bytes:
        """The PUBLISH of ``uplink`` to ``consumer``, in flight from now on."""
        again = uplink.session is consumer.session and uplink.packet_id not in consumer.inflight
        packet_id = uplink.packet_id if again else self._next_id(consumer)
        dup = uplink.session is not None
        packet = PublishPacket.build(uplink.topic, uplink.data, packet_id, dup, QOS_1, False)
        data: bytes = packet.to_bytes()  # first: a message that cannot be built changes nothing
        waiter: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        consumer.handler._puback_waiters[packet_id] = waiter
        consumer.inflight[packet_id] = uplink
        waiter.add_done_callback(functools.partial(self._acknowledged, consumer, packet_id))
        uplink.session, uplink.packet_id = consumer.session, packet_id
        return data

    def _next_id(self, consumer: _Consumer) -> int:
        attributes = consumer.session.attributes
        packet_id = int(attributes.get(_PACKET_ID, 0))
        while True:
            packet_id = packet_id % 65535 + 1
            if packet_id not in consumer.inflight:
                attributes[_PACKET_ID] = packet_id
                return packet_id

    def _acknowledged(
        self, consumer: _Consumer, packet_id: int, waiter: "asyncio.Future[Any]"
    ) -> None:
        consumer.handler._puback_waiters.pop(packet_id, None)
        if waiter.cancelled() or not consumer.attached:
            return  # the connection went away; detach() put the message back in the queue
        uplink = consumer.inflight.pop(packet_id, None)
        if uplink is not None:
            release(uplink.source)
        consumer.room.set()
