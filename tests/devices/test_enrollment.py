"""Enrollment groups: templates, claims counted exactly, even under concurrent claims."""

from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path

import pytest

from fleetmind import certificates
from fleetmind.devices.ca import CertificateAuthority
from fleetmind.devices.enrollment import check_template, device_name
from fleetmind.devices.errors import ClaimRefused, DeviceError, InvalidDevice
from fleetmind.devices.service import DeviceService
from fleetmind.devices.store import DeviceStore, EnrollmentStore
from fleetmind.hub.registry import create_engine, migrate


@pytest.fixture
def devices(tmp_path: Path) -> DeviceService:
    engine = create_engine(f"sqlite:///{tmp_path / 'registry.db'}")
    migrate(engine)
    return DeviceService(
        DeviceStore(engine),
        ca=CertificateAuthority.open(tmp_path / "ca"),
        enrollments=EnrollmentStore(engine),
    )


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


def test_concurrent_claims_never_exceed_max_uses(devices: DeviceService) -> None:
    _, token = devices.create_enrollment(
        "g", name_template="g-{n}", max_uses=5, expires_in=timedelta(minutes=5),
        tags={"k": "v"}, desired={},
    )  # fmt: skip
    requests = [csr() for _ in range(12)]

    def attempt(request: bytes) -> str | None:
        try:
            return devices.claim(token, request, None)[0].device.id
        except (ClaimRefused, DeviceError):
            return None

    with ThreadPoolExecutor(6) as pool:
        claimed = [name for name in pool.map(attempt, requests) if name]
    assert sorted(claimed) == [f"g-{n:04d}" for n in range(1, 6)]
    assert all(devices.get(name).tags == {"k": "v"} for name in claimed)
    assert devices.enrollment_groups()[0].uses == 5


def test_a_taken_name_gives_the_use_back(devices: DeviceService) -> None:
    _, token = devices.create_enrollment(
        "h", name_template="{name}", max_uses=1, expires_in=timedelta(minutes=5),
        tags={}, desired={},
    )  # fmt: skip
    devices.add("dup")
    with pytest.raises(DeviceError):
        devices.claim(token, csr(), "dup")
    assert devices.claim(token, csr(), "fresh")[0].device.id == "fresh"
