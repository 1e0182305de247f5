"""What the hub does with each batch of uplink messages: route them by topic.

Telemetry goes to the ingestor in one call per batch; status messages update connectivity, state
messages the twin, command answers their command. The
batch returns (and the subscriber acknowledges it) only after both are durable.
"""

from fleetmind.commands.service import CommandService
from fleetmind.devices.service import DeviceService
from fleetmind.telemetry.ingest import Ingestor, Message
from fleetmind.transport.paho import Received
from fleetmind.twins.errors import TwinError
from fleetmind.twins.service import TwinService
from fleetmind.wire import messages, status, topics
from fleetmind.wire.errors import TopicError, WireError


class UplinkConsumer:
    def __init__(
        self,
        ingestor: Ingestor,
        devices: DeviceService,
        twins: TwinService,
        commands: CommandService,
    ) -> None:
        self._ingestor = ingestor
        self._devices = devices
        self._twins = twins
        self._commands = commands

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
