"""Command use cases on the hub: send now, queue for an offline device, take the answer.

A command sent for someone (``by``) is recorded in the audit log here."""

import logging
import secrets
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from fleetmind.audit.model import Actor
from fleetmind.audit.service import AuditService
from fleetmind.commands.errors import DeviceOffline, InvalidCommand
from fleetmind.commands.model import NAME_PATTERN, CommandRecord, Status
from fleetmind.commands.store import CommandStore
from fleetmind.devices.service import DeviceService
from fleetmind.wire import messages, topics

log = logging.getLogger(__name__)

Publish = Callable[[str, bytes, bool], None]
MAX_ARGS_BYTES = 16 * 1024


class CommandService:
    def __init__(
        self,
        store: CommandStore,
        devices: DeviceService,
        publish: Publish,
        *,
        audit: AuditService | None = None,
    ) -> None:
        self._store = store
        self._devices = devices
        self._publish = publish
        #: where sent commands are recorded (None: nowhere, for tests of other domains)
        self._audit = audit

    def send(
        self,
        device_id: str,
        name: str,
        args: dict[str, Any],
        *,
        timeout_s: float,
        ttl_s: float,
        by: Actor | None = None,
    ) -> CommandRecord:
        """Send a command now, or queue it for ``ttl_s`` seconds if the device is offline
        (with ``ttl_s`` 0 an offline device is an error at once). Recorded as
        ``command.send`` when ``by`` asked."""
        if not NAME_PATTERN.fullmatch(name):
            raise InvalidCommand("a command name is 1-64 lowercase letters, digits and '_'")
        if len(messages.Command("x", name, args, 0).encode()) > MAX_ARGS_BYTES:
            raise InvalidCommand(f"command arguments exceed {MAX_ARGS_BYTES} bytes")
        device = self._devices.get(device_id)
        if not device.online and ttl_s <= 0:
            raise DeviceOffline(f"device {device_id!r} is offline")
        now = datetime.now(UTC)
        lifetime = timeout_s if device.online else ttl_s + timeout_s
        record = CommandRecord(
            id=secrets.token_hex(8),
            device_id=device_id,
            name=name,
            args=args,
            status=Status.QUEUED,
            created_at=now,
            expires_at=now + timedelta(seconds=lifetime),
        )
        self._store.add(record)
        if device.online:
            self._deliver(record)
        else:
            log.info("command %s for offline %s queued for %.0f s", name, device_id, ttl_s)
        if by is not None and self._audit is not None:
            self._audit.record("command.send", by, detail=f"{device_id} {name} {record.id}")
        return self._store.get(device_id, record.id)

    def get(self, device_id: str, command_id: str) -> CommandRecord:
        self._store.expire(datetime.now(UTC))
        return self._store.get(device_id, command_id)

    def device_online(self, device_id: str) -> None:
        """Deliver what waited for this device."""
        self._store.expire(datetime.now(UTC))
        for record in self._store.queued(device_id):
            self._deliver(record)

    def result(self, device_id: str, answer: messages.CommandResult) -> None:
        status = Status.SUCCEEDED if answer.ok else Status.FAILED
        if not self._store.complete(device_id, answer.id, status, answer.result, answer.error):
            log.info("late or unknown answer %s from %s ignored", answer.id, device_id)

    def forget(self, device_id: str) -> None:
        self._store.delete_device(device_id)

    def _deliver(self, record: CommandRecord) -> None:
        command = messages.Command(
            record.id, record.name, record.args, record.expires_at.timestamp()
        )
        try:
            self._publish(
                topics.down(record.device_id, topics.Down.COMMAND), command.encode(), False
            )
        except ConnectionError as exc:
            log.warning("command %s for %s stays queued: %s", record.id, record.device_id, exc)
            return
        self._store.set_status(record.id, Status.SENT)
