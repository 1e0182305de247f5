"""The registry through its service, on SQLite migrated by the hub's Alembic scripts."""

from pathlib import Path

import pytest

from fleetmind.devices import certificates, model
from fleetmind.devices.ca import CertificateAuthority
from fleetmind.devices.errors import CertificateError, DeviceExists, DeviceNotFound, InvalidDevice
from fleetmind.devices.model import Action, DeviceState, is_allowed
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


@pytest.fixture
def with_ca(tmp_path: Path) -> DeviceService:
    engine = create_engine(f"sqlite:///{tmp_path / 'ca-registry.db'}")
    migrate(engine)
    return DeviceService(DeviceStore(engine), ca=CertificateAuthority.open(tmp_path / "ca"))


def test_a_device_gets_a_certificate_the_registry_records(with_ca: DeviceService) -> None:
    created = with_ca.add("pump-7")
    assert created.certificate is not None and created.private_key is not None
    serial = certificates.serial_hex(certificates.load_certificate(created.certificate))
    [record] = with_ca.certificates("pump-7")
    assert record.serial == serial and record.revoked_at is None
    assert with_ca.may_connect("pump-7", serial)
    assert not with_ca.may_connect("pump-7", "abc")  # not a certificate of this hub
    other = with_ca.add("pump-8")
    assert other.certificate is not None
    other_serial = certificates.serial_hex(certificates.load_certificate(other.certificate))
    assert not with_ca.may_connect("pump-7", other_serial)  # another device's certificate


def test_suspend_reactivate_decommission(with_ca: DeviceService) -> None:
    created = with_ca.add("pump-7")
    assert created.certificate is not None
    serial = certificates.serial_hex(certificates.load_certificate(created.certificate))
    assert with_ca.authenticate("pump-7", created.secret)
    assert with_ca.revocations() == []

    assert with_ca.set_state("pump-7", DeviceState.SUSPENDED).state is DeviceState.SUSPENDED
    assert not with_ca.authenticate("pump-7", created.secret)
    assert not with_ca.may_connect("pump-7", serial)
    assert [s for s, _ in with_ca.revocations()] == [serial]  # on hold while suspended

    with_ca.set_state("pump-7", DeviceState.ACTIVE)
    assert with_ca.authenticate("pump-7", created.secret)
    assert with_ca.may_connect("pump-7", serial)
    assert with_ca.revocations() == []

    with_ca.set_state("pump-7", DeviceState.DECOMMISSIONED)
    assert not with_ca.authenticate("pump-7", created.secret)
    assert [s for s, _ in with_ca.revocations()] == [serial]
    assert with_ca.certificates("pump-7")[0].revoked_at is not None
    with pytest.raises(InvalidDevice, match="for good"):
        with_ca.set_state("pump-7", DeviceState.ACTIVE)


def test_revoking_one_certificate(with_ca: DeviceService) -> None:
    created = with_ca.add("pump-7", csr=certificates.make_csr(certificates.new_key(), "pump-7"))
    assert created.private_key is None and created.certificate is not None
    serial = certificates.serial_hex(certificates.load_certificate(created.certificate))
    with_ca.revoke("pump-7", serial)
    assert not with_ca.may_connect("pump-7", serial)
    assert with_ca.may_connect("pump-7")  # the device itself stays active
    with pytest.raises(CertificateError):
        with_ca.revoke("pump-7", serial)
    with_ca.delete("pump-7")  # a deleted device's certificates stay in the CRL
    assert [s for s, _ in with_ca.revocations()] == [serial]


def test_a_csr_needs_a_ca(service: DeviceService) -> None:
    with pytest.raises(InvalidDevice, match="certificate authority"):
        service.add("pump-7", csr=certificates.make_csr(certificates.new_key(), "pump-7"))
