"""Device identity end to end: certificates from the API and the CLI, an agent over mutual TLS
with a key that never left it, and the lifecycle."""

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from cryptography import x509
from paho.mqtt.enums import CallbackAPIVersion

from conftest import (
    Mosquitto,
    RunningHub,
    free_port,
    mosquitto_for_hub,
    start_hub,
    stop,
    wait_until,
)
from fleetmind import certificates
from fleetmind.agent.credentials import Credentials
from fleetmind.devices import model
from fleetmind.devices.ca import CertificateAuthority
from fleetmind.wire import senml, topics


def _points(hub: RunningHub, device_id: str) -> int:
    with hub.api() as api:
        latest = api.get("/api/v1/telemetry/latest").json()
    return len(latest.get(device_id, []))


def test_two_devices_never_share_a_credential(hub: RunningHub) -> None:
    a = json.loads(hub.cli("device", "add", "id-a").stdout)
    b = json.loads(hub.cli("device", "add", "id-b").stdout)
    assert a["mqtt"]["password"] != b["mqtt"]["password"]
    for field in ("certificate", "private_key"):
        assert a["mqtts"][field] != b["mqtts"][field]
    assert a["mqtts"]["ca"] == b["mqtts"]["ca"]
    cert = certificates.load_certificate(a["mqtts"]["certificate"].encode())
    assert certificates.device_id_of(cert) == "id-a"


