"""The hub's REST API over httpx, for the CLI and the simulator."""

import ssl
from pathlib import Path
from typing import Any

import httpx

from fleetmind.transport.errors import HubError


class HubClient:
    def __init__(
        self, url: str, token: str | None, *, timeout: float = 30.0, ca_file: Path | None = None
    ) -> None:
        """``ca_file``: trust this CA for HTTPS (the hub's own), besides the system's."""
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.url = url.rstrip("/")
        verify: ssl.SSLContext | bool = True
        if ca_file is not None:
            verify = ssl.create_default_context()
            verify.load_verify_locations(ca_file)
        self._http = httpx.Client(
            base_url=self.url, headers=headers, timeout=timeout, verify=verify
        )

    def __enter__(self) -> "HubClient":
        return self

    def __exit__(self, *_: object) -> None:
        self._http.close()

    def request(self, method: str, path: str, **kwargs: Any) -> Any:
        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            raise HubError(f"cannot reach the hub at {self.url}: {exc}") from None
        if response.is_error:
            raise HubError(f"{method} {path}: {response.status_code} {_detail(response)}")
        return response.json() if response.content else None

    def add_device(self, name: str, *, csr: str | None = None) -> dict[str, Any]:
        body = {"name": name} | ({"csr": csr} if csr is not None else {})
        device: dict[str, Any] = self.request("POST", "/api/v1/devices", json=body)
        return device

    def set_state(self, device_id: str, state: str) -> dict[str, Any]:
        path = f"/api/v1/devices/{device_id}/state"
        device: dict[str, Any] = self.request("PUT", path, json={"state": state})
        return device

    def list_devices(self) -> list[dict[str, Any]]:
        devices: list[dict[str, Any]] = self.request("GET", "/api/v1/devices")
        return devices

    def get_device(self, device_id: str) -> dict[str, Any]:
        device: dict[str, Any] = self.request("GET", f"/api/v1/devices/{device_id}")
        return device

    def rejects(self, device_id: str) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = self.request("GET", f"/api/v1/devices/{device_id}/rejects")
        return items

    def delete_device(self, device_id: str) -> None:
        self.request("DELETE", f"/api/v1/devices/{device_id}")

    def rotate_secret(self, device_id: str) -> dict[str, Any]:
        """The device's new MQTT secret (its old one stops working)."""
        secret: dict[str, Any] = self.request("POST", f"/api/v1/devices/{device_id}/secret")
        return secret

    def create_enrollment(
        self,
        name: str,
        *,
        name_template: str,
        max_uses: int,
        expires_in_s: int,
        tags: dict[str, str],
    ) -> dict[str, Any]:
        """A new enrollment group with its claim token (shown only now)."""
        body = {"name": name, "name_template": name_template, "max_uses": max_uses,
                "expires_in_s": expires_in_s, "tags": tags}  # fmt: skip
        group: dict[str, Any] = self.request("POST", "/api/v1/enrollments", json=body)
        return group

    def add_user(self, name: str, role: str, password: str) -> dict[str, Any]:
        body = {"name": name, "role": role, "password": password}
        user: dict[str, Any] = self.request("POST", "/api/v1/users", json=body)
        return user

    def list_users(self) -> list[dict[str, Any]]:
        users: list[dict[str, Any]] = self.request("GET", "/api/v1/users")
        return users

    def set_role(self, name: str, role: str) -> dict[str, Any]:
        """Change a user's role; their tokens narrow or widen at once."""
        user: dict[str, Any] = self.request("PATCH", f"/api/v1/users/{name}", json={"role": role})
        return user

    def create_token(
        self,
        name: str,
        scopes: list[str],
        *,
        user: str | None = None,
        expires_in_s: int | None = None,
    ) -> dict[str, Any]:
        """A new API token (shown only now); ``user``: whose, when not the caller's (admins)."""
        body: dict[str, Any] = {"name": name, "scopes": scopes, "user": user}
        if expires_in_s is not None:
            body["expires_in_s"] = expires_in_s
        token: dict[str, Any] = self.request("POST", "/api/v1/tokens", json=body)
        return token

    def audit(self, *, limit: int, kind: str | None = None) -> list[dict[str, Any]]:
        """Audit events, newest first; ``kind``: a type or its prefix."""
        params: dict[str, Any] = {"limit": limit} | ({"type": kind} if kind else {})
        events: list[dict[str, Any]] = self.request("GET", "/api/v1/audit", params=params)
        return events

    def telemetry(
        self, device_id: str, params: dict[str, str], *, limit: int | None = None
    ) -> dict[str, Any]:
        """A series, its raw points read page after page (following ``next``) up to ``limit``
        points, or all of them; ``next`` in the answer says where a series cut short goes on."""
        path = f"/api/v1/devices/{device_id}/telemetry"
        series: dict[str, Any] = self.request(
            "GET", path, params=params | {"limit": _page_size(limit, 0)}
        )
        points: list[Any] = series["points"]
        while series.get("next") and (limit is None or len(points) < limit):
            more = {"limit": _page_size(limit, len(points)), "cursor": series["next"]}
            page = self.request("GET", path, params=params | more)
            points.extend(page["points"])
            series["next"] = page["next"]
        return series


#: the hub's largest page of raw points
PAGE_SIZE = 10_000


def _page_size(limit: int | None, have: int) -> str:
    return str(PAGE_SIZE if limit is None else min(PAGE_SIZE, limit - have))


def _detail(response: httpx.Response) -> str:
    try:
        detail = response.json().get("detail", response.text)
    except ValueError:
        return response.reason_phrase
    if isinstance(detail, list):  # validation errors: "field: message; ..."
        return "; ".join(
            f"{'.'.join(str(part) for part in item.get('loc', [])[1:])}: {item.get('msg')}"
            for item in detail
        )
    return str(detail)
