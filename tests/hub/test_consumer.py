"""The uplink consumer on a real registry (SQLite) and the memory telemetry store: routing by
kind, refusals with reasons and notices, what an outage does, renewals beside ingest."""

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from conftest import wait_until
from fleetmind import certificates
from fleetmind.commands.service import CommandService
from fleetmind.commands.store import CommandStore
from fleetmind.devices.ca import CertificateAuthority
from fleetmind.devices.renewal import RenewalQueue
from fleetmind.devices.service import DeviceService
from fleetmind.devices.store import DeviceStore
from fleetmind.hub.consumer import UplinkConsumer
from fleetmind.hub.registry import create_engine, migrate
from fleetmind.telemetry.errors import StoreUnavailable
from fleetmind.telemetry.ingest import Ingestor
from fleetmind.telemetry.store import MemoryTelemetryStore
from fleetmind.transport.mqtt import Received
from fleetmind.twins.service import TwinService
from fleetmind.twins.store import TwinStore
from fleetmind.wire import messages, senml, status, topics


@dataclass
class Setup:
    consumer: UplinkConsumer
    devices: DeviceService
    store: MemoryTelemetryStore
    renewals: RenewalQueue
    published: list[tuple[str, bytes, bool]] = field(default_factory=list)
    mids: Iterator[int] = field(default_factory=lambda: iter(range(1, 10**6)))

    def message(
        self, kind: str, payload: bytes, *, device: str = "d1", retain: bool = False
    ) -> Received:
        return Received(topics.up(device, kind), payload, next(self.mids), 1, retain)

    def notices(self) -> list[messages.Rejected]:
        return [
            messages.Rejected.decode(payload)
            for topic, payload, _ in self.published
            if topic.endswith("/down/reject")
        ]


@pytest.fixture
def setup(tmp_path: Path) -> Iterator[Setup]:
    engine = create_engine(f"sqlite:///{tmp_path / 'registry.db'}")
    migrate(engine)
    published: list[tuple[str, bytes, bool]] = []

    def publish(topic: str, payload: bytes, retain: bool = False) -> None:
        published.append((topic, payload, retain))

    devices = DeviceService(DeviceStore(engine), ca=CertificateAuthority.open(tmp_path / "ca"))
    devices.add("d1")
    store = MemoryTelemetryStore()
    renewals = RenewalQueue(devices, publish)
    consumer = UplinkConsumer(
        Ingestor(store),
        devices,
        TwinService(TwinStore(engine), devices, publish),
        CommandService(CommandStore(engine), devices, publish),
        renewals,
        publish,
    )
    yield Setup(consumer, devices, store, renewals, published)
    renewals.close()
    engine.dispose()


def pack(seq: int, value: float = 20.0) -> bytes:
    return senml.encode_cbor([senml.Reading("temp", time.time(), value)], boot="b", seq=seq)


def test_each_kind_reaches_its_use_case(setup: Setup) -> None:
    online = status.encode(status.Status("online", "b"))
    state = messages.State(1, {"settings": {}}, 0).encode()
    setup.consumer(
        [
            setup.message("telemetry", pack(1)),
            setup.message("status", online, retain=True),  # a retained status is meant to be
            setup.message("state", state),
        ]
    )
    assert setup.store.count("d1") == 1
    device = setup.devices.get("d1")
    assert device.online and device.boot_id == "b" and device.last_seen is not None
    assert setup.devices.rejected("d1") == []


def test_refusals_have_reasons_and_the_device_hears_of_them_once_a_minute(setup: Setup) -> None:
    setup.consumer(
        [
            setup.message("telemetry", b"\xff garbage"),
            setup.message("telemetry", b"\xff more garbage"),
            setup.message("telemetry", pack(2), retain=True),
            setup.message("nonsense", b"{}"),
            setup.message("state", b'{"version": -1}'),
            setup.message("telemetry", pack(3)),
        ]
    )
    assert setup.store.count("d1") == 1  # the good pack, not the retained replay
    reasons = sorted((r.kind, r.reason) for r in setup.devices.rejected("d1"))
    assert reasons == [
        ("state", "field"), ("telemetry", "decode"), ("telemetry", "decode"),
        ("telemetry", "retained"), ("unknown", "topic"),
    ]  # fmt: skip
    assert sorted((n.kind, n.reason) for n in setup.notices()) == [
        ("state", "field"), ("telemetry", "decode"), ("telemetry", "retained"),
        ("unknown", "topic"),
    ]  # fmt: skip


def test_made_up_kinds_and_refusal_floods_stay_bounded(setup: Setup) -> None:
    """Thousands of made-up kinds, retained or not, count as one kind; notices to devices are
    rate-limited."""
    setup.consumer([setup.message(f"k{n}", b"{}", retain=n % 2 == 0) for n in range(5000)])
    assert setup.devices.rejects.counts()["unknown"] == {"topic": 5000}
    assert len(setup.devices.rejects.counts()) == 1
    assert len(setup.notices()) == 1  # one kind, one reason: one notice a minute


def test_a_message_whose_handling_fails_is_refused_and_the_rest_taken(
    setup: Setup, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*_: object, **__: object) -> None:
        raise ValueError("a value the registry cannot take")

    monkeypatch.setattr(setup.devices, "status_changed", broken)
    online = status.encode(status.Status("online", "b"))
    setup.consumer([setup.message("status", online), setup.message("telemetry", pack(4))])
    assert setup.store.count("d1") == 1
    [refused] = setup.devices.rejected("d1")
    assert (refused.kind, refused.reason) == ("status", "internal")


@pytest.mark.parametrize("where", ["registry", "store"])
def test_an_outage_fails_the_batch_so_nothing_is_acknowledged(
    setup: Setup, monkeypatch: pytest.MonkeyPatch, where: str
) -> None:
    def out(*_: object, **__: object) -> None:
        if where == "registry":
            raise sa.exc.OperationalError("UPDATE devices", {}, Exception("database is locked"))
        raise StoreUnavailable("disk full")

    target = (setup.devices, "status_changed") if where == "registry" else (setup.store, "append")
    monkeypatch.setattr(*target, out)
    online = status.encode(status.Status("online", "b"))
    with pytest.raises((sa.exc.OperationalError, StoreUnavailable)):
        setup.consumer([setup.message("status", online), setup.message("telemetry", pack(5))])
    assert setup.devices.rejected("d1") == []  # an outage is not the message's fault


def test_renewals_are_signed_beside_ingest_and_one_waits_per_device(
    setup: Setup, monkeypatch: pytest.MonkeyPatch
) -> None:
    signing = threading.Event()
    renew = setup.devices.renew

    def slow_renew(*args: Any, **kwargs: Any) -> Any:
        signing.wait(10)  # the batch must not wait for this
        return renew(*args, **kwargs)

    monkeypatch.setattr(setup.devices, "renew", slow_renew)
    csr = certificates.make_csr(certificates.new_key(), "d1").decode()
    renewal = messages.Renewal(csr).encode()
    started = time.monotonic()
    setup.consumer([setup.message("csr", renewal), setup.message("csr", renewal)])
    assert time.monotonic() - started < 1.0
    signing.set()
    wait_until(lambda: any(t.endswith("/down/certificate") for t, _, _ in setup.published))
    [answer] = [p for t, p, _ in setup.published if t.endswith("/down/certificate")]
    assert messages.Certificate.decode(answer).certificate is not None
    assert [(r.kind, r.reason) for r in setup.devices.rejected("d1")] == [("csr", "busy")]
