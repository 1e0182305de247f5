"""The uplink: keeps one MQTT connection up and drains the outbox through it.

Packs are published with QoS 1, up to ``max_inflight`` at a time, in outbox order, no faster than
a token bucket allows (a backlog replays quickly but does not flatten the hub); a pack leaves
the outbox only when the broker acknowledged it. Acknowledgements that arrive together are
forgotten in one transaction. After a reconnect every unacknowledged pack is
sent again; the hub recognises repeats by (device, boot, seq).
"""

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any

from fleetmind.agent.credentials import Credentials
from fleetmind.agent.outbox import Entry, Outbox
from fleetmind.transport.backoff import Backoff
from fleetmind.transport.errors import TransportError
from fleetmind.transport.mqtt import Connector, MqttClient, Will
from fleetmind.transport.paho_client import PahoClient
from fleetmind.transport.ratelimit import TokenBucket
from fleetmind.wire import status, topics

log = logging.getLogger(__name__)


@dataclass(slots=True)
class UplinkStats:
    packs_sent: int = 0
    publish_failures: int = 0
    connects: int = 0
    #: publish-to-acknowledgement time, smoothed (the link's quality as the agent sees it)
    ack_ms: float = 0.0


async def _first(*events: asyncio.Event) -> None:
    waiters = [asyncio.create_task(event.wait()) for event in events]
    try:
        await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            waiter.cancel()


