"""Twin use cases on the hub: read, patch desired (versioned), take reported state.

A change of desired asked for by someone (``by``) is recorded in the audit log here."""

import logging
from collections.abc import Callable

from fleetmind.audit.model import Actor
from fleetmind.audit.service import AuditService
from fleetmind.devices.service import DeviceService
from fleetmind.twins.errors import InvalidDocument, VersionConflict
from fleetmind.twins.model import Twin, check_document, merge_patch
from fleetmind.twins.store import TwinStore
from fleetmind.wire import messages, topics

log = logging.getLogger(__name__)

Publish = Callable[[str, bytes, bool], None]


class TwinService:
    def __init__(
        self,
        store: TwinStore,
        devices: DeviceService,
        publish: Publish,
        *,
        audit: AuditService | None = None,
    ) -> None:
        self._store = store
        self._devices = devices
        self._publish = publish
        #: where changes are recorded (None: nowhere, for tests of other domains)
        self._audit = audit

    def get(self, device_id: str) -> Twin:
        self._devices.get(device_id)  # DeviceNotFound for an unknown device
        return self._store.get(device_id)

    def patch_desired(
        self, device_id: str, patch: object, *, if_version: int | None, by: Actor | None = None
    ) -> Twin:
        """Merge ``patch`` into the desired document; refuse if ``if_version`` is stale.
        Recorded as ``twin.desired`` when ``by`` asked (None: the hub itself, not recorded)."""
        if not isinstance(patch, dict):
            raise InvalidDocument("a merge patch for a twin is a JSON object")
        current = self.get(device_id)
        if if_version is not None and if_version != current.desired_version:
            raise VersionConflict(
                f"desired is at version {current.desired_version}, not {if_version}"
            )
        desired = check_document(merge_patch(current.desired, patch))
        version = current.desired_version + 1
        self._store.replace_desired(device_id, desired, version)
        log.info("twin of %s: desired version %d", device_id, version)
        self._send(device_id, messages.Desired(version, desired))
        twin = self._store.get(device_id)
        if by is not None and self._audit is not None:
            detail = f"{device_id} desired version {twin.desired_version}"
            self._audit.record("twin.desired", by, detail=detail)
        return twin

    def reported(self, device_id: str, state: messages.State) -> None:
        """A device's state: keep it, and resend desired if the device is behind."""
        check_document(state.reported)
        self._store.replace_reported(device_id, state.reported, state.version)
        twin = self._store.get(device_id)
        if state.desired_version < twin.desired_version:
            self._send(device_id, messages.Desired(twin.desired_version, twin.desired))

    def forget(self, device_id: str) -> None:
        self._store.delete(device_id)

    def _send(self, device_id: str, desired: messages.Desired) -> None:
        # retained: a device that is offline now gets the newest version when it subscribes
        try:
            self._publish(topics.down(device_id, topics.Down.DESIRED), desired.encode(), True)
        except ConnectionError as exc:
            log.warning("desired for %s not sent now (%s); it syncs on reconnect", device_id, exc)
