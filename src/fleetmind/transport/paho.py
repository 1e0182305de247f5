"""MQTT through paho-mqtt: a batching subscriber for the hub and an asyncio client for agents.

``BatchSubscriber`` runs paho's threaded loop and hands messages to a handler in batches on a
worker thread; the QoS 1 acknowledgement of each message is sent only after the handler returned,
that is after the batch is durable (paho's ``manual_ack``).

``AsyncClient`` drives paho from an asyncio loop through its socket callbacks (no thread per
client), so one process can run thousands of agents.
"""

import asyncio
import logging
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urlsplit

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode

from fleetmind.transport.backoff import Backoff

log = logging.getLogger(__name__)
#: acknowledgements sent under one hold of the subscriber's lock
_ACKS_AT_ONCE = 100


class TransportError(ConnectionError):
    """The broker refused us or the connection dropped."""


@dataclass(frozen=True, slots=True)
class BrokerAddress:
    host: str
    port: int
    username: str | None = None
    password: str | None = None
    tls: bool = False

    @classmethod
    def parse(cls, url: str) -> "BrokerAddress":
        """``mqtt://user:secret@host:1883`` or ``mqtts://host:8883``."""
        parts = urlsplit(url)
        if parts.scheme not in ("mqtt", "mqtts") or not parts.hostname:
            raise ValueError("broker URL must look like mqtt://host:port or mqtts://host:port")
        tls = parts.scheme == "mqtts"
        return cls(
            host=parts.hostname,
            port=parts.port or (8883 if tls else 1883),
            username=unquote(parts.username) if parts.username else None,
            password=unquote(parts.password) if parts.password else None,
            tls=tls,
        )

    def __repr__(self) -> str:  # never show the password
        return f"BrokerAddress({self.host}:{self.port}, user={self.username!r}, tls={self.tls})"


@dataclass(frozen=True, slots=True)
class Received:
    topic: str
    payload: bytes
    mid: int
    qos: int
    #: a retained message the broker replays at subscription (not a live one)
    retain: bool = False
    #: the connection it came on: an acknowledgement is only valid on that connection
    connection: int = 0


def _client(client_id: str, *, clean: bool, manual_ack: bool = False) -> mqtt.Client:
    return mqtt.Client(
        CallbackAPIVersion.VERSION2,
        client_id=client_id,
        clean_session=clean,
        protocol=mqtt.MQTTv311,
        manual_ack=manual_ack,
    )


def _configure(client: mqtt.Client, address: BrokerAddress, tls: ssl.SSLContext | None) -> None:
    if address.username is not None:
        client.username_pw_set(address.username, address.password)
    if tls is not None or address.tls:
        client.tls_set_context(tls or ssl.create_default_context())