class Uplink:
    def __init__(
        self,
        credentials: Credentials,
        outbox: Outbox,
        *,
        boot_id: str,
        max_inflight: int = 20,
        backoff: Backoff | None = None,
        replay_rate: float = 200.0,
        replay_burst: int = 400,
        connector: Connector = PahoClient,
    ) -> None:
        """``connector`` makes the MQTT client of each connection attempt (paho over the
        network; a loopback broker's in unit tests)."""
        self._connector = connector
        self._credentials = credentials
        self._tls = credentials.ssl_context()
        self._outbox = outbox
        self._boot_id = boot_id
        self._max_inflight = max_inflight
        self._backoff = backoff or Backoff()
        self._bucket = TokenBucket(replay_rate, replay_burst)
        self._hooks: set[asyncio.Task[None]] = set()
        #: connect only to flush the outbox, then disconnect until the next pack (battery saving)
        self.duty_cycle = False
        self._client: MqttClient | None = None
        self._acked: list[int] = []
        self.stats = UplinkStats()
        self.connected = asyncio.Event()
        #: what the hub sent to this device (down/...), as (topic, payload)
        self.inbox: asyncio.Queue[tuple[str, bytes]] = asyncio.Queue(maxsize=1000)
        #: called (as a task) after every connect, e.g. to report state
        self.on_connect: Callable[[], Coroutine[Any, Any, None]] | None = None

    @property
    def credentials(self) -> Credentials:
        return self._credentials

    @property
    def _device_id(self) -> str:
        return self._credentials.username

    async def run(self) -> None:
        """Connect, drain, reconnect: forever, until cancelled."""
        down_since_logged = False
        while True:
            client = self._connector(
                client_id=self._device_id,
                username=self._device_id,
                password=self._credentials.password,
                will=Will(
                    topics.status(self._device_id),
                    status.encode(status.Status("offline", self._boot_id)),
                ),
                tls=self._tls,
                max_inflight=self._max_inflight,
            )
            client.on_message = self._received
            try:
                await client.connect(self._credentials.host, self._credentials.port)
                await client.subscribe(f"{topics.device_prefix(self._device_id)}/down/#")
                # the hub may answer the birth (queued commands) before its acknowledgement
                # arrives: what it sends must find the connection ready to reply
                self._client = client
                await client.publish(
                    topics.status(self._device_id),
                    status.encode(status.Status("online", self._boot_id)),
                    retain=True,
                )
            except TransportError as exc:
                self._client = None
                if not down_since_logged:
                    log.warning("%s: uplink down (%s); retrying with backoff", self._device_id, exc)
                    down_since_logged = True
                client.abort()
                await asyncio.sleep(self._backoff.next_delay())
                continue
            if down_since_logged:
                log.info("%s: uplink up again", self._device_id)
                down_since_logged = False
            self._backoff.reset()
            self.stats.connects += 1
            self.connected.set()
            if self.on_connect is not None:
                hook = asyncio.create_task(self.on_connect(), name=f"{self._device_id}/on-connect")
                self._hooks.add(hook)
                hook.add_done_callback(self._hooks.discard)
            try:
                await self._drain(client)
                if self.duty_cycle and not client.closed.is_set():
                    await self.close()  # flushed: sleep until the next pack
                    self._outbox.changed.clear()
                    await self._outbox.changed.wait()
            finally:
                self.connected.clear()
                self._client = None
                client.abort()

    async def send(self, topic: str, payload: bytes) -> None:
        """Publish outside the outbox (state, command answers); TransportError when offline."""
        client = self._client
        if client is None:
            raise TransportError("not connected")
        await client.publish(topic, payload)

    def replace_credentials(self, credentials: Credentials) -> None:
        """Connect with ``credentials`` from now on (a renewed certificate): reconnect."""
        self._credentials = credentials
        self._tls = credentials.ssl_context()
        if self._client is not None:
            self._client.abort()

    def new_boot(self, boot_id: str) -> None:
        """Start a new session under ``boot_id`` (a simulated reboot): reconnect with it."""
        self._boot_id = boot_id
        if self._client is not None:
            self._client.abort()

    def _received(self, topic: str, payload: bytes) -> None:
        try:
            self.inbox.put_nowait((topic, payload))
        except asyncio.QueueFull:
            log.warning("%s: downlink inbox full; dropped a message on %s", self._device_id, topic)

    async def close(self) -> None:
        """Say goodbye: publish offline (a clean disconnect does not fire the will)."""
        client = self._client
        if client is None:
            return
        with contextlib.suppress(TransportError, TimeoutError):
            await asyncio.wait_for(
                client.publish(
                    topics.status(self._device_id),
                    status.encode(status.Status("offline", self._boot_id)),
                    retain=True,
                ),
                timeout=5,
            )
        await client.disconnect()

    async def _drain(self, client: MqttClient) -> None:
        cursor = -1
        window = asyncio.Semaphore(self._max_inflight)
        sending: set[asyncio.Task[None]] = set()
        topic = topics.telemetry(self._device_id)
        while not client.closed.is_set():
            self._outbox.changed.clear()
            for entry in self._outbox.pending(after=cursor, limit=self._max_inflight):
                await self._bucket.take()
                await window.acquire()
                if client.closed.is_set():
                    window.release()
                    break
                cursor = entry.id
                task = asyncio.create_task(self._send(client, topic, entry, window))
                sending.add(task)
                task.add_done_callback(sending.discard)
            else:
                if self.duty_cycle and not sending and not len(self._outbox):
                    return
                await _first(self._outbox.changed, client.closed)
        for task in sending:
            task.cancel()

    def _forget_acked(self) -> None:
        acked, self._acked = self._acked, []
        self._outbox.ack(*acked)

    async def _send(
        self, client: MqttClient, topic: str, entry: Entry, window: asyncio.Semaphore
    ) -> None:
        try:
            self.stats.packs_sent += 1
            started = time.monotonic()
            await client.publish(topic, entry.payload)
            if not self._acked:
                asyncio.get_running_loop().call_soon(self._forget_acked)
            self._acked.append(entry.id)
            took = (time.monotonic() - started) * 1000
            self.stats.ack_ms = (
                took if not self.stats.ack_ms else 0.9 * self.stats.ack_ms + 0.1 * took
            )
        except TransportError:
            self.stats.publish_failures += 1  # stays in the outbox; sent again after reconnect
        finally:
            window.release()
