"""Who may do what, against a real hub: every route needs a valid token with the right scope,
passwords lock after repeated failures, roles narrow tokens at once, everything lands in the
audit log, and no secret reaches the log."""

import sqlite3
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import httpx

from conftest import RunningHub

#: routes meant to be public; every other one must refuse a missing, wrong, expired or
#: under-scoped token
#: (the claim is authenticated by a claim token instead: tests/e2e/test_claim.py)
PUBLIC = {("get", "/healthz"), ("post", "/api/v1/auth/login"), ("post", "/api/v1/claim")}
PASSWORD = "correct horse battery staple"
#: every secret this module creates; none may appear in the hub's log
SECRETS: list[str] = []


def required_scope(method: str, path: str) -> str:
    """The scope a route needs: people and the audit log are admin business; a caller's own
    tokens need only read; reading needs read and changing needs operate."""
    if path.startswith(("/api/v1/users", "/api/v1/audit")):
        return "admin"
    if path.startswith(("/api/v1/tokens", "/api/v1/auth/me")):
        return "read"
    return "read" if method == "get" else "operate"


def routes(hub: RunningHub) -> list[tuple[str, str]]:
    schema = httpx.get(f"{hub.url}/openapi.json").json()
    found = [
        (method, path)
        for path, methods in schema["paths"].items()
        for method in methods
        if (method, path) not in PUBLIC
    ]
    assert len(found) >= 20
    return found


def concrete(path: str) -> str:
    return (
        path.replace("{device_id}", "d1")
        .replace("{name}", "nobody")
        .replace("{token_id}", "999")
        .replace("{serial}", "abc")
        .replace("{command_id}", "c1")
    )


def token_for(hub: RunningHub, user: str, scopes: list[str], **extra: object) -> str:
    with hub.api() as api:
        response = api.post("/api/v1/tokens", json={"name": f"{user} test", "scopes": scopes,
                                                    "user": user, **extra})  # fmt: skip
        assert response.status_code == 201, response.text
    token: str = response.json()["token"]
    SECRETS.append(token)
    return token


def add_user(hub: RunningHub, name: str, role: str) -> None:
    SECRETS.append(f"{PASSWORD} {name}")
    with hub.api() as api:
        response = api.post(
            "/api/v1/users", json={"name": name, "role": role, "password": f"{PASSWORD} {name}"}
        )
        assert response.status_code == 201, response.text


def call(hub: RunningHub, method: str, path: str, token: str | None) -> int:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return httpx.request(method, f"{hub.url}{concrete(path)}", headers=headers).status_code


def test_every_route_refuses_a_missing_wrong_or_expired_token(hub: RunningHub) -> None:
    SECRETS.append(hub.token)
    expired = token_for(hub, "admin", ["read", "operate", "admin"], expires_in_s=60)
    with sqlite3.connect(hub.data_dir / "registry.db") as db:  # an hour later
        db.execute("UPDATE api_tokens SET expires_at = ? WHERE name = 'admin test'",
                   ((datetime.now(UTC) - timedelta(hours=1)).isoformat(" "),))  # fmt: skip
    for method, path in routes(hub):
        for token in (None, "fm_wrong", expired):
            assert call(hub, method, path, token) == 401, (method, path, token)
        response = httpx.request(method, f"{hub.url}{concrete(path)}",
                                 headers={"Authorization": "Basic eDp5"})  # fmt: skip
        assert response.status_code == 401, (method, path)


def test_every_route_refuses_a_token_without_its_scope(hub: RunningHub) -> None:
    add_user(hub, "vera", "viewer")
    add_user(hub, "otto", "operator")
    viewer = token_for(hub, "vera", ["read"])
    operator = token_for(hub, "otto", ["read", "operate"])
    operate_only = token_for(hub, "otto", ["operate"])
    checked = 0
    for method, path in routes(hub):
        scope = required_scope(method, path)
        lacking = {"read": [operate_only], "operate": [viewer], "admin": [viewer, operator]}[scope]
        for token in lacking:
            assert call(hub, method, path, token) == 403, (method, path, scope)
            checked += 1
        allowed = {"read": viewer, "operate": operator, "admin": hub.token}[scope]
        assert call(hub, method, path, allowed) not in (401, 403), (method, path, scope)
    assert checked >= 20


def test_a_token_cannot_exceed_its_role(hub: RunningHub) -> None:
    with hub.api() as api:
        response = api.post("/api/v1/tokens", json={"name": "x", "scopes": ["admin"],
                                                    "user": "vera"})  # fmt: skip
    assert response.status_code == 403


