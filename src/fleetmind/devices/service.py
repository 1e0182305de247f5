"""Registry use cases on the hub: add, list, get, delete devices; connectivity; broker files."""

import logging
import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from fleetmind.devices import model
from fleetmind.devices.errors import InvalidDevice
from fleetmind.devices.model import Device
from fleetmind.devices.store import DeviceStore
from fleetmind.wire import topics
from fleetmind.wire.errors import TopicError

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class NewDevice:
    """A device just created, with its secret: the only moment the secret exists in clear."""

    device: Device
    secret: str


class DeviceService:
    def __init__(
        self,
        store: DeviceStore,
        *,
        on_credentials_changed: Callable[[], None] | None = None,
        on_deleted: Callable[[str], None] | None = None,
        on_online: Callable[[str], None] | None = None,
    ) -> None:
        self._store = store
        self._on_credentials_changed = on_credentials_changed
        self._on_deleted = on_deleted
        self._on_online = on_online

    def add(self, name: str) -> NewDevice:
        try:
            device_id = topics.check_device_id(name)
        except TopicError as exc:
            raise InvalidDevice(str(exc)) from None
        secret = model.new_secret()
        device = Device(id=device_id, name=name, created_at=datetime.now(UTC))
        self._store.add(device, model.hash_secret(secret))
        log.info("device %s added", device_id)
        self._credentials_changed()
        return NewDevice(device, secret)

    def get(self, device_id: str) -> Device:
        return self._store.get(device_id)

    def list(self) -> list[Device]:
        return self._store.list()

    def delete(self, device_id: str) -> None:
        self._store.delete(device_id)
        log.info("device %s deleted", device_id)
        self._credentials_changed()
        if self._on_deleted is not None:
            self._on_deleted(device_id)

    def authenticate(self, username: str, secret: str) -> bool:
        hashed = self._store.secret_hash(username)
        return hashed is not None and model.verify_secret(secret, hashed)

    def status_changed(self, device_id: str, *, online: bool, boot_id: str | None) -> None:
        if not self._store.set_connectivity(
            device_id, online=online, at=datetime.now(UTC), boot_id=boot_id
        ):
            return
        log.info("device %s is %s", device_id, "online" if online else "offline")
        if online and self._on_online is not None:
            self._on_online(device_id)

    def seen(self, seen: dict[str, datetime]) -> None:
        self._store.touch(seen)

    def _credentials_changed(self) -> None:
        if self._on_credentials_changed is not None:
            self._on_credentials_changed()


def write_mosquitto_files(directory: Path, store: DeviceStore, hub_secret_hash: str) -> None:
    """Write ``passwd`` and ``acl`` for an external Mosquitto; each is replaced atomically.

    Mosquitto reads them at start and on SIGHUP. The files are mode 0640: put them in a group
    the broker's user belongs to.
    """
    directory.mkdir(parents=True, exist_ok=True)
    entries = store.secret_hashes() | {model.HUB_USERNAME: hub_secret_hash}
    _replace(directory / "passwd", model.mosquitto_password_file(entries))
    _replace(directory / "acl", model.mosquitto_acl_file())


def _replace(path: Path, text: str) -> None:
    descriptor, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(descriptor, "w") as handle:
        handle.write(text)
    Path(temporary).chmod(0o640)
    Path(temporary).replace(path)
