"""The fleetmind command against a real hub: JSON for scripts, one-line errors."""

import json
import subprocess
import sys
import time
from pathlib import Path

from conftest import RunningHub, publish_as, wait_until
from fleetmind.wire import senml, topics


def test_help_lists_every_command() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "fleetmind", "--help"], capture_output=True, text=True, check=True
    )
    for command in ("hub", "agent", "sim", "demo", "device", "telemetry"):
        assert command in result.stdout


def test_device_add_list_and_telemetry_query(hub: RunningHub) -> None:
    added = json.loads(hub.cli("device", "add", "cli-1").stdout)
    assert added["id"] == "cli-1"
    assert set(added["mqtt"]) >= {"host", "port", "username", "password"}
    listed = json.loads(hub.cli("device", "list", "--json").stdout)
    assert "cli-1" in [device["id"] for device in listed]

    now = time.time()
    readings = [senml.Reading("temp", now - 60 + s, float(s)) for s in range(60)]
    publish_as(added, topics.telemetry("cli-1"), senml.encode_cbor(readings, boot="b", seq=0))

    def query(*extra: str) -> list[dict[str, object]]:
        result = hub.cli("telemetry", "query", "cli-1", "temp", "--since", "5m", "--json", *extra)
        points: list[dict[str, object]] = json.loads(result.stdout)["points"]
        return points

    assert len(wait_until(lambda: len(query()) == 60 and query())) == 60
    first = hub.cli("telemetry", "query", "cli-1", "temp", "--since", "5m", "--json",
                    "--limit", "25")  # fmt: skip
    assert len(json.loads(first.stdout)["points"]) == 25 and json.loads(first.stdout)["next"]
    counts = query("--bucket", "1h", "--agg", "count")
    assert sum(point["value"] for point in counts) == 60  # type: ignore[misc]


def test_errors_are_one_clear_line(hub: RunningHub) -> None:
    missing = hub.cli("device", "get", "no-such-device", check=False)
    assert missing.returncode == 1
    assert missing.stderr.strip().count("\n") == 0
    assert "404" in missing.stderr
    assert "Traceback" not in missing.stderr

    unreachable = subprocess.run(
        [sys.executable, "-m", "fleetmind", "device", "list",
         "--url", "http://127.0.0.1:9", "--token", "fm_x"],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert unreachable.returncode == 1
    assert "cannot reach the hub" in unreachable.stderr
    assert "Traceback" not in unreachable.stderr

    bad_duration = hub.cli("telemetry", "query", "cli-1", "temp", "--since", "ten", check=False)
    assert bad_duration.returncode == 1
    assert "invalid duration" in bad_duration.stderr


def test_agent_command_sends_telemetry(hub: RunningHub, tmp_path: Path) -> None:
    added = hub.cli("device", "add", "cli-agent").stdout
    credentials = tmp_path / "cli-agent.json"
    credentials.write_text(added)
    agent = subprocess.Popen(
        [sys.executable, "-m", "fleetmind", "agent", "--credentials", str(credentials),
         "--rate", "5", "--state-dir", str(tmp_path / "state")],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )  # fmt: skip
    try:

        def temperatures() -> int:
            result = hub.cli("telemetry", "query", "cli-agent", "temperature", "--json")
            return len(json.loads(result.stdout)["points"])

        assert wait_until(lambda: temperatures() >= 5, timeout=30)
    finally:
        agent.terminate()
        _, errors = agent.communicate(timeout=30)  # waits, reads and closes the pipe
    assert b"Traceback" not in errors


def test_people_tokens_enrollments_and_the_audit_log(hub: RunningHub) -> None:
    added = hub.cli("user", "add", "cli-ana", "--role", "viewer", stdin="a long passphrase\n")
    assert "cli-ana: viewer" in added.stdout
    assert "cli-ana" in {u["name"] for u in json.loads(hub.cli("user", "list").stdout)}
    made = json.loads(hub.cli("token", "create", "ci", "--scope", "read", "--expires-in", "1d",
                              "--user", "cli-ana").stdout)  # fmt: skip
    assert made["scopes"] == ["read"] and made["expires_at"]
    assert hub.cli("device", "list", "--json", token=made["token"]).returncode == 0
    refused = hub.cli("device", "add", "nope", token=made["token"], check=False)
    assert refused.returncode == 1 and "403" in refused.stderr
    assert "cli-ana: operator" in hub.cli("user", "role", "cli-ana", "operator").stdout

    group = json.loads(hub.cli("enrollment", "create", "cli-group", "--template", "cli-{n}",
                               "--max-uses", "3", "--tag", "site=a").stdout)  # fmt: skip
    assert group["claim_token"].startswith("fmc_") and group["tags"] == {"site": "a"}
    events = json.loads(hub.cli("audit", "--type", "user.", "--json").stdout)
    assert [e["type"] for e in events[:2]] == ["user.role", "user.create"]
    assert "a long passphrase" not in hub.cli("audit").stdout
