"""Enrollment groups and provisioning by claim.

An operator makes a group: a claim token (shown once, stored hashed), an expiry, a number of
uses, a name template and the tags and desired twin its devices start with. A device presents
the claim token with a CSR of a key it made; it gets a certificate of its own over that key and
the claim token opens nothing else. Uses are counted atomically, so ``max_uses`` holds under
races; a claim that fails after counting gives its use back.
"""

from datetime import UTC, datetime, timedelta
from typing import Any

from fleetmind.audit.model import Actor, Outcome
from fleetmind.devices import enrollment
from fleetmind.devices.ca import check_csr
from fleetmind.devices.enrollment import EnrollmentGroup
from fleetmind.devices.errors import ClaimRefused, DeviceError, DeviceNotFound, InvalidDevice
from fleetmind.devices.service import DeviceService, NewDevice
from fleetmind.devices.store import EnrollmentStore


class EnrollmentService:
    def __init__(self, store: EnrollmentStore, devices: DeviceService) -> None:
        self._store = store
        self._devices = devices

    def create(
        self,
        name: str,
        *,
        name_template: str,
        max_uses: int,
        expires_in: timedelta,
        tags: dict[str, str],
        desired: dict[str, Any],
        by: Actor | None = None,
    ) -> tuple[EnrollmentGroup, str]:
        """A group and its claim token (in clear, this once; stored hashed). Recorded as
        ``enrollment.create``."""
        if self._devices.ca is None:
            raise InvalidDevice("provisioning by claim needs the hub's certificate authority")
        now = datetime.now(UTC)
        group = EnrollmentGroup(
            name, enrollment.check_template(name_template), max_uses, 0, now + expires_in, now,
            tags, desired,
        )  # fmt: skip
        token = enrollment.new_claim_token()
        self._store.add(group, enrollment.hash_claim(token))
        self._devices.record("enrollment.create", by, detail=f"{group.name}: {group.max_uses}")
        return group, token

    def groups(self) -> list[EnrollmentGroup]:
        return self._store.list()

    def delete(self, name: str, *, by: Actor | None = None) -> None:
        if not self._store.delete(name):
            raise DeviceNotFound(f"no enrollment group {name!r}")
        self._devices.record("enrollment.delete", by, detail=name)

    def claim(
        self, token: str, csr: bytes, requested: str | None, *, source: str = "-"
    ) -> tuple[NewDevice, str]:
        """A new device of the token's group, certified over ``csr``; and the group's name.
        Recorded as ``device.claim``: by the new device, or a refusal (ClaimRefused) by ``-``,
        from ``source``."""
        try:
            created, group = self._claim(token, csr, requested)
        except ClaimRefused as exc:
            self._devices.record("device.claim", Actor("-", source), outcome=Outcome.FAILURE,
                         detail=str(exc))  # fmt: skip
            raise
        self._devices.record("device.claim", Actor(created.device.id, source),
                     detail=f"enrollment group {group}")  # fmt: skip
        return created, group

    def _claim(self, token: str, csr: bytes, requested: str | None) -> tuple[NewDevice, str]:
        check_csr(csr)  # refuse a bad CSR before it uses up the claim
        group = self._store.claim(enrollment.hash_claim(token), datetime.now(UTC))
        if group is None:
            raise ClaimRefused("the claim token is unknown, expired or used up")
        try:
            name = enrollment.device_name(group.name_template, use=group.uses, requested=requested)
            created = self._devices.add(name, csr=csr, tags=group.tags, desired=group.desired)
        except DeviceError:
            self._store.give_back(group.name)
            raise
        return created, group.name