def test_logins_lock_after_five_failures_and_are_audited(hub: RunningHub) -> None:
    add_user(hub, "lena", "operator")
    login = f"{hub.url}/api/v1/auth/login"
    ok = httpx.post(login, json={"username": "lena", "password": f"{PASSWORD} lena"})
    assert ok.status_code == 200 and ok.json()["scopes"] == ["operate", "read"]
    SECRETS.append(ok.json()["token"])
    for _ in range(4):
        wrong = httpx.post(login, json={"username": "lena", "password": "guess-guess-guess"})
        assert wrong.status_code == 401
    locked = httpx.post(login, json={"username": "lena", "password": "guess-guess-guess"})
    assert locked.status_code == 429 and int(locked.headers["Retry-After"]) > 0
    still = httpx.post(login, json={"username": "lena", "password": f"{PASSWORD} lena"})
    assert still.status_code == 429  # the right password does not help while locked
    unknown = httpx.post(login, json={"username": "nobody", "password": "guess-guess-guess"})
    assert unknown.status_code == 401
    with hub.api() as api:
        events = api.get("/api/v1/audit", params={"type": "auth."}).json()
        assert api.patch("/api/v1/users/lena", json={"password": f"{PASSWORD} lena"}).is_success
    mine = [e for e in events if e["actor"] == "lena"]
    assert [e["type"] for e in mine[:3]] == ["auth.lockout", "auth.lockout", "auth.login"]
    assert {e["outcome"] for e in mine[2:6]} == {"failure"}
    assert all(e["source"] == "127.0.0.1" and e["at"] for e in mine)
    again = httpx.post(login, json={"username": "lena", "password": f"{PASSWORD} lena"})
    assert again.status_code == 200  # an admin's password reset unlocks
    SECRETS.append(again.json()["token"])


def test_parallel_wrong_passwords_cannot_outrun_the_lockout(hub: RunningHub) -> None:
    """200 guesses from 40 threads: no more than five are checked before the account locks,
    and the right password is refused after them."""
    add_user(hub, "petra", "operator")
    login = f"{hub.url}/api/v1/auth/login"

    def guess(number: int) -> int:
        body = {"username": "petra", "password": f"guess number {number}"}
        return httpx.post(login, json=body, timeout=60).status_code

    with ThreadPoolExecutor(40) as pool:
        codes = list(pool.map(guess, range(200)))
    assert set(codes) <= {401, 429}
    assert len(codes) - codes.count(429) <= 5, f"{codes.count(401)} guesses were checked"
    right = httpx.post(login, json={"username": "petra", "password": f"{PASSWORD} petra"})
    assert right.status_code == 429 and int(right.headers["Retry-After"]) > 0


def test_a_demoted_user_s_tokens_narrow_at_once(hub: RunningHub) -> None:
    add_user(hub, "dora", "operator")
    token = token_for(hub, "dora", ["read", "operate"])
    assert call(hub, "put", "/api/v1/devices/{device_id}/state", token) == 422  # allowed
    with hub.api() as api:
        assert api.patch("/api/v1/users/dora", json={"role": "viewer"}).is_success
        events = api.get("/api/v1/audit", params={"type": "user.role"}).json()
    assert call(hub, "put", "/api/v1/devices/{device_id}/state", token) == 403
    assert events[0]["detail"] == "dora is now viewer" and events[0]["actor"].startswith("admin")


def test_device_operations_are_audited(hub: RunningHub) -> None:
    with hub.api() as api:
        created = api.post("/api/v1/devices", json={"name": "aud-1"}).json()
        SECRETS.extend([created["mqtt"]["password"], created["mqtts"]["private_key"]])
        api.put("/api/v1/devices/aud-1/state", json={"state": "suspended"})
        api.delete("/api/v1/devices/aud-1")
        events = api.get("/api/v1/audit", params={"type": "device."}).json()
    assert [e["type"] for e in events[:3]] == ["device.delete", "device.state", "device.add"]
    assert events[1]["detail"] == "aud-1 is suspended"


def test_no_secret_reaches_the_log_or_the_audit_log(hub: RunningHub) -> None:
    """Every secret this module made (the other tests' too, when they ran first)."""
    SECRETS.append(hub.token)
    add_user(hub, "sam", "operator")
    SECRETS.append(token_for(hub, "sam", ["read"]))
    login = httpx.post(f"{hub.url}/api/v1/auth/login",
                       json={"username": "sam", "password": f"{PASSWORD} sam"})  # fmt: skip
    SECRETS.append(login.json()["token"])
    with hub.api() as api:
        created = api.post("/api/v1/devices", json={"name": "secret-1"}).json()
        SECRETS.extend([created["mqtt"]["password"], created["mqtts"]["private_key"]])
        SECRETS.append(api.post("/api/v1/devices/secret-1/secret").json()["password"])
        claim = api.post("/api/v1/enrollments", json={"name": "secret-group",
                         "name_template": "s-{n}", "max_uses": 1, "expires_in_s": 600})  # fmt: skip
        SECRETS.append(claim.json()["claim_token"])
        audit = api.get("/api/v1/audit", params={"limit": 1000}).text
    log = hub.log.read_text()
    assert len(SECRETS) >= 8
    for secret in SECRETS:
        for line in secret.splitlines():
            if len(line) >= 16 and not line.startswith("-----"):
                assert line not in log, "a secret is in the hub's log"
                assert line not in audit, "a secret is in the audit log"
