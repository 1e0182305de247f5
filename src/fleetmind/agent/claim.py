"""The device's side of provisioning by claim: make a key, ask the hub to certify it.

The private key is made here and never sent; the hub sees only the CSR. Runs on the agent (no
hub library, nothing of the registry), over the hub's REST API; imported only to claim, so a
running agent loads neither the HTTP client nor the X.509 stack for it.
"""

import socket
from typing import Any

import httpx

from fleetmind import certificates
from fleetmind.transport.errors import HubError
from fleetmind.wire import topics
from fleetmind.wire.errors import TopicError


class ClaimRefused(HubError):
    """The hub refused the claim (a claim token unknown, expired or used up), had no mutual-TLS
    endpoint for devices, or could not be reached."""


def default_name() -> str:
    """What a device calls itself when not told: its host name, made a valid device id."""
    name = "".join(c if c.isalnum() or c in "-_." else "-" for c in socket.gethostname())
    try:
        return topics.check_device_id(name.strip("-._")[:40] or "device")
    except TopicError:
        return "device"


def claim(
    hub_url: str,
    claim_token: str,
    name: str,
    *,
    http: httpx.Client | None = None,
    timeout: float = 30.0,
) -> dict[str, Any]:
    """Claim an identity from an enrollment group: the hub's device document (with its
    certificate) and, under ``mqtts.private_key``, the key made here. ``http``: a client to
    reuse when claiming for many devices (the simulator)."""
    key = certificates.new_key()
    csr = certificates.make_csr(key, name).decode()
    try:
        response = (http or httpx).post(
            f"{hub_url.rstrip('/')}/api/v1/claim",
            json={"csr": csr, "name": name},
            headers={"Authorization": f"Bearer {claim_token}"},
            timeout=timeout,
        )
    except httpx.HTTPError as exc:
        raise ClaimRefused(f"cannot reach the hub at {hub_url}: {exc}") from None
    if response.status_code != httpx.codes.CREATED:
        try:
            detail = response.json().get("detail", response.text)
        except ValueError:
            detail = response.text
        raise ClaimRefused(f"the hub refused the claim ({response.status_code}): {detail}")
    document: dict[str, Any] = response.json()
    if not document.get("mqtts"):
        raise ClaimRefused("the hub has no mutual-TLS endpoint for devices")
    document["mqtts"]["private_key"] = certificates.key_pem(key).decode()
    return document
