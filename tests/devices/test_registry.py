"""The registry through its service, on SQLite (and PostgreSQL where one is reachable) migrated
by the hub's Alembic scripts."""

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa
from cryptography import x509

from conftest import postgres_schema
from fleetmind import certificates
from fleetmind.devices import model
from fleetmind.devices.ca import CertificateAuthority
from fleetmind.devices.errors import CertificateError, DeviceExists, DeviceNotFound, InvalidDevice
from fleetmind.devices.model import Action, DeviceState, is_allowed
from fleetmind.devices.service import DeviceService, NewDevice
from fleetmind.devices.store import DeviceStore
from fleetmind.devices.store import certificates as certificates_table
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


# -- a name given to a new device: the old device's certificates stay out ------------------------


@pytest.fixture(params=["sqlite", "postgresql"])
def registry_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty registry database: SQLite in a file, or a schema of its own in the test
    PostgreSQL (skipped without it, except under ``CI=true``; dropped afterwards)."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'registry.db'}"
        return
    with postgres_schema() as url:
        yield url


@pytest.fixture
def registry(registry_url: str, tmp_path: Path) -> Iterator[DeviceService]:
    engine = create_engine(registry_url)
    migrate(engine)
    yield DeviceService(DeviceStore(engine), ca=CertificateAuthority.open(tmp_path / "ca"))
    engine.dispose()


def _serial(created: NewDevice) -> str:
    assert created.certificate is not None
    return certificates.serial_hex(certificates.load_certificate(created.certificate))


def test_a_deleted_device_s_certificates_do_not_open_a_new_device_of_its_name(
    registry: DeviceService,
) -> None:
    old = _serial(registry.add("r"))
    registry.delete("r")
    [revoked] = registry._store.certificates()
    assert revoked.serial == old and revoked.revoked_at is not None  # revoked at deletion
    new = _serial(registry.add("r"))

    assert not registry.may_connect("r", old)
    assert not registry.admission().allows("r", old)
    assert registry.may_connect("r", new)
    assert registry.admission().allows("r", new)
    assert [item.serial for item in registry.certificates("r")] == [new]  # only its own
    assert [serial for serial, _ in registry.revocations()] == [old]
    assert registry.revocations()[0][1] == revoked.revoked_at
    assert registry.ca is not None
    crl = x509.load_pem_x509_crl(registry.ca.revocation_list(registry.revocations()))
    assert {f"{item.serial_number:x}" for item in crl} == {old}
    with pytest.raises(CertificateError):  # the new device cannot revoke what is not its own
        registry.revoke("r", old)
    # deletion and re-creation are each one operation, so nothing stays cut off by name
    assert registry.cut_off() == set()


def test_a_certificate_belongs_to_the_record_it_was_issued_for_not_to_the_name(
    registry: DeviceService,
) -> None:
    """A certificate row of the old ``r``, made valid again and carried over by name (what a
    lookup by name alone would accept), still admits nobody: its record is not the device's."""
    old = _serial(registry.add("r"))
    [record] = registry._store.certificates()
    registry.delete("r")
    new = registry.add("r")
    assert new.device.uid != record.device_uid
    store = registry._store
    with store._engine.begin() as connection:  # forge: unrevoked, under the new device's name
        connection.execute(
            certificates_table.update()
            .where(certificates_table.c.serial == old)
            .values(revoked_at=None, device_id="r")
        )
    assert not registry.may_connect("r", old)
    assert not registry.admission().allows("r", old)
    assert old in {serial for serial, _ in registry.revocations()}
    assert registry.may_connect("r", _serial(new))


def test_uids_are_random_and_never_reused(registry: DeviceService) -> None:
    uids = set()
    for _ in range(5):
        uids.add(registry.add("r").device.uid)
        assert registry.get("r").uid in uids
        registry.delete("r")
    assert len(uids) == 5
    assert all(len(uid) == 32 and int(uid, 16) >= 0 for uid in uids)


def test_renewal_and_decommissioning_follow_the_record(registry: DeviceService) -> None:
    created = registry.add("r")
    key = certificates.new_key()
    renewed = registry.renew("r", certificates.make_csr(key, "r"))
    uids = {item.device_uid for item in registry.certificates("r")}
    assert uids == {created.device.uid}
    assert registry.may_connect("r", renewed.serial) and registry.may_connect("r", _serial(created))
    registry.set_state("r", DeviceState.DECOMMISSIONED)
    assert all(item.revoked_at is not None for item in registry.certificates("r"))


def test_the_migration_binds_existing_certificates_and_revokes_orphans(
    registry_url: str,
) -> None:
    """A registry of revision 0004 (before tags and uids): its devices get uids, their
    certificates the uid of their device, and certificates of deleted devices are revoked."""
    engine = create_engine(registry_url)
    migrate(engine, "0004")
    then = datetime(2026, 11, 1, tzinfo=UTC)
    earlier = datetime(2026, 10, 1, tzinfo=UTC)
    later = datetime(2027, 11, 1, tzinfo=UTC)
    rows = [
        # serial, device, revoked_at
        ("0a", "a", None),
        ("0b", "a", earlier),
        ("0c", "b", None),
        ("0d", "gone", None),
        ("0e", "gone", earlier),
    ]
    time = sa.DateTime(timezone=True)
    with engine.begin() as connection:
        for device_id in ("a", "b"):
            connection.execute(
                sa.text(
                    "INSERT INTO devices (id, name, secret_hash, created_at, online, state)"
                    " VALUES (:id, :id, 'x', :at, false, 'active')"
                ).bindparams(sa.bindparam("at", type_=time)),
                {"id": device_id, "at": then},
            )
        for serial, device_id, revoked_at in rows:
            connection.execute(
                sa.text(
                    "INSERT INTO certificates"
                    " (serial, device_id, fingerprint, issued_at, not_after, revoked_at)"
                    " VALUES (:serial, :device, :serial, :at, :until, :revoked)"
                ).bindparams(
                    sa.bindparam("at", type_=time),
                    sa.bindparam("until", type_=time),
                    sa.bindparam("revoked", type_=time),
                ),
                {"serial": serial, "device": device_id, "at": then, "until": later,
                 "revoked": revoked_at},
            )  # fmt: skip
    before = datetime.now(UTC)
    migrate(engine)
    after = datetime.now(UTC)

    store = DeviceStore(engine)
    service = DeviceService(store)
    uids = {device.id: device.uid for device in service.list()}
    assert len(set(uids.values())) == 2
    assert all(len(uid) == 32 and int(uid, 16) >= 0 for uid in uids.values())
    found = {item.serial: item for item in store.certificates()}
    assert {serial: item.device_uid for serial, item in found.items()} == {
        "0a": uids["a"], "0b": uids["a"], "0c": uids["b"], "0d": None, "0e": None,
    }  # fmt: skip
    assert found["0a"].revoked_at is None and found["0c"].revoked_at is None
    assert found["0b"].revoked_at == earlier and found["0e"].revoked_at == earlier
    revoked = found["0d"].revoked_at
    assert revoked is not None and before <= revoked <= after
    assert service.may_connect("a", "0a") and service.admission().allows("b", "0c")
    assert not service.may_connect("a", "0b")

    service.add("gone")  # the name again: the deleted device's certificates stay out
    assert not service.may_connect("gone", "0d")
    assert not service.admission().allows("gone", "0d")
    assert service.certificates("gone") == []
    assert {serial for serial, _ in service.revocations()} == {"0b", "0d", "0e"}
    engine.dispose()
