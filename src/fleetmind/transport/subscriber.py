"""The hub's side of MQTT: a subscriber that hands messages to a handler in batches.

It runs paho's threaded loop and a worker thread; the QoS 1 acknowledgement of each message is
sent only after the handler returned, that is after the batch is durable (paho's
``manual_ack``), and only on the connection the message came on.
"""

import logging
import ssl
import threading
import time
from collections.abc import Callable
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import MQTTErrorCode

from fleetmind.transport.address import BrokerAddress
from fleetmind.transport.backoff import Backoff
from fleetmind.transport.errors import TransportError
from fleetmind.transport.mqtt import Received
from fleetmind.transport.paho_common import configure, new_client

log = logging.getLogger(__name__)
#: acknowledgements sent under one hold of the subscriber's lock
_ACKS_AT_ONCE = 100


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
        self._client_id = client_id
        self._tls = tls
        self._client = self._new_client()
        self._worker = threading.Thread(target=self._run, name="mqtt-batches", daemon=True)

    def _new_client(self) -> mqtt.Client:
        client = new_client(self._client_id, clean=False, manual_ack=True)
        client.max_inflight_messages_set(65535)
        client.max_queued_messages_set(0)
        configure(client, self._address, self._tls)
        client.reconnect_delay_set(min_delay=1, max_delay=15)
        client.on_pre_connect = self._on_pre_connect
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        return client

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

    def publish(self, topic: str, payload: bytes, retain: bool = False, qos: int = 1) -> None:
        """Queue a message on this connection (QoS 1 unless said: a QoS 0 message costs no
        tracking); ConnectionError if the broker is away."""
        if not self._client.is_connected():
            raise TransportError("not connected to the broker")
        info = self._client.publish(topic, payload, qos=qos, retain=retain)
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
        # a new paho client: one restarted with loop_start() would leave its old socket pair
        self._client = self._new_client()
        self._client.connect_async(self._address.host, self._address.port, keepalive=30)
        self._client.loop_start()
