"""Security headers on every answer of a real hub: the API, health, the docs and the dashboard
(the browser checks are in test_dashboard.py)."""

import re

import httpx

from conftest import RunningHub

API_POLICY = {"default-src 'none'", "frame-ancestors 'none'"}


def directives(response: httpx.Response) -> set[str]:
    return {part.strip() for part in response.headers["content-security-policy"].split(";")}


def check_common(response: httpx.Response) -> None:
    where = f"{response.request.method} {response.request.url.path} ({response.status_code})"
    assert response.headers.get("x-content-type-options") == "nosniff", where
    assert response.headers.get("x-frame-options") == "DENY", where
    assert response.headers.get("referrer-policy") == "no-referrer", where
    assert "frame-ancestors 'none'" in directives(response), where
    assert "strict-transport-security" not in response.headers, where  # plain HTTP


def test_api_answers_load_nothing_and_cannot_be_framed(hub: RunningHub) -> None:
    with hub.api() as api:
        answers = [
            api.get("/api/v1/devices"),
            api.get("/api/v1/devices/no-such-device"),
            api.get("/api/v1/devices/x/telemetry", params={"bucket": "1x", "metric": "m"}),
            api.get("/openapi.json"),
            httpx.get(f"{hub.url}/api/v1/devices"),  # no token: 401
            httpx.get(f"{hub.url}/healthz"),
        ]
    assert [answer.status_code for answer in answers] == [200, 404, 422, 200, 401, 200]
    for answer in answers:
        check_common(answer)
        assert directives(answer) == API_POLICY


def test_the_docs_cannot_be_framed_and_still_load_their_scripts(hub: RunningHub) -> None:
    for path in ("/docs", "/redoc"):
        answer = httpx.get(f"{hub.url}{path}")
        assert answer.status_code == 200
        check_common(answer)
        assert directives(answer) == {"frame-ancestors 'none'"}  # Swagger UI comes from a CDN


def test_dashboard_pages_and_their_files_have_a_policy_nicegui_works_with(
    hub: RunningHub,
) -> None:
    redirect = httpx.get(f"{hub.url}/")
    assert redirect.status_code in (302, 307)
    login = httpx.get(f"{hub.url}/login")
    assert login.status_code == 200 and "text/html" in login.headers["content-type"]
    for answer in (redirect, login):
        check_common(answer)
        policy = directives(answer)
        assert "default-src 'self'" in policy and "object-src 'none'" in policy
        assert "script-src 'self' 'unsafe-inline' 'unsafe-eval'" in policy
    script = re.search(r'src="(/_nicegui/[^"]+\.js)"', login.text)
    assert script is not None
    asset = httpx.get(f"{hub.url}{script.group(1)}")
    assert asset.status_code == 200
    check_common(asset)