class BatchSubscriber:
    """Subscribe to ``topic_filter`` and deliver messages to ``handler`` in batches.

    A batch closes when it holds ``max_batch`` messages or its first message waited ``max_wait``
    seconds. The broker keeps the session (clean session off), so messages published while the
    subscriber was away are delivered when it returns.

    Each message is acknowledged after ``handler`` returned, and only on the connection it came
    on (a message from an earlier connection is delivered again by the broker anyway). When
    ``handler`` raises, nothing of the batch is acknowledged: the subscriber is unhealthy,
    disconnects, waits (capped backoff) and connects again, and the broker delivers everything
    unacknowledged once more.
    """

    def __init__(
        self,
        address: BrokerAddress,
        topic_filter: str,
        handler: Callable[[list[Received]], None],
        *,
        client_id: str,
        max_batch: int = 5000,
        max_wait: float = 0.02,
        tls: ssl.SSLContext | None = None,
        backoff: Backoff | None = None,
    ) -> None:
        self._address = address
        self._filter = topic_filter
        self._handler = handler
        self._max_batch = max_batch
        self._max_wait = max_wait
        self._backoff = backoff or Backoff(initial=1.0, cap=30.0)
        self._pending: list[Received] = []
        self._condition = threading.Condition()
        self._stopping = False
        self._connection = 0
        #: why the last batch could not be taken (None: the last one was)
        self.failure: str | None = None
        self._connected = threading.Event()
        self._refused: str | None = None
        self._client = _client(client_id, clean=False, manual_ack=True)
        self._client.max_inflight_messages_set(65535)
        self._client.max_queued_messages_set(0)
        _configure(self._client, address, tls)
        self._client.reconnect_delay_set(min_delay=1, max_delay=15)
        self._client.on_pre_connect = self._on_pre_connect
        self._client.on_connect = self._on_connect
        self._client.on_disconnect = self._on_disconnect
        self._client.on_message = self._on_message
        self._worker = threading.Thread(target=self._run, name="mqtt-batches", daemon=True)

    def start(self, timeout: float = 15.0) -> None:
        """Connect and subscribe; raise TransportError if that fails within ``timeout``."""
        self._worker.start()
        deadline = time.monotonic() + timeout
        while True:
            try:
                self._client.connect(self._address.host, self._address.port, keepalive=30)
                break
            except OSError as exc:
                if time.monotonic() > deadline:
                    raise TransportError(f"cannot reach broker {self._address!r}: {exc}") from None
                time.sleep(0.2)
        self._client.loop_start()
        if not self._connected.wait(max(0.0, deadline - time.monotonic())):
            self.stop()
            raise TransportError(self._refused or f"broker {self._address!r} did not answer")

    @property
    def connected(self) -> bool:
        return self._client.is_connected()

    @property
    def healthy(self) -> bool:
        """Connected, and the last batch was taken."""
        return self.connected and self.failure is None

    def publish(self, topic: str, payload: bytes, retain: bool = False) -> None:
        """Queue a QoS 1 message on this connection; ConnectionError if the broker is away."""
        if not self._client.is_connected():
            raise TransportError("not connected to the broker")
        info = self._client.publish(topic, payload, qos=1, retain=retain)
        if info.rc != MQTTErrorCode.MQTT_ERR_SUCCESS:
            raise TransportError(f"publish failed: {mqtt.error_string(info.rc)}")

    def stop(self) -> None:
        with self._condition:
            self._stopping = True
            self._condition.notify_all()
        if self._worker.is_alive() and self._worker is not threading.current_thread():
            self._worker.join(timeout=10)
        self._client.disconnect()
        self._client.loop_stop()

    def _on_pre_connect(self, _client: mqtt.Client, _userdata: Any) -> None:
        # a new connection: messages of the old one are delivered again, their ids mean nothing
        with self._condition:
            self._connection += 1
            self._pending = []

    def _on_connect(
        self, client: mqtt.Client, _userdata: Any, _flags: Any, reason: Any, _props: Any
    ) -> None:
        if reason.is_failure:
            self._refused = f"broker refused the hub: {reason}"
            log.error("%s", self._refused)
            return
        client.subscribe(self._filter, qos=1)
        if self._connected.is_set():
            log.info("reconnected to broker %r", self._address)
        self._connected.set()

    def _on_disconnect(
        self, _client: mqtt.Client, _userdata: Any, _flags: Any, reason: Any, _props: Any
    ) -> None:
        if not self._stopping and self.failure is None:
            log.warning("lost the broker (%s); reconnecting", reason)

    def _on_message(self, _client: mqtt.Client, _userdata: Any, message: mqtt.MQTTMessage) -> None:
        with self._condition:
            received = Received(
                message.topic, bytes(message.payload), message.mid, message.qos,
                bool(message.retain), self._connection,
            )  # fmt: skip
            self._pending.append(received)
            if len(self._pending) == 1 or len(self._pending) >= self._max_batch:
                self._condition.notify()

    def _take(self) -> list[Received] | None:
        with self._condition:
            while not self._pending and not self._stopping:
                self._condition.wait()
            if not self._pending:
                return None
            deadline = time.monotonic() + self._max_wait
            while len(self._pending) < self._max_batch and not self._stopping:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self._condition.wait(remaining)
            batch, self._pending = (
                self._pending[: self._max_batch],
                self._pending[self._max_batch :],
            )
            return batch

    def _run(self) -> None:
        while (batch := self._take()) is not None:
            try:
                self._handler(batch)
            except Exception as exc:  # noqa: BLE001 - any failure: nothing was committed
                self._failed(len(batch), exc)
                continue
            if self.failure is not None:
                log.info("ingest recovered: batches are committed again")
                self.failure = None
                self._backoff.reset()
            for start in range(0, len(batch), _ACKS_AT_ONCE):
                # no new connection may start between the check and the ack; the lock is let go
                # between chunks so that paho's thread keeps reading meanwhile
                with self._condition:
                    for message in batch[start : start + _ACKS_AT_ONCE]:
                        if message.qos > 0 and message.connection == self._connection:
                            self._client.ack(message.mid, message.qos)

    def _failed(self, count: int, error: Exception) -> None:
        """A batch could not be committed: leave it unacknowledged, go away for a while, and come
        back, so the broker delivers it (and what followed it) again."""
        if self.failure is None:
            log.error(
                "a batch of %d messages could not be committed; disconnecting, the broker will"
                " deliver it again", count, exc_info=error,
            )  # fmt: skip
        self.failure = f"{type(error).__name__}: {error}"
        self._client.disconnect()
        self._client.loop_stop()
        with self._condition:
            self._pending = []
            self._condition.wait_for(lambda: self._stopping, self._backoff.next_delay())
            if self._stopping:
                return
        self._client.connect_async(self._address.host, self._address.port, keepalive=30)
        self._client.loop_start()


