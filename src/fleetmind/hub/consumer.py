"""What the hub does with each batch of uplink messages: route them by topic.

Telemetry goes to the ingestor in one call per batch; status messages update connectivity, state
messages the twin, command answers their command. The
batch returns (and the subscriber acknowledges it) only after both are durable.
"""

import contextlib
from collections.abc import Callable

from fleetmind.audit.model import Outcome
from fleetmind.audit.service import AuditService
from fleetmind.commands.service import CommandService
from fleetmind.devices.errors import DeviceError
from fleetmind.devices.service import DeviceService
from fleetmind.telemetry.ingest import Ingestor, Message
from fleetmind.transport.paho import Received
from fleetmind.twins.errors import TwinError
from fleetmind.twins.service import TwinService
from fleetmind.wire import messages, status, topics
from fleetmind.wire.errors import TopicError, WireError

#: publishes (topic, payload, retain) to the broker
Publish = Callable[[str, bytes, bool], None]


class UplinkConsumer:
    def __init__(
        self,
        ingestor: Ingestor,
        devices: DeviceService,
        twins: TwinService,
        commands: CommandService,
        audit: AuditService,
        publish: Publish,
    ) -> None:
        self._ingestor = ingestor
        self._devices = devices
        self._twins = twins
        self._commands = commands
        self._audit = audit
        self._publish = publish

    def __call__(self, batch: list[Received]) -> None:
        telemetry: list[Message] = []
        for message in batch:
            try:
                topic = topics.parse(message.topic)
            except TopicError as exc:
                self._ingestor.reject("?", exc)
                continue
            if topic.direction is not topics.Direction.UP:
                self._ingestor.reject(topic.device_id, TopicError("not an uplink topic"))
                continue
            if topic.kind == "telemetry":
                telemetry.append(Message(topic.device_id, message.payload))
            elif topic.kind == "status":
                self._status(topic.device_id, message.payload)
            elif topic.kind == messages.STATE:
                self._state(topic.device_id, message.payload)
            elif topic.kind == messages.COMMAND_RESULT:
                self._command_result(topic.device_id, message.payload)
            elif topic.kind == messages.CSR:
                self._renew(topic.device_id, message.payload)
            else:
                self._ingestor.reject(
                    topic.device_id, TopicError(f"unknown uplink kind {topic.kind[:50]!r}")
                )
        seen = self._ingestor.ingest(telemetry)
        self._devices.seen(seen)

    def _state(self, device_id: str, payload: bytes) -> None:
        try:
            self._twins.reported(device_id, messages.State.decode(payload))
        except WireError as exc:
            self._ingestor.reject(device_id, exc)
        except TwinError as exc:
            self._ingestor.reject(device_id, WireError(str(exc), reason="twin"))

    def _command_result(self, device_id: str, payload: bytes) -> None:
        try:
            self._commands.result(device_id, messages.CommandResult.decode(payload))
        except WireError as exc:
            self._ingestor.reject(device_id, exc)

    def _renew(self, device_id: str, payload: bytes) -> None:
        """A device renews its certificate over its own connection (the broker vouches for who
        it is); the answer goes to its ``down/certificate``."""
        try:
            renewal = messages.Renewal.decode(payload)
        except WireError as exc:
            self._ingestor.reject(device_id, exc)
            return
        try:
            issued = self._devices.renew(device_id, renewal.csr.encode())
        except DeviceError as exc:
            answer = messages.Certificate(None, str(exc))
            self._audit.record("certificate.renew", actor=device_id, source="mqtt",
                               outcome=Outcome.FAILURE, detail=str(exc))  # fmt: skip
        else:
            answer = messages.Certificate(issued.pem.decode())
            self._audit.record("certificate.renew", actor=device_id, source="mqtt",
                               detail=f"serial {issued.serial}")  # fmt: skip
        with contextlib.suppress(ConnectionError):  # the device asks again after reconnecting
            self._publish(topics.down(device_id, messages.CERTIFICATE), answer.encode(), False)

    def _status(self, device_id: str, payload: bytes) -> None:
        if not payload:  # a cleared retained message
            return
        try:
            update = status.decode(payload)
        except WireError as exc:
            self._ingestor.reject(device_id, exc)
            return
        self._devices.status_changed(
            device_id, online=update.state == "online", boot_id=update.boot
        )