def test_an_agent_with_its_own_key_sends_over_mutual_tls(hub: RunningHub, tmp_path: Path) -> None:
    key = certificates.new_key()
    (tmp_path / "device.key").write_bytes(certificates.key_pem(key))
    (tmp_path / "device.csr").write_bytes(certificates.make_csr(key, "id-csr"))
    added = hub.cli("device", "add", "id-csr", "--csr", str(tmp_path / "device.csr")).stdout
    document = json.loads(added)
    assert document["mqtts"]["private_key"] is None  # the hub never had it
    issued = certificates.load_certificate(document["mqtts"]["certificate"].encode())
    assert issued.public_key() == key.public_key()
    (tmp_path / "credentials.json").write_text(added)

    agent = subprocess.Popen(
        [sys.executable, "-m", "fleetmind", "agent",
         "--credentials", str(tmp_path / "credentials.json"), "--key", str(tmp_path / "device.key"),
         "--rate", "5", "--state-dir", str(tmp_path / "state")],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        wait_until(lambda: _points(hub, "id-csr") >= 4, timeout=30)
    finally:
        stop(agent)
    with hub.api() as api:
        [record] = api.get("/api/v1/devices/id-csr/certificates").json()
    assert record["serial"] == certificates.serial_hex(issued)


def test_a_bad_csr_is_a_clear_error(hub: RunningHub, tmp_path: Path) -> None:
    (tmp_path / "bad.csr").write_text("-----BEGIN CERTIFICATE REQUEST-----\nnope\n")
    result = hub.cli("device", "add", "id-bad", "--csr", str(tmp_path / "bad.csr"), check=False)
    assert result.returncode == 1
    assert "422" in result.stderr and "Traceback" not in result.stderr


def test_suspend_reactivate_decommission_from_the_cli(hub: RunningHub) -> None:
    hub.cli("device", "add", "id-life")
    assert "suspended" in hub.cli("device", "suspend", "id-life").stdout
    assert "active" in hub.cli("device", "reactivate", "id-life").stdout
    assert "decommissioned" in hub.cli("device", "decommission", "id-life").stdout
    with hub.api() as api:
        [record] = api.get("/api/v1/devices/id-life/certificates").json()
        assert record["revoked_at"] is not None
        assert api.get("/api/v1/devices/id-life").json()["state"] == "decommissioned"
    again = hub.cli("device", "reactivate", "id-life", check=False)
    assert again.returncode == 1 and "409" in again.stderr


def test_a_device_renews_its_certificate_without_reflashing(
    hub: RunningHub, tmp_path: Path
) -> None:
    added = hub.cli("device", "add", "id-renew").stdout
    (tmp_path / "credentials.json").write_text(added)
    state = tmp_path / "state"
    agent = subprocess.Popen(
        [sys.executable, "-m", "fleetmind", "agent",
         "--credentials", str(tmp_path / "credentials.json"), "--rate", "5",
         "--state-dir", str(state)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        with hub.api() as api:
            wait_until(lambda: api.get("/api/v1/devices/id-renew").json()["online"], timeout=30)
            answer = api.post("/api/v1/devices/id-renew/commands",
                              json={"name": "renew_certificate", "timeout_s": 10})  # fmt: skip
            assert answer.json()["status"] == "succeeded", answer.text
            records = wait_until(
                lambda: (
                    len(r := api.get("/api/v1/devices/id-renew/certificates").json()) == 2 and r
                ),
                timeout=30,
            )
            identity = state / "identity.json"
            wait_until(identity.exists, timeout=30)
            renewed = certificates.load_certificate(
                json.loads(identity.read_text())["mqtts"]["certificate"].encode()
            )
            assert certificates.serial_hex(renewed) == records[0]["serial"]  # the newest
            first = json.loads(added)["mqtts"]["private_key"]
            assert json.loads(identity.read_text())["mqtts"]["private_key"] != first  # a new key

            def points() -> int:
                found = api.get("/api/v1/telemetry/latest").json().get("id-renew", [])
                return max((p["time"] for p in found), default="")

            before = points()
            wait_until(lambda: points() > before, timeout=30)  # data flows on the new certificate
            again = api.post("/api/v1/devices/id-renew/commands",
                             json={"name": "renew_certificate", "timeout_s": 10})  # fmt: skip
            assert again.json()["status"] == "succeeded"
            events = wait_until(
                lambda: len(e := api.get("/api/v1/audit",
                                         params={"type": "certificate.renew"}).json()) == 2 and e,
                timeout=30,
            )  # fmt: skip
    finally:
        stop(agent)
    assert [e["outcome"] for e in events] == ["failure", "success"]  # once per ten minutes
    assert "moments ago" in events[0]["detail"]


def test_a_rotated_secret_replaces_the_old_one(hub: RunningHub) -> None:
    added = json.loads(hub.cli("device", "add", "id-rotate").stdout)
    old = added["mqtt"]["password"]
    assert connects(added, old)
    new = json.loads(hub.cli("device", "rotate-secret", "id-rotate").stdout)["password"]
    assert new != old
    assert not connects(added, old)
    assert connects(added, new)
    with hub.api() as api:
        [event] = api.get("/api/v1/audit", params={"type": "device.secret"}).json()
    assert event["detail"] == "id-rotate" and new not in json.dumps(event)


def connects(device: dict[str, Any], password: str) -> bool:
    mqtt_section = device["mqtt"]
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"rotate-{time.time()}")
    client.username_pw_set(device["id"], password)
    result: list[object] = []
    client.on_connect = lambda _c, _u, _f, reason, _p: result.append(reason)
    client.connect(mqtt_section["host"], mqtt_section["port"])
    client.loop_start()
    wait_until(lambda: result, timeout=10)
    client.loop_stop()
    client.disconnect()
    return not getattr(result[0], "is_failure", True)


# -- a deleted device's name given to a new device ----------------------------------------------


def _serial(device: dict[str, Any]) -> str:
    return certificates.serial_hex(
        certificates.load_certificate(device["mqtts"]["certificate"].encode())
    )


def tls_connects(device: dict[str, Any], payload: bytes | None = None) -> bool:
    """Does the device's certificate open the mutual-TLS listener (and, with ``payload``, is
    that published as its telemetry)? A refusal may come in the handshake or the CONNACK."""
    identity = Credentials.from_device(device)
    context = identity.ssl_context()
    assert context is not None
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"tls-{time.time()}")
    client.tls_set_context(context)
    result: list[object] = []
    client.on_connect = lambda _c, _u, _f, reason, _p: result.append(reason)
    client.on_disconnect = lambda *_: result.append("disconnected")
    try:
        client.connect(identity.host, identity.port)
    except OSError:  # the broker refused the certificate in the handshake
        return False
    client.loop_start()
    try:
        wait_until(lambda: result, timeout=10)
        connected = not isinstance(result[0], str) and not getattr(result[0], "is_failure", True)
        if connected and payload is not None:
            client.publish(topics.telemetry(device["id"]), payload, qos=1).wait_for_publish(10)
        return connected
    finally:
        client.disconnect()
        client.loop_stop()


def test_a_deleted_device_s_certificate_does_not_open_a_new_device_of_its_name(
    hub: RunningHub,
) -> None:
    old = json.loads(hub.cli("device", "add", "id-reuse").stdout)
    assert tls_connects(old)
    hub.cli("device", "delete", "id-reuse")
    new = json.loads(hub.cli("device", "add", "id-reuse").stdout)
    assert not tls_connects(old)
    reading = senml.encode_cbor([senml.Reading("temp", time.time(), 21.5)])
    assert tls_connects(new, reading)
    with hub.api() as api:
        records = api.get("/api/v1/devices/id-reuse/certificates").json()
        wait_until(lambda: _points(hub, "id-reuse") >= 1)
    assert [(r["serial"], r["revoked_at"]) for r in records] == [(_serial(new), None)]


@dataclass
class MosquittoHub:
    hub: RunningHub
    mosquitto: Mosquitto


@pytest.fixture
def mosquitto_hub(tmp_path: Path) -> Iterator[MosquittoHub]:
    """A hub in front of a Mosquitto with a mutual-TLS listener: the hub's CA is made first so
    the broker can start with its files; the hub then keeps passwd, acl and crl.pem current."""
    broker_dir, data_dir = tmp_path / "mosquitto", tmp_path / "hub"
    broker_dir.mkdir()
    ca = CertificateAuthority.open(data_dir / "ca")  # the CA the hub opens at its start
    ca.server_files(broker_dir, ["127.0.0.1"])
    (broker_dir / "crl.pem").write_bytes(ca.revocation_list([]))
    secret = model.new_secret()
    tls_port = free_port()
    mosquitto = mosquitto_for_hub(broker_dir, secret, tls_port)
    try:
        hub = start_hub(
            data_dir,
            "--broker-url", mosquitto.hub_url(secret), "--mqtt-port", str(mosquitto.port),
            "--mosquitto-dir", str(broker_dir), "--mqtt-tls-port", str(tls_port),
        )  # fmt: skip
        yield MosquittoHub(hub, mosquitto)
        stop(hub.process)
    finally:
        stop(mosquitto.process)


def test_through_mosquitto_the_crl_refuses_a_deleted_device_s_certificate(
    mosquitto_hub: MosquittoHub,
) -> None:
    hub, crl = mosquitto_hub.hub, mosquitto_hub.mosquitto.directory / "crl.pem"

    def revoked() -> set[str]:
        return {f"{item.serial_number:x}" for item in x509.load_pem_x509_crl(crl.read_bytes())}

    old = json.loads(hub.cli("device", "add", "r").stdout)
    assert old["mqtts"]["port"] != old["mqtt"]["port"]
    time.sleep(0.5)  # Mosquitto rereads its files on the hub's SIGHUP
    assert tls_connects(old)
    hub.cli("device", "delete", "r")
    new = json.loads(hub.cli("device", "add", "r").stdout)
    time.sleep(0.5)
    assert revoked() == {_serial(old)}
    assert not tls_connects(old)
    assert tls_connects(new)
    with hub.api() as api:
        records = api.get("/api/v1/devices/r/certificates").json()
    assert [(r["serial"], r["revoked_at"]) for r in records] == [(_serial(new), None)]
