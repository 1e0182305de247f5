"""Commands through their service, on the in-memory SQLite registry with a publish function that
records: sent at once to an online device, queued for an offline one until its TTL (or refused
at once with a TTL of 0), answered, expired; late and unknown answers change nothing."""

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

from fleetmind.audit.model import Actor, AuditQuery
from fleetmind.audit.service import AuditService
from fleetmind.audit.store import AuditStore
from fleetmind.commands import service as service_module
from fleetmind.commands.errors import CommandNotFound, DeviceOffline, InvalidCommand
from fleetmind.commands.model import Status
from fleetmind.commands.service import CommandService
from fleetmind.commands.store import CommandStore
from fleetmind.devices.errors import DeviceNotFound
from fleetmind.devices.service import DeviceService
from fleetmind.devices.store import DeviceStore
from fleetmind.hub.registry import create_engine, migrate
from fleetmind.wire import messages

OPERATOR = Actor("otto (token 4)", "10.0.0.7")


class Published(list[tuple[str, bytes, bool]]):
    """The publish function: records what the hub sent; ``down`` makes it fail as a lost
    broker connection does."""

    down = False

    def __call__(self, topic: str, payload: bytes, retain: bool) -> None:
        if self.down:
            raise ConnectionError("the hub is not connected to the broker")
        self.append((topic, payload, retain))

    def commands(self) -> list[messages.Command]:
        return [messages.Command.decode(payload) for _, payload, _ in self]


class Clock:
    """The service's clock, moved on by the tests instead of sleeping."""

    def __init__(self) -> None:
        self.offset = timedelta()

    def now(self, tz: object = None) -> datetime:
        return datetime.now(UTC) + self.offset


@pytest.fixture
def engine() -> Iterator[sa.Engine]:
    engine = create_engine("sqlite://")  # one connection per thread: the tests use one
    migrate(engine)
    yield engine
    engine.dispose()


class Wired:
    """Devices and commands as the hub wires them: a device that comes online gets what
    waited for it."""

    def __init__(self, engine: sa.Engine, publish: Published) -> None:
        self.devices = DeviceService(DeviceStore(engine), on_online=self._online)
        audit = AuditService(AuditStore(engine))
        self.commands = CommandService(CommandStore(engine), self.devices, publish, audit=audit)

    def _online(self, device_id: str) -> None:
        self.commands.device_online(device_id)


@pytest.fixture
def published() -> Published:
    return Published()


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    clock = Clock()
    monkeypatch.setattr(service_module, "datetime", clock)
    return clock


@pytest.fixture
def wired(engine: sa.Engine, published: Published, clock: Clock) -> Wired:
    wired = Wired(engine, published)
    wired.devices.add("online-1")
    wired.devices.add("offline-1")
    wired.devices.status_changed("online-1", online=True, boot_id="b1")
    return wired


@pytest.fixture
def devices(wired: Wired) -> DeviceService:
    return wired.devices


@pytest.fixture
def commands(wired: Wired) -> CommandService:
    return wired.commands


def test_an_online_device_gets_its_command_at_once(
    commands: CommandService, published: Published
) -> None:
    record = commands.send("online-1", "ping", {"n": 1}, timeout_s=10, ttl_s=0)
    assert record.status is Status.SENT
    assert record.expires_at - record.created_at == timedelta(seconds=10)
    [(topic, _, retained)] = published
    assert (topic, retained) == ("fm/v1/d/online-1/down/command", False)
    [sent] = published.commands()
    assert (sent.id, sent.name, sent.args) == (record.id, "ping", {"n": 1})
    assert sent.expires_at == record.expires_at.timestamp()
    assert commands.get("online-1", record.id) == record


def test_an_offline_device_gets_it_when_it_comes_online_within_the_ttl(
    commands: CommandService, devices: DeviceService, published: Published, clock: Clock
) -> None:
    first = commands.send("offline-1", "ping", {}, timeout_s=5, ttl_s=60)
    second = commands.send("offline-1", "collect_logs", {}, timeout_s=5, ttl_s=60)
    assert (first.status, second.status) == (Status.QUEUED, Status.QUEUED)
    assert first.expires_at - first.created_at == timedelta(seconds=65)  # ttl + timeout
    assert published == []
    clock.offset = timedelta(seconds=30)
    devices.status_changed("offline-1", online=True, boot_id="b2")
    assert [sent.id for sent in published.commands()] == [first.id, second.id]  # in order
    assert commands.get("offline-1", first.id).status is Status.SENT


def test_a_queued_command_expires_with_its_ttl(
    commands: CommandService, devices: DeviceService, published: Published, clock: Clock
) -> None:
    record = commands.send("offline-1", "reboot", {}, timeout_s=5, ttl_s=60)
    clock.offset = timedelta(seconds=66)
    devices.status_changed("offline-1", online=True, boot_id="b2")
    assert published == []  # too late: not sent
    expired = commands.get("offline-1", record.id)
    assert expired.status is Status.EXPIRED and expired.completed_at is not None


