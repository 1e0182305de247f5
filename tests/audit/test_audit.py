"""The audit log through its service, on the in-memory SQLite registry: what a record holds,
queries by type prefix, actor, outcome and time, and that no secret the services handle ever
reaches a record (nor the log line each record writes)."""

import logging
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from fleetmind.audit.model import Actor, AuditEvent, AuditQuery, Outcome
from fleetmind.audit.service import AuditService
from fleetmind.audit.store import AuditStore
from fleetmind.auth.errors import InvalidCredentials, LockedOut
from fleetmind.auth.model import MAX_FAILURES, Role, Scope
from fleetmind.auth.service import AuthService
from fleetmind.auth.store import TokenStore
from fleetmind.devices.ca import CertificateAuthority
from fleetmind.devices.enrollments import EnrollmentService
from fleetmind.devices.errors import ClaimRefused
from fleetmind.devices.model import MQTT_AUDITED_PER_MINUTE, FailureQuota
from fleetmind.devices.service import DeviceService
from fleetmind.devices.store import DeviceStore, EnrollmentStore
from fleetmind.hub.registry import create_engine, migrate

ADMIN = Actor("admin (token 1)", "10.0.0.7")


def csr() -> bytes:
    """A device's CSR over a key of its own (PEM)."""
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "x")])
    request = x509.CertificateSigningRequestBuilder().subject_name(subject)
    signed = request.sign(ec.generate_private_key(ec.SECP256R1()), hashes.SHA256())
    return signed.public_bytes(serialization.Encoding.PEM)


@pytest.fixture
def engine() -> Iterator[sa.Engine]:
    engine = create_engine("sqlite://")  # one connection per thread: the tests use one
    migrate(engine)
    yield engine
    engine.dispose()


@pytest.fixture
def audit(engine: sa.Engine) -> AuditService:
    return AuditService(AuditStore(engine))


def test_a_record_holds_who_from_where_how_it_ended_and_what(audit: AuditService) -> None:
    before = datetime.now(UTC)
    recorded = audit.record("device.state", ADMIN, detail="pump-7 is suspended")
    failed = audit.record("auth.token", Actor("", ""), outcome=Outcome.FAILURE)
    newest, oldest = audit.query(AuditQuery())
    assert (oldest.type, oldest.actor, oldest.source) == ("device.state", ADMIN.name, "10.0.0.7")
    assert (oldest.outcome, oldest.detail) == (Outcome.SUCCESS, "pump-7 is suspended")
    assert before <= oldest.at <= newest.at <= datetime.now(UTC)
    assert oldest.at.tzinfo is not None
    # an unknown actor and a missing source read "-"
    assert (newest.actor, newest.source, newest.outcome) == ("-", "-", Outcome.FAILURE)
    assert oldest.id < newest.id
    assert (recorded.type, failed.actor) == ("device.state", "-")


def test_an_actor_acts_from_the_hub_itself_by_default() -> None:
    assert Actor("ana (token 3)").source == "-"


def test_queries_by_type_prefix_actor_outcome_and_limit_newest_first(
    audit: AuditService,
) -> None:
    for kind, actor, outcome in [
        ("auth.login", "ana", Outcome.SUCCESS),
        ("auth.lockout", "ana", Outcome.FAILURE),
        ("authz.other", "ana", Outcome.SUCCESS),
        ("device.add", "admin (token 1)", Outcome.SUCCESS),
        ("auth.login", "bob", Outcome.FAILURE),
    ]:
        audit.record(kind, Actor(actor, "10.0.0.7"), outcome=outcome)

    def types(**query: object) -> list[str]:
        return [event.type for event in audit.query(AuditQuery(**query))]  # type: ignore[arg-type]

    assert types(type_prefix="auth.") == ["auth.login", "auth.lockout", "auth.login"]
    assert types(type_prefix="auth.login") == ["auth.login", "auth.login"]
    assert types(type_prefix="a_th.") == []  # a prefix is literal, not a LIKE pattern
    assert types(type_prefix="auth%") == []
    assert types(type_prefix="device.") == ["device.add"]
    assert types(actor="ana") == ["authz.other", "auth.lockout", "auth.login"]
    assert types(outcome=Outcome.FAILURE) == ["auth.login", "auth.lockout"]
    assert types(type_prefix="auth.", actor="bob") == ["auth.login"]
    assert types(limit=2) == ["auth.login", "device.add"]
    assert len(types()) == 5


def test_queries_by_time(engine: sa.Engine, audit: AuditService) -> None:
    now = datetime.now(UTC)
    store = AuditStore(engine)
    for hours in (3, 2, 1):
        store.add(AuditEvent(f"test.{hours}h", now - timedelta(hours=hours), "ana", "-",
                             Outcome.SUCCESS))  # fmt: skip
    audit.record("test.now", Actor("ana"))

    def types(since: datetime) -> list[str]:
        return [event.type for event in audit.query(AuditQuery(since=since))]

    assert types(now - timedelta(hours=4)) == ["test.now", "test.1h", "test.2h", "test.3h"]
    assert types(now - timedelta(hours=2)) == ["test.now", "test.1h", "test.2h"]  # inclusive
    assert types(now - timedelta(minutes=90)) == ["test.now", "test.1h"]
    assert types(now) == ["test.now"]
    assert types(now + timedelta(minutes=1)) == []
    # the same moment in another time zone selects the same events
    kolkata = (now - timedelta(minutes=90)).astimezone(ZoneInfo("Asia/Kolkata"))
    assert types(kolkata) == ["test.now", "test.1h"]
    both = audit.query(AuditQuery(type_prefix="test.", since=now - timedelta(hours=2), limit=2))
    assert [event.type for event in both] == ["test.now", "test.1h"]


