"""Enrollment groups: templates, claims counted exactly, even under concurrent claims."""

from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from fleetmind import certificates
from fleetmind.devices.ca import CertificateAuthority
from fleetmind.devices.enrollment import check_template, device_name
from fleetmind.devices.enrollments import EnrollmentService
from fleetmind.devices.errors import ClaimRefused, DeviceError, InvalidDevice
from fleetmind.devices.service import DeviceService
from fleetmind.devices.store import DeviceStore, EnrollmentStore
from fleetmind.hub.registry import create_engine, migrate


@pytest.fixture
def engine(tmp_path: Path) -> sa.Engine:
    engine = create_engine(f"sqlite:///{tmp_path / 'registry.db'}")
    migrate(engine)
    return engine


@pytest.fixture
def devices(engine: sa.Engine, tmp_path: Path) -> DeviceService:
    return DeviceService(DeviceStore(engine), ca=CertificateAuthority.open(tmp_path / "ca"))


@pytest.fixture
def enrollments(engine: sa.Engine, devices: DeviceService) -> EnrollmentService:
    return EnrollmentService(EnrollmentStore(engine), devices)


def csr() -> bytes:
    return certificates.make_csr(certificates.new_key(), "x")


@pytest.mark.parametrize("template", ["plant", "plant-{id}", "plant-{n}-}"])
def test_templates_must_make_distinct_names(template: str) -> None:
    with pytest.raises(InvalidDevice):
        check_template(template)


def test_names_from_templates() -> None:
    assert device_name("p-{n}", use=7, requested=None) == "p-0007"
    assert device_name("p-{name}", use=7, requested="abc") == "p-abc"
    with pytest.raises(InvalidDevice):
        device_name("p-{name}", use=1, requested=None)


def test_concurrent_claims_never_exceed_max_uses(
    devices: DeviceService, enrollments: EnrollmentService
) -> None:
    _, token = enrollments.create(
        "g", name_template="g-{n}", max_uses=5, expires_in=timedelta(minutes=5),
        tags={"k": "v"}, desired={},
    )  # fmt: skip
    requests = [csr() for _ in range(12)]

    def attempt(request: bytes) -> str | None:
        try:
            return enrollments.claim(token, request, None)[0].device.id
        except (ClaimRefused, DeviceError):
            return None

    with ThreadPoolExecutor(6) as pool:
        claimed = [name for name in pool.map(attempt, requests) if name]
    assert sorted(claimed) == [f"g-{n:04d}" for n in range(1, 6)]
    assert all(devices.get(name).tags == {"k": "v"} for name in claimed)
    assert enrollments.groups()[0].uses == 5


def test_a_taken_name_gives_the_use_back(
    devices: DeviceService, enrollments: EnrollmentService
) -> None:
    _, token = enrollments.create(
        "h", name_template="{name}", max_uses=1, expires_in=timedelta(minutes=5),
        tags={}, desired={},
    )  # fmt: skip
    devices.add("dup")
    with pytest.raises(DeviceError):
        enrollments.claim(token, csr(), "dup")
    assert enrollments.claim(token, csr(), "fresh")[0].device.id == "fresh"