def test_ttl_0_refuses_an_offline_device_at_once(
    commands: CommandService, published: Published
) -> None:
    with pytest.raises(DeviceOffline):
        commands.send("offline-1", "ping", {}, timeout_s=10, ttl_s=0)
    assert published == []
    with pytest.raises(DeviceNotFound):
        commands.send("nobody", "ping", {}, timeout_s=10, ttl_s=60)
    with pytest.raises(InvalidCommand):
        commands.send("online-1", "Not A Name", {}, timeout_s=10, ttl_s=0)
    with pytest.raises(InvalidCommand):
        commands.send("online-1", "ping", {"x": "y" * 20_000}, timeout_s=10, ttl_s=0)


def test_the_answer_completes_the_command(commands: CommandService) -> None:
    ok = commands.send("online-1", "ping", {}, timeout_s=10, ttl_s=0)
    failed = commands.send("online-1", "reboot", {}, timeout_s=10, ttl_s=0)
    commands.result("online-1", messages.CommandResult(ok.id, True, {"pong": 1}))
    commands.result("online-1", messages.CommandResult(failed.id, False, {}, "not now"))
    answered = commands.get("online-1", ok.id)
    assert (answered.status, answered.result, answered.error) == (Status.SUCCEEDED,
                                                                  {"pong": 1}, None)  # fmt: skip
    assert answered.completed_at is not None and answered.status.done
    refused = commands.get("online-1", failed.id)
    assert (refused.status, refused.error) == (Status.FAILED, "not now")


def test_late_unknown_and_foreign_answers_change_nothing(
    commands: CommandService, devices: DeviceService, clock: Clock
) -> None:
    devices.status_changed("offline-1", online=True, boot_id="b2")
    record = commands.send("online-1", "ping", {}, timeout_s=10, ttl_s=0)
    other = commands.send("offline-1", "ping", {}, timeout_s=10, ttl_s=0)
    commands.result("online-1", messages.CommandResult("no-such-id", True, {}))  # unknown
    commands.result("offline-1", messages.CommandResult(record.id, True, {"x": 1}))  # foreign
    assert commands.get("online-1", record.id).status is Status.SENT
    commands.result("online-1", messages.CommandResult(record.id, True, {"first": 1}))
    commands.result("online-1", messages.CommandResult(record.id, False, {}, "again"))  # twice
    assert commands.get("online-1", record.id).result == {"first": 1}
    clock.offset = timedelta(seconds=11)
    assert commands.get("offline-1", other.id).status is Status.EXPIRED
    commands.result("offline-1", messages.CommandResult(other.id, True, {"late": 1}))  # late
    late = commands.get("offline-1", other.id)
    assert (late.status, late.result) == (Status.EXPIRED, None)
    with pytest.raises(CommandNotFound):
        commands.get("offline-1", record.id)  # another device's command


def test_a_sent_command_without_an_answer_expires_after_its_timeout(
    commands: CommandService, clock: Clock
) -> None:
    record = commands.send("online-1", "collect_logs", {}, timeout_s=10, ttl_s=0)
    clock.offset = timedelta(seconds=9)
    assert commands.get("online-1", record.id).status is Status.SENT
    clock.offset = timedelta(seconds=11)
    expired = commands.get("online-1", record.id)
    assert expired.status is Status.EXPIRED and expired.completed_at is not None


def test_a_command_stays_queued_while_the_broker_is_away(
    commands: CommandService, devices: DeviceService, published: Published
) -> None:
    published.down = True
    record = commands.send("online-1", "ping", {}, timeout_s=10, ttl_s=0)
    assert record.status is Status.QUEUED
    published.down = False
    devices.status_changed("online-1", online=False, boot_id="b1")
    devices.status_changed("online-1", online=True, boot_id="b1")
    assert [sent.id for sent in published.commands()] == [record.id]


def test_a_command_sent_for_someone_is_recorded(
    engine: sa.Engine, commands: CommandService
) -> None:
    record = commands.send("online-1", "ping", {}, timeout_s=10, ttl_s=0, by=OPERATOR)
    commands.send("online-1", "ping", {}, timeout_s=10, ttl_s=0)  # the hub itself: not recorded
    with pytest.raises(DeviceOffline):
        commands.send("offline-1", "ping", {}, timeout_s=10, ttl_s=0, by=OPERATOR)
    [event] = AuditService(AuditStore(engine)).query(AuditQuery(type_prefix="command."))
    assert (event.type, event.actor, event.source) == ("command.send", OPERATOR.name, "10.0.0.7")
    assert event.detail == f"online-1 ping {record.id}"