def test_a_guesser_of_many_names_cannot_flood_the_audit_log(
    engine: sa.Engine, audit: AuditService, tmp_path: Path
) -> None:
    """Failed MQTT logins from one source are recorded up to a quota a minute; a second source
    has its own, and the count of those left out rides on the source's next record."""
    devices = DeviceService(
        DeviceStore(engine), ca=CertificateAuthority.open(tmp_path / "ca"), audit=audit
    )
    for n in range(500):
        assert not devices.authenticate(f"guess-{n}", "a guess", source="10.0.0.66")
    assert not devices.authenticate("pump-1", "a guess", source="10.0.0.67")
    events = audit.query(AuditQuery(type_prefix="mqtt.", limit=1000))
    guesser = [event for event in events if event.source == "10.0.0.66"]
    assert len(guesser) == MQTT_AUDITED_PER_MINUTE
    assert {event.actor for event in guesser} == {f"guess-{n}" for n in range(len(guesser))}
    assert [event.actor for event in events if event.source == "10.0.0.67"] == ["pump-1"]

    quota = FailureQuota()  # and a minute later, the next record tells how many were left out
    for _ in range(MQTT_AUDITED_PER_MINUTE + 480):
        quota.admit("10.0.0.66", 0.0)
    assert quota.admit("10.0.0.66", 60.0) == 480


def test_no_secret_the_services_handle_reaches_a_record_or_the_log(
    engine: sa.Engine, audit: AuditService, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Passwords, tokens, device secrets, claim tokens and private keys go through every
    recorded operation, the refused ones too; none is in any record or logged line."""
    caplog.set_level(logging.DEBUG)
    auth = AuthService(TokenStore(engine), audit=audit)
    devices = DeviceService(
        DeviceStore(engine), ca=CertificateAuthority.open(tmp_path / "ca"), audit=audit
    )
    enrollments = EnrollmentService(EnrollmentStore(engine), devices)
    secrets: list[str] = []
    admin_token = auth.ensure_admin()
    assert admin_token is not None
    secrets.append(admin_token)
    admin = auth.authorize(admin_token, Scope.ADMIN, source="10.0.0.7", what="/api/v1/users")
    by = admin.as_actor("10.0.0.7")

    password = "a long enough passphrase"
    secrets += [password, "a new long passphrase", "a wrong guess of it"]
    auth.add_user("ana", Role.OPERATOR, password, by=by)
    secret, _ = auth.login("ana", password, source="10.0.0.8")
    secrets.append(secret)
    for _ in range(MAX_FAILURES):
        with pytest.raises((InvalidCredentials, LockedOut)):
            auth.login("ana", "a wrong guess of it", source="10.0.0.8")
    auth.update_user("ana", role=Role.VIEWER, password="a new long passphrase", by=by)
    secret, token = auth.issue("ana", "ci", frozenset({Scope.READ}), expires_in=None, by=by)
    secrets.append(secret)
    with pytest.raises(InvalidCredentials):
        auth.authorize(secret + "x", Scope.READ, source="10.0.0.9", what="/api/v1/devices")
    auth.revoke_token(token.id, by=by)

    created = devices.add("pump-7", by=by)
    assert created.private_key is not None
    secrets += [created.secret, created.private_key.decode()]
    assert not devices.authenticate("pump-7", created.secret + "x", source="10.0.0.10")
    assert not devices.authenticate("_hub", created.secret, source="10.0.0.10")
    secrets.append(devices.rotate_secret("pump-7", by=by))
    _, claim = enrollments.create(
        "plant-a", name_template="plant-a-{n}", max_uses=1, expires_in=timedelta(hours=1),
        tags={}, desired={}, by=by,
    )  # fmt: skip
    secrets.append(claim)
    claimed, _ = enrollments.claim(claim, csr(), None, source="10.0.0.11")
    with pytest.raises(ClaimRefused):
        enrollments.claim(claim, csr(), None, source="10.0.0.11")
    devices.renew(claimed.device.id, csr(), by=Actor(claimed.device.id, "mqtt"))

    events = audit.query(AuditQuery(limit=1000))
    assert {event.type for event in events} >= {
        "auth.login", "auth.lockout", "auth.token", "user.create", "user.role", "user.password",
        "token.create", "token.delete", "device.add", "device.secret", "mqtt.auth",
        "enrollment.create", "device.claim", "certificate.renew",
    }  # fmt: skip
    recorded = "\n".join(
        f"{event.type} {event.actor} {event.source} {event.outcome} {event.detail}"
        for event in events
    )
    logged = "\n".join(record.getMessage() for record in caplog.records)
    assert "audit auth.login" in logged
    for secret in secrets:
        for line in secret.splitlines():
            if len(line) >= 12 and not line.startswith("-----"):
                assert line not in recorded, f"a secret is in the audit log: {line[:6]}..."
                assert line not in logged, f"a secret is in the hub's log: {line[:6]}..."
