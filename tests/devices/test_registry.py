"""The registry through its service, on SQLite migrated by the hub's Alembic scripts."""

from pathlib import Path

import pytest

from fleetmind.devices import model
from fleetmind.devices.errors import DeviceExists, DeviceNotFound, InvalidDevice
from fleetmind.devices.model import Action, is_allowed
from fleetmind.devices.service import DeviceService
from fleetmind.devices.store import DeviceStore
from fleetmind.hub.registry import create_engine, migrate


@pytest.fixture
def service(tmp_path: Path) -> DeviceService:
    engine = create_engine(f"sqlite:///{tmp_path / 'registry.db'}")
    migrate(engine)
    return DeviceService(DeviceStore(engine))


def test_lifecycle(service: DeviceService) -> None:
    created = service.add("pump-7")
    assert created.device.id == "pump-7"
    assert service.authenticate("pump-7", created.secret)
    assert not service.authenticate("pump-7", created.secret + "x")
    assert not service.authenticate("nobody", created.secret)
    assert [device.id for device in service.list()] == ["pump-7"]
    with pytest.raises(DeviceExists):
        service.add("pump-7")
    service.status_changed("pump-7", online=True, boot_id="b1")
    device = service.get("pump-7")
    assert device.online
    assert device.boot_id == "b1"
    assert device.last_seen is not None
    assert device.last_seen.tzinfo is not None
    service.delete("pump-7")
    with pytest.raises(DeviceNotFound):
        service.get("pump-7")
    assert not service.authenticate("pump-7", created.secret)


def test_two_devices_never_share_a_secret(service: DeviceService) -> None:
    secrets = {service.add(f"d{index}").secret for index in range(20)}
    assert len(secrets) == 20


@pytest.mark.parametrize("name", ["", "-x", "a b", "x" * 65, "_hub", "a/b", "+", "#"])
def test_invalid_names_are_refused(service: DeviceService, name: str) -> None:
    with pytest.raises(InvalidDevice):
        service.add(name)


def test_secret_hash_is_mosquitto_pbkdf2() -> None:
    hashed = model.hash_secret("s3cret", salt=b"0123456789ab")
    assert hashed.startswith("$7$1000$")
    assert model.verify_secret("s3cret", hashed)
    assert not model.verify_secret("other", hashed)
    assert not model.verify_secret("s3cret", "garbage")


@pytest.mark.parametrize(
    ("user", "topic", "action", "allowed"),
    [
        ("d1", "fm/v1/d/d1/up/telemetry", Action.PUBLISH, True),
        ("d1", "fm/v1/d/d1/up/event/alarm", Action.PUBLISH, True),
        ("d1", "fm/v1/d/d2/up/telemetry", Action.PUBLISH, False),
        ("d1", "fm/v1/d/d1/down/command", Action.PUBLISH, False),
        ("d1", "fm/v1/d/d1/down/#", Action.SUBSCRIBE, True),
        ("d1", "fm/v1/fleet/down/#", Action.SUBSCRIBE, True),
        ("d1", "fm/v1/d/d2/down/#", Action.SUBSCRIBE, False),
        ("d1", "fm/v1/d/+/down/#", Action.SUBSCRIBE, False),
        ("d1", "fm/v1/d/d1/up/#", Action.SUBSCRIBE, False),
        ("d1", "#", Action.SUBSCRIBE, False),
        ("d1", "$SYS/#", Action.SUBSCRIBE, False),
        ("d1", "$share/hub/fm/v1/d/+/up/#", Action.SUBSCRIBE, False),
        (None, "fm/v1/d/d1/up/telemetry", Action.PUBLISH, False),
        ("", "fm/v1/d/d1/up/telemetry", Action.PUBLISH, False),
        ("_hub", "fm/v1/d/+/up/#", Action.SUBSCRIBE, True),
        ("_hub", "$share/hub/fm/v1/d/+/up/#", Action.SUBSCRIBE, True),
        ("_hub", "fm/v1/d/d1/down/command", Action.PUBLISH, True),
        ("_hub", "fm/v1/d/d1/up/telemetry", Action.PUBLISH, False),
        ("_hub", "#", Action.SUBSCRIBE, False),
    ],
)
def test_topic_acl(user: str | None, topic: str, action: Action, allowed: bool) -> None:
    assert is_allowed(user, topic, action) is allowed
