"""What the hub does with each batch of uplink messages: route them by topic.

Telemetry goes to the ingestor in one call per batch; status messages update connectivity, state
messages the twin, command answers their command; CSRs go to the renewal queue, signed beside
ingest, so a batch does not wait for a certificate. The batch returns (and the subscriber
acknowledges it) only after all of it is durable.

No message stops the batch. A message that cannot be taken is refused with a counted reason
(kept per device, and the device hears of it on ``down/reject``, at most once a minute per kind
and reason); only an outage of a store (it cannot commit now) goes up, so that nothing of the
batch is acknowledged and the broker delivers it again.

Retained messages are replayed by the broker at every subscription: only ``up/status`` is
meant to be retained (the birth and the last will); a retained telemetry pack, state or event
was taken when it was first delivered and is refused when it comes again.
"""

import contextlib
import logging
import threading
import time
from collections.abc import Callable

import sqlalchemy as sa

from fleetmind.commands.service import CommandService
from fleetmind.devices.errors import DeviceError
from fleetmind.devices.renewal import RenewalQueue
from fleetmind.devices.service import DeviceService
from fleetmind.telemetry.errors import StoreUnavailable
from fleetmind.telemetry.ingest import Ingestor, Message
from fleetmind.transport.mqtt import Received
from fleetmind.transport.ratelimit import TokenBucket
from fleetmind.twins.errors import TwinError
from fleetmind.twins.service import TwinService
from fleetmind.wire import messages, status, topics
from fleetmind.wire.errors import TopicError, WireError

log = logging.getLogger(__name__)

#: publishes (topic, payload, retain) to the broker
Publish = Callable[[str, bytes, bool], None]
#: seconds between two notices to a device about the same kind and reason of refusal
NOTICE_INTERVAL_S = 60.0
#: notices to all devices together, at most, per second (what a flood of refusals may cost)
NOTICES_PER_S = 20.0
_MAX_NOTICES = 100_000
#: the kind under which refusals of kinds FleetMind does not define are counted (a device
#: could otherwise make up a new counter with every message)
UNKNOWN = "unknown"


def is_outage(error: BaseException) -> bool:
    """True for a store that cannot commit now (not for something a message held)."""
    if isinstance(error, StoreUnavailable | sa.exc.OperationalError | sa.exc.InterfaceError):
        return True
    return isinstance(error, sa.exc.DBAPIError) and error.connection_invalidated


class UplinkConsumer:
    def __init__(
        self,
        ingestor: Ingestor,
        devices: DeviceService,
        twins: TwinService,
        commands: CommandService,
        renewals: RenewalQueue,
        notify: Publish,
    ) -> None:
        """``notify`` sends a device its refusal notices (QoS 0)."""
        self._ingestor = ingestor
        self._rejects = devices.rejects
        self._devices = devices
        self._twins = twins
        self._commands = commands
        self._renewals = renewals
        self._notify_device = notify
        self._handlers: dict[str, Callable[[str, bytes], None]] = {
            topics.Up.STATUS: self._status,
            topics.Up.STATE: self._state,
            topics.Up.COMMAND_RESULT: self._command_result,
            topics.Up.CSR: self._renew,
        }
        self._noticed: dict[tuple[str, str, str], float] = {}
        self._notices = TokenBucket(NOTICES_PER_S, int(NOTICES_PER_S))
        self._notices_lock = threading.Lock()  # the hub's subscribers share this consumer

    def __call__(self, batch: list[Received]) -> None:
        telemetry: list[Message] = []
        for message in batch:
            try:
                topic = topics.parse(message.topic)
            except TopicError as exc:
                self._rejects.record("?", "topic", exc.reason, str(exc), len(message.payload))
                continue
            if topic.direction is not topics.Direction.UP:  # the broker's ACL lets none through
                self._rejects.record(topic.device_id, "topic", "topic", "not an uplink topic")
                continue
            device_id, kind, size = topic.device_id, topic.known, len(message.payload)
            if kind is None:
                detail = f"no uplink kind {topic.kind[:50]!r}"
                self._refuse(device_id, UNKNOWN, "topic", detail, size)
            elif message.retain and kind != topics.Up.STATUS:
                self._refuse(device_id, kind, "retained", "a retained message comes again at "
                             "every subscription; it was taken when first sent", size)  # fmt: skip
            elif kind == topics.Up.TELEMETRY:
                telemetry.append(Message(device_id, message.payload))
            else:
                self._guarded(device_id, kind, message, self._handlers[kind])
        ingested = self._ingestor.ingest(telemetry)
        for refused in ingested.refused:
            device_id, size = refused.message.device_id, len(refused.message.payload)
            self._refuse(device_id, topics.Up.TELEMETRY, refused.reason, refused.detail, size,
                         error=refused.error)  # fmt: skip
        self._devices.seen(ingested.seen)

    def _guarded(
        self, device_id: str, kind: str, message: Received, handle: Callable[[str, bytes], None]
    ) -> None:
        """Handle one message; whatever it makes fail is refused, unless a store is out."""
        size = len(message.payload)
        try:
            handle(device_id, message.payload)
        except WireError as exc:
            self._refuse(device_id, kind, exc.reason, str(exc), size)
        except (TwinError, DeviceError) as exc:
            self._refuse(device_id, kind, "invalid", str(exc), size)
        except Exception as exc:
            if is_outage(exc):
                raise
            self._refuse(device_id, kind, "internal", f"could not be handled: {exc!r}", size,
                         error=exc)  # fmt: skip

    def _refuse(
        self,
        device_id: str,
        kind: str,
        reason: str,
        detail: str,
        size: int,
        *,
        error: BaseException | None = None,
    ) -> None:
        self._rejects.record(device_id, kind, reason, detail, size, error=error)
        self._notify(device_id, kind, reason, detail)

    def _notify(self, device_id: str, kind: str, reason: str, detail: str) -> None:
        """``down/reject`` to the device, at most once per ``NOTICE_INTERVAL_S`` per kind and
        reason (a device that sends garbage in a loop gets no flood back)."""
        key = (device_id, kind, reason)
        now = time.monotonic()
        with self._notices_lock:
            if now - self._noticed.get(key, -NOTICE_INTERVAL_S) < NOTICE_INTERVAL_S:
                return
            if not self._notices.try_take():
                return
            if len(self._noticed) >= _MAX_NOTICES:
                self._noticed.clear()
            self._noticed[key] = now
        notice = messages.Rejected(kind, reason, detail[:500])
        with contextlib.suppress(ConnectionError):  # a notice is a courtesy, not a promise
            self._notify_device(topics.down(device_id, topics.Down.REJECT), notice.encode(), False)

    def _state(self, device_id: str, payload: bytes) -> None:
        self._twins.reported(device_id, messages.State.decode(payload))

    def _command_result(self, device_id: str, payload: bytes) -> None:
        self._commands.result(device_id, messages.CommandResult.decode(payload))

    def _renew(self, device_id: str, payload: bytes) -> None:
        """A device renews its certificate over its own connection (the broker vouches for who
        it is); the answer goes to its ``down/certificate`` once signed."""
        renewal = messages.Renewal.decode(payload)
        if not self._renewals.submit(device_id, renewal.csr.encode()):
            detail = "a renewal of this device is already waiting; ask again later"
            self._refuse(device_id, topics.Up.CSR, "busy", detail, len(payload))

    def _status(self, device_id: str, payload: bytes) -> None:
        if not payload:  # a cleared retained message
            return
        update = status.decode(payload)
        self._devices.status_changed(
            device_id, online=update.state == "online", boot_id=update.boot
        )
