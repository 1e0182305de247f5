"""The agent's side of MQTT: one connection driven by the running asyncio loop.

paho is driven through its socket callbacks (no thread per client), so one process can run
thousands of agents (the simulator does).
"""

import asyncio
import contextlib
import ssl
from collections.abc import Callable
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import MQTTErrorCode

from fleetmind.transport.errors import TransportError
from fleetmind.transport.mqtt import Will
from fleetmind.transport.paho_common import new_client


class PahoClient:
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
        will: Will | None = None,
        tls: ssl.SSLContext | None = None,
        max_inflight: int = 100,
    ) -> None:
        self._client = new_client(client_id, clean=True)
        self._client.username_pw_set(username, password)
        if tls is not None:
            self._client.tls_set_context(tls)
        if will is not None:
            self._client.will_set(will.topic, will.payload, qos=1, retain=will.retain)
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
        """A clean disconnect: the broker does not publish the will. The DISCONNECT is written
        out before the socket is let go (a socket closed with it unsent looks like a crash)."""
        if self.closed.is_set():
            return
        self._client.disconnect()
        for _ in range(100):
            if self._sock is None or not self._client.want_write():
                break
            with contextlib.suppress(OSError):
                self._client.loop_write()
            await asyncio.sleep(0)
        sock = self._sock
        self._teardown()
        if sock is not None:
            sock.close()

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
