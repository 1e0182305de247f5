"""The agent's parts over the MQTT seam's in-memory loopback: the downlink hands each kind of
message to its part (desired settings, commands, refusal notices, certificate answers), and
renewal switches the agent to a certificate of its hub's CA, reading the expiry without the X.509
stack."""

import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509.oid import NameOID

from fleetmind import certificates
from fleetmind.agent.agent import IDENTITY_FILE, Agent, AgentConfig
from fleetmind.agent.credentials import Credentials
from fleetmind.agent.desired import TWIN_FILE
from fleetmind.agent.renewal import expires_at
from fleetmind.agent.settings import AgentSettings
from fleetmind.devices.ca import CertificateAuthority
from fleetmind.sim.world import World
from fleetmind.transport.loopback import LoopbackBroker
from fleetmind.transport.mqtt import Received
from fleetmind.wire import messages, status, topics


class Hub:
    """The hub's side of a loopback: what devices sent, by topic; what it sends them."""

    def __init__(self, loopback: LoopbackBroker) -> None:
        self.loopback = loopback
        self.received: list[Received] = []
        loopback.subscriber(topics.UPLINK_FILTER, self.received.extend)

    def sent(self, device_id: str, kind: topics.Up) -> list[bytes]:
        return [m.payload for m in self.received if m.topic == topics.up(device_id, kind)]

    def send(self, device_id: str, kind: topics.Down, payload: bytes) -> None:
        self.loopback.publish(topics.down(device_id, kind), payload)


def agent_on(loopback: LoopbackBroker, credentials: Credentials, state_dir: Path) -> Agent:
    return Agent(
        AgentConfig(
            credentials,
            settings=AgentSettings(sample_hz=20, pack_interval_s=0.2),
            sensors=World().sensors,
            state_dir=state_dir,
            connector=loopback.connector,
        )
    )


async def until(condition: Callable[[], object], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.01)


def running(agent: Agent, scenario: Callable[[], Awaitable[None]]) -> None:
    async def main() -> None:
        task = asyncio.create_task(agent.run())
        try:
            await until(agent.uplink.connected.is_set)
            await scenario()
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    asyncio.run(main())


def test_the_downlink_hands_each_kind_to_its_part(tmp_path: Path) -> None:
    loopback = LoopbackBroker()
    hub = Hub(loopback)
    agent = agent_on(loopback, Credentials("loopback", 0, "d1", "secret"), tmp_path)

    async def scenario() -> None:
        await until(lambda: hub.sent("d1", topics.Up.STATE))  # reported after the connect
        desired = {"settings": {"sample_hz": 4, "sensors": {"temperature": {"deadband": 0.5}}}}
        hub.send("d1", topics.Down.DESIRED, messages.Desired(2, desired).encode())
        await until(lambda: agent.settings.sample_hz == 4.0)
        await until(lambda: len(hub.sent("d1", topics.Up.STATE)) == 2)
        state = messages.State.decode(hub.sent("d1", topics.Up.STATE)[-1])
        assert state.desired_version == 2 and state.reported["settings"] == desired["settings"]
        assert json.loads((tmp_path / TWIN_FILE).read_text())["desired"] == desired

        ping = messages.Command("c1", "ping", {}, time.time() + 60)
        hub.send("d1", topics.Down.COMMAND, ping.encode())
        await until(lambda: hub.sent("d1", topics.Up.COMMAND_RESULT))
        answer = messages.CommandResult.decode(hub.sent("d1", topics.Up.COMMAND_RESULT)[0])
        assert answer.ok and answer.result["boot"] == agent.boot_id

        notice = messages.Rejected("telemetry", "time", "a clock far off").encode()
        hub.send("d1", topics.Down.REJECT, notice)
        hub.send("d1", topics.Down.REJECT, notice)
        hub.send("d1", topics.Down.CERTIFICATE, messages.Certificate("PEM").encode())
        hub.send("d1", topics.Down.DESIRED, b"not a document")
        await until(lambda: agent.health()["refused_by_hub"] == 2)
        await until(lambda: any("refused a message" in e for e in agent.journal.events))

        first = agent.boot_id
        reboot = messages.Command("c2", "reboot", {}, time.time() + 60)
        hub.send("d1", topics.Down.COMMAND, reboot.encode())
        await until(lambda: agent.boot_id != first)
        online = [status.encode(status.Status("online", agent.boot_id))]
        await until(lambda: any(m.payload in online for m in hub.received))

    running(agent, scenario)
    events = list(agent.journal.events)
    assert sum("the hub refused telemetry (time)" in e for e in events) == 1
    assert any("certificate renewal refused: not asked for" in e for e in events)
    assert any(e.endswith("command ping: ok") for e in events)


def test_a_certificate_close_to_its_expiry_is_renewed_and_kept(tmp_path: Path) -> None:
    ca = CertificateAuthority.open(tmp_path / "ca")
    key = certificates.new_key()
    issued, _ = ca.issue_device("d2", certificates.make_csr(key, "d2"), days=10)
    credentials = Credentials(
        "loopback", 0, "d2", "",
        ca=ca.pem.decode(), certificate=issued.pem.decode(),
        private_key=certificates.key_pem(key).decode(),
    )  # fmt: skip
    loopback = LoopbackBroker()
    hub = Hub(loopback)
    agent = agent_on(loopback, credentials, tmp_path / "state")

    async def scenario() -> None:
        await until(lambda: hub.sent("d2", topics.Up.CSR))  # due: asked at the connect
        csr = messages.Renewal.decode(hub.sent("d2", topics.Up.CSR)[0]).csr
        renewed, _ = ca.issue_device("d2", csr.encode())
        hub.send("d2", topics.Down.CERTIFICATE, messages.Certificate(renewed.pem.decode()).encode())
        await until(lambda: agent.uplink.credentials.certificate == renewed.pem.decode())

    running(agent, scenario)
    kept = Credentials.load(tmp_path / "state" / IDENTITY_FILE)
    assert kept.certificate == agent.uplink.credentials.certificate
    assert kept.private_key != credentials.private_key
    assert any(f"serial {renewed_serial(kept)}" in e for e in agent.journal.events)


def renewed_serial(credentials: Credentials) -> str:
    assert credentials.certificate is not None
    return certificates.serial_hex(certificates.load_certificate(credentials.certificate.encode()))


def test_the_expiry_is_read_without_the_x509_stack(tmp_path: Path) -> None:
    """UTCTime before 2050, GeneralizedTime from 2050 on (RFC 5280), as cryptography reads them;
    what the quick reading cannot read goes to cryptography."""
    key = certificates.new_key()
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "d3")])
    for not_after in (datetime(2031, 5, 6, 7, 8, 9, tzinfo=UTC), datetime(2061, 1, 2, tzinfo=UTC)):
        made = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(datetime(2024, 1, 1, tzinfo=UTC))
            .not_valid_after(not_after)
            .sign(key, hashes.SHA256())
        )
        pem = made.public_bytes(serialization.Encoding.PEM).decode()
        assert expires_at(pem) == made.not_valid_after_utc == not_after
    ca = CertificateAuthority.open(tmp_path / "ca")
    issued, _ = ca.issue_device("d3")
    assert expires_at(issued.pem.decode()) == issued.not_after
    assert expires_at(f"{issued.pem.decode()}{ca.pem.decode()}") == issued.not_after  # a chain
