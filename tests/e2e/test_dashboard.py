"""The dashboard in a real browser (the system's Chromium): fleet page and live device chart,
with the hub's content security policy in force; and no other site may frame it."""

import functools
import http.server
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

from conftest import RunningHub, require, wait_until

DEVICES = 5


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    chromium = require("chromium")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=chromium,
            args=["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"],
        )
        yield launched
        launched.close()


@pytest.fixture(scope="module")
def fleet(hub: RunningHub, tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """A small simulated fleet sending while the browser looks."""
    state = tmp_path_factory.mktemp("dash-sim")
    process = subprocess.Popen(
        [sys.executable, "-m", "fleetmind", "sim", "--devices", str(DEVICES), "--rate", "2",
         "--duration", "90", "--prefix", "dash", "--url", hub.url, "--token", hub.token,
         "--data-dir", str(state)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    yield
    process.terminate()
    process.wait(timeout=30)


def violations(page: Page) -> list[str]:
    """What the page's content security policy blocks, and script errors, as they happen."""
    found: list[str] = []
    page.on("console", lambda message: found.append(message.text)
            if "Content Security Policy" in message.text else None)  # fmt: skip
    page.on("pageerror", lambda error: found.append(str(error)))
    return found


def sign_in(page: Page, hub: RunningHub) -> None:
    page.goto(hub.url)
    expect(page).to_have_url(f"{hub.url}/login")
    page.get_by_label("API token").fill("fm_not-a-token")
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_text("That token is not valid.")).to_be_visible()
    page.get_by_label("API token").fill(hub.token)
    page.get_by_role("button", name="Sign in").click()
    expect(page).to_have_url(f"{hub.url}/")


def test_fleet_page_lists_devices_and_device_page_draws_a_chart(
    hub: RunningHub, browser: Browser, fleet: None, tmp_path: Path
) -> None:
    page = browser.new_page(viewport={"width": 1400, "height": 900})
    blocked = violations(page)
    sign_in(page, hub)
    for index in range(DEVICES):
        row = page.locator("tr", has_text=f"dash-{index:04d}")
        expect(row).to_be_visible(timeout=30_000)
        expect(row.get_by_text("online")).to_be_visible(timeout=30_000)
    expect(page.locator("tr", has_text="dash-0000")).to_contain_text("temperature", timeout=30_000)

    page.get_by_role("link", name="dash-0000").click()
    expect(page).to_have_url(f"{hub.url}/devices/dash-0000")
    charts = page.locator(".nicegui-echart")
    expect(charts).to_have_count(4, timeout=30_000)
    chart_id = int((charts.first.get_attribute("id") or "c0").removeprefix("c"))
    points = page.wait_for_function(
        "id => { const c = getElement(id).chart; const s = c && c.getOption().series;"
        " return s && s[0].data.length >= 3 && s[0].data.length; }",
        arg=chart_id,
        timeout=30_000,
    ).json_value()
    assert points >= 3
    assert page.locator(".nicegui-echart canvas").count() >= 4
    page.screenshot(path=tmp_path / "device.png")
    assert blocked == []


def test_pages_need_a_signed_in_browser(hub: RunningHub, browser: Browser) -> None:
    page = browser.new_page()
    page.goto(f"{hub.url}/devices/dash-0000")
    expect(page).to_have_url(f"{hub.url}/login")


def test_twin_is_edited_on_the_device_page_and_stale_saves_are_refused(
    hub: RunningHub, browser: Browser, fleet: None
) -> None:
    page = browser.new_page(viewport={"width": 1400, "height": 1200})
    blocked = violations(page)
    sign_in(page, hub)
    expect(page.get_by_role("columnheader", name="Bytes saved")).to_be_visible()
    page.goto(f"{hub.url}/devices/dash-0001")
    expect(page.get_by_text("Desired, version 0")).to_be_visible(timeout=30_000)
    editor = page.get_by_label("desired")

    editor.fill("{not json")
    page.get_by_role("button", name="Save desired").click()
    expect(page.get_by_text("Not JSON")).to_be_visible()

    editor.fill('{"settings": {"sample_hz": 1, "sensors": {"temperature": {"deadband": 0.5}}}}')
    page.get_by_role("button", name="Save desired").click()
    expect(page.get_by_text("Saved as version 1.")).to_be_visible()
    expect(page.get_by_text("Desired, version 1")).to_be_visible()
    # the agent applies it live and reports it back
    expect(page.locator(".nicegui-code")).to_contain_text('"deadband": 0.5', timeout=30_000)

    with hub.api() as api:  # someone else changes the twin meanwhile
        changed = api.patch(
            "/api/v1/devices/dash-0001/twin/desired",
            json={"settings": {"sample_hz": 2}},
            headers={"If-Match": '"1"'},
        )
        assert changed.status_code == 200, changed.text
    editor.fill('{"settings": {"sample_hz": 4}}')
    page.get_by_role("button", name="Save desired").click()
    expect(page.get_by_text("Not saved: desired is at version 2, not 1")).to_be_visible()
    page.get_by_role("button", name="Reload").click()
    expect(page.get_by_text("Desired, version 2")).to_be_visible()
    assert '"sample_hz": 2' in editor.input_value()
    with hub.api() as api:
        twin = api.get("/api/v1/devices/dash-0001/twin").json()
    assert twin["desired"]["settings"]["sample_hz"] == 2
    assert twin["desired_version"] == 2
    assert blocked == []


def test_roles_on_pages_and_the_audit_log(hub: RunningHub, browser: Browser, fleet: None) -> None:
    with hub.api() as api:
        created = api.post("/api/v1/users", json={"name": "vic", "role": "viewer",
                                                   "password": "viewer passphrase"})  # fmt: skip
        assert created.status_code == 201, created.text
    page = browser.new_page(viewport={"width": 1400, "height": 1200})
    page.goto(f"{hub.url}/login")
    page.get_by_label("User name").fill("vic")
    page.get_by_label("Password").fill("wrong passphrase")
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_text("Unknown user or wrong password.")).to_be_visible()
    page.get_by_label("Password").fill("viewer passphrase")
    page.get_by_role("button", name="Sign in").click()
    expect(page).to_have_url(f"{hub.url}/")
    expect(page.get_by_text("vic (viewer)")).to_be_visible()
    expect(page.get_by_role("link", name="Audit log")).to_have_count(0)
    page.goto(f"{hub.url}/devices/dash-0002")
    expect(page.get_by_role("button", name="Save desired")).to_be_disabled()
    expect(page.get_by_role("button", name="Suspend")).to_be_disabled()
    page.goto(f"{hub.url}/audit")
    expect(page.get_by_text("The audit log is for admins.")).to_be_visible()

    with hub.api() as api:
        assert api.post("/api/v1/devices", json={"name": "dash-idle"}).status_code == 201
        assert api.put("/api/v1/devices/dash-idle/state", json={"state": "suspended"}).is_success
    admin = browser.new_page(viewport={"width": 1400, "height": 1200})
    sign_in(admin, hub)
    expect(admin.locator("tr", has_text="dash-idle")).to_contain_text("suspended")
    admin.get_by_role("link", name="Audit log").click()
    expect(admin).to_have_url(f"{hub.url}/audit")
    rows = admin.locator("tbody tr")
    expect(rows.filter(has_text="auth.login").filter(has_text="vic").first).to_be_visible()
    expect(rows.filter(has_text="failure").first).to_be_visible()

    admin.goto(f"{hub.url}/devices/dash-idle")
    expect(admin.get_by_text("suspended, last seen")).to_be_visible()
    certificates = admin.locator("table", has_text="Valid until").locator("tbody tr")
    expect(certificates).to_have_count(1)
    admin.get_by_role("button", name="Reactivate").click()
    expect(admin.get_by_text("dash-idle is active.")).to_be_visible()
    expect(admin.get_by_text("offline, last seen")).to_be_visible(timeout=10_000)
    assert "viewer passphrase" not in admin.content()


def test_another_site_cannot_frame_the_dashboard(
    hub: RunningHub, browser: Browser, tmp_path: Path
) -> None:
    """A page of another origin (localhost on a port of its own; a public one would be stopped
    by the browser's private-network rules anyway) with the dashboard in an iframe shows an
    error in the frame, not the sign-in form (nor, signed in, the lifecycle buttons)."""
    (tmp_path / "index.html").write_text(
        f'<h1>elsewhere</h1><iframe id="hub" src="{hub.url}/login" width="800" height="600">'
    )
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(tmp_path))
    site = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=site.serve_forever, daemon=True).start()
    page = browser.new_page()
    seen: list[str] = []
    page.on("console", lambda message: seen.append(message.text))
    try:
        page.goto(f"http://localhost:{site.server_address[1]}/index.html")
        expect(page.get_by_role("heading", name="elsewhere")).to_be_visible()
        frame = page.locator("#hub").element_handle().content_frame()
        assert frame is not None
        wait_until(lambda: any("frame-ancestors" in text for text in seen), timeout=10)
        assert not frame.url.startswith(hub.url)  # an error page in its place
        assert frame.get_by_role("button", name="Sign in").count() == 0
    finally:
        site.shutdown()
        site.server_close()
