"""Zero-touch provisioning by claim: an enrollment group, an agent that claims its identity at
first start, and a claim token that opens nothing else."""

import json
import sqlite3
import stat
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from conftest import RunningHub, stop, wait_until
from fleetmind.agent.claim import ClaimRefused, claim


def enroll(hub: RunningHub, name: str, **fields: object) -> str:
    body = {
        "name": name,
        "name_template": f"{name}-{{n}}",
        "max_uses": 2,
        "expires_in_s": 600,
        "tags": {"site": "plant-a"},
        "desired": {"settings": {"sample_hz": 4}},
    } | fields
    with hub.api() as api:
        response = api.post("/api/v1/enrollments", json=body)
    assert response.status_code == 201, response.text
    token: str = response.json()["claim_token"]
    return token


def test_an_agent_claims_its_identity_and_starts_from_the_group_twin(
    hub: RunningHub, tmp_path: Path
) -> None:
    token = enroll(hub, "line")
    state = tmp_path / "state"
    agent = subprocess.Popen(
        [sys.executable, "-m", "fleetmind", "agent", "--claim", token, "--hub", hub.url,
         "--state-dir", str(state), "--rate", "5"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        with hub.api() as api:
            wait_until(lambda: api.get("/api/v1/devices/line-0001").status_code == 200)
            device = api.get("/api/v1/devices/line-0001").json()
            assert device["tags"] == {"site": "plant-a"}
            twin = wait_until(
                lambda: (t := api.get("/api/v1/devices/line-0001/twin").json())["reported"] and t,
                timeout=30,
            )
            assert twin["desired"] == {"settings": {"sample_hz": 4}}
            assert twin["reported"]["settings"] == {"sample_hz": 4}

            def latest() -> dict[str, list[object]]:
                found: dict[str, list[object]] = api.get("/api/v1/telemetry/latest").json()
                return found

            wait_until(lambda: len(latest().get("line-0001", [])) >= 4, timeout=30)
    finally:
        stop(agent)
    identity = state / "identity.json"
    assert stat.S_IMODE(identity.stat().st_mode) == 0o600
    document = json.loads(identity.read_text())
    assert document["id"] == "line-0001" and "PRIVATE KEY" in document["mqtts"]["private_key"]
    output, _ = agent.communicate()  # reads and closes the pipe
    assert token not in output.decode()


def test_a_claim_token_is_counted_and_expires(hub: RunningHub) -> None:
    token = enroll(hub, "cell")
    first = claim(hub.url, token, "x")
    second = claim(hub.url, token, "y")
    assert (first["id"], second["id"]) == ("cell-0001", "cell-0002")
    assert first["mqtts"]["certificate"] != second["mqtts"]["certificate"]
    with pytest.raises(ClaimRefused, match="401"):
        claim(hub.url, token, "z")  # used up

    late = enroll(hub, "late")
    with sqlite3.connect(hub.data_dir / "registry.db") as db:
        past = (datetime.now(UTC) - timedelta(seconds=1)).isoformat(" ")
        db.execute("UPDATE enrollments SET expires_at = ? WHERE name = 'late'", (past,))
    with pytest.raises(ClaimRefused, match="expired"):
        claim(hub.url, late, "x")
    with pytest.raises(ClaimRefused, match="401"):
        claim(hub.url, "fmc_made-up", "x")
    with hub.api() as api:
        events = api.get("/api/v1/audit", params={"type": "device.claim"}).json()
    assert [e["outcome"] for e in events[:3]] == ["failure", "failure", "failure"]


def test_a_bad_csr_does_not_use_up_the_claim(hub: RunningHub) -> None:
    token = enroll(hub, "bad", max_uses=1)
    response = httpx.post(f"{hub.url}/api/v1/claim", json={"csr": "nope"},
                          headers={"Authorization": f"Bearer {token}"})  # fmt: skip
    assert response.status_code == 422
    assert claim(hub.url, token, "ok")["id"] == "bad-0001"


def test_a_claim_token_opens_neither_the_api_nor_mqtt(hub: RunningHub) -> None:
    token = enroll(hub, "deny")
    refused = httpx.get(f"{hub.url}/api/v1/devices", headers={"Authorization": f"Bearer {token}"})
    assert refused.status_code == 401
    with hub.api() as api:
        mqtt_port = int(api.post("/api/v1/devices", json={"name": "probe"}).json()["mqtt"]["port"])
    for username in ("deny-0001", "probe", "_hub"):
        assert _refused(mqtt_port, username, token), f"{username} got in with a claim token"


def _refused(port: int, username: str, password: str) -> bool:
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"claim-{username}")
    client.username_pw_set(username, password)
    result: list[object] = []
    client.on_connect = lambda _c, _u, _f, reason, _p: result.append(reason)
    client.connect("127.0.0.1", port)
    client.loop_start()
    wait_until(lambda: result, timeout=10)
    client.loop_stop()
    client.disconnect()
    return bool(getattr(result[0], "is_failure", False))


def test_enrollment_templates_must_make_distinct_names(hub: RunningHub) -> None:
    body = {"name": "same", "name_template": "same", "max_uses": 5, "expires_in_s": 600}
    with hub.api() as api:
        response = api.post("/api/v1/enrollments", json=body)
        assert response.status_code == 409
        assert "{n} or {name}" in response.json()["detail"]


def test_the_simulator_provisions_by_claim(hub: RunningHub, tmp_path: Path) -> None:
    token = enroll(hub, "simclaim", name_template="{name}", max_uses=3)
    result = hub.cli("sim", "--devices", "3", "--prefix", "simc", "--rate", "2", "--duration", "2",
                     "--claim", token, "--data-dir", str(tmp_path), "--json")  # fmt: skip
    summary = json.loads(result.stdout)
    assert summary["readings_acked"] == summary["readings_sent"] > 0
    with hub.api() as api:
        groups = {g["name"]: g for g in api.get("/api/v1/enrollments").json()}
        assert groups["simclaim"]["uses"] == 3
        assert api.get("/api/v1/devices/simc-0002").json()["tags"] == {"site": "plant-a"}
    assert token not in result.stdout + result.stderr