class AsyncClient:
    """One MQTT connection driven by the running asyncio loop.

    ``publish`` returns when the broker acknowledged (QoS 1); if the connection drops first, it
    raises :class:`TransportError` and the caller keeps the message for later.
    """

    def __init__(
        self,
        *,
        client_id: str,
        username: str,
        password: str,
        will: tuple[str, bytes] | None = None,
        tls: ssl.SSLContext | None = None,
        max_inflight: int = 100,
    ) -> None:
        self._client = _client(client_id, clean=True)
        self._client.username_pw_set(username, password)
        if tls is not None:
            self._client.tls_set_context(tls)
        if will is not None:
            self._client.will_set(will[0], will[1], qos=1, retain=True)
        self._client.max_inflight_messages_set(max_inflight)
        self._client.on_connect = self._on_connect
        self._client.on_disconnect = self._on_disconnect
        self._client.on_publish = self._on_publish
        self._client.on_message = self._on_message
        # connect() runs in a worker thread, so the socket is watched once it returns (_watch)
        self._client.on_socket_close = self._on_socket_close
        self._client.on_socket_register_write = self._on_register_write
        self._client.on_socket_unregister_write = self._on_unregister_write
        self._loop: asyncio.AbstractEventLoop | None = None
        self._connected: asyncio.Future[None] | None = None
        self._acks: dict[int, asyncio.Future[None]] = {}
        self._misc: asyncio.Task[None] | None = None
        self._sock: Any = None
        self.on_message: Callable[[str, bytes], None] | None = None
        self.closed = asyncio.Event()

    async def connect(self, host: str, port: int, *, keepalive: int = 30) -> None:
        self._loop = asyncio.get_running_loop()
        self._connected = self._loop.create_future()
        self.closed.clear()
        try:
            # connect() does a blocking TCP (and TLS) handshake; keep it off the event loop.
            await asyncio.to_thread(self._client.connect, host, port, keepalive)
        except OSError as exc:
            raise TransportError(f"cannot reach broker {host}:{port}: {exc}") from None
        self._watch(self._client.socket())
        try:
            await asyncio.wait_for(self._connected, timeout=15)
        except TimeoutError:
            self._client.disconnect()
            raise TransportError("broker did not answer CONNECT") from None

    async def publish(
        self, topic: str, payload: bytes, *, qos: int = 1, retain: bool = False
    ) -> None:
        if self._loop is None or self.closed.is_set():
            raise TransportError("not connected")
        info = self._client.publish(topic, payload, qos=qos, retain=retain)
        if info.rc not in (MQTTErrorCode.MQTT_ERR_SUCCESS, MQTTErrorCode.MQTT_ERR_QUEUE_SIZE):
            raise TransportError(f"publish failed: {mqtt.error_string(info.rc)}")
        if qos == 0:
            return
        future = self._loop.create_future()
        self._acks[info.mid] = future
        await future

    async def subscribe(self, topic_filter: str, qos: int = 1) -> None:
        self._client.subscribe(topic_filter, qos)

    async def disconnect(self) -> None:
        """A clean disconnect: the broker does not publish the will."""
        if not self.closed.is_set():
            self._client.disconnect()
            self._teardown()

    def abort(self) -> None:
        """Drop the connection without DISCONNECT (the broker publishes the will)."""
        sock = self._sock
        self._teardown()
        if sock is not None:
            sock.close()

    # -- paho callbacks ---------------------------------------------------------------------

    def _on_connect(self, _c: mqtt.Client, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
        if self._connected is None or self._connected.done():
            return
        if reason.is_failure:
            self._connected.set_exception(TransportError(f"broker refused: {reason}"))
        else:
            self._connected.set_result(None)

    def _on_disconnect(self, _c: mqtt.Client, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
        if self._connected is not None and not self._connected.done():
            self._connected.set_exception(TransportError(f"broker closed: {reason}"))
        self._teardown()

    def _on_publish(self, _c: mqtt.Client, _u: Any, mid: int, _reason: Any, _p: Any) -> None:
        future = self._acks.pop(mid, None)
        if future is not None and not future.done():
            future.set_result(None)

    def _on_message(self, _c: mqtt.Client, _u: Any, message: mqtt.MQTTMessage) -> None:
        if self.on_message is not None:
            self.on_message(message.topic, bytes(message.payload))

    def _watch(self, sock: Any) -> None:
        assert self._loop is not None  # noqa: S101 - set by connect()
        self._sock = sock
        self._loop.add_reader(sock, self._client.loop_read)
        if self._client.want_write():
            self._loop.add_writer(sock, self._client.loop_write)
        self._misc = self._loop.create_task(self._housekeeping(), name="mqtt-misc")

    def _on_socket_close(self, _c: mqtt.Client, _u: Any, _sock: Any) -> None:
        self._unwatch()

    def _on_register_write(self, _c: mqtt.Client, _u: Any, sock: Any) -> None:
        if self._loop is not None and self._sock is sock:
            self._loop.add_writer(sock, self._client.loop_write)

    def _on_unregister_write(self, _c: mqtt.Client, _u: Any, sock: Any) -> None:
        if self._loop is not None and self._sock is sock:
            self._loop.remove_writer(sock)

    def _unwatch(self) -> None:
        if self._sock is not None and self._loop is not None and not self._loop.is_closed():
            self._loop.remove_reader(self._sock)
            self._loop.remove_writer(self._sock)
        self._sock = None

    async def _housekeeping(self) -> None:
        while self._client.loop_misc() == MQTTErrorCode.MQTT_ERR_SUCCESS:  # noqa: ASYNC110 - a tick
            await asyncio.sleep(1)
        self._teardown()

    def _teardown(self) -> None:
        if self.closed.is_set():
            return
        self.closed.set()
        self._unwatch()
        if self._misc is not None and self._misc is not asyncio.current_task():
            self._misc.cancel()
        self._misc = None
        acks, self._acks = self._acks, {}
        for future in acks.values():
            if not future.done():
                future.set_exception(TransportError("connection lost before the broker acked"))
