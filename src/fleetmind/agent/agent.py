"""One agent: sample sensors through their pipelines, seal packs into the outbox, let the uplink
drain it."""

import asyncio
import contextlib
import dataclasses
import json
import logging
import math
import time
import uuid
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from fleetmind import certificates
from fleetmind.agent import health
from fleetmind.agent.credentials import Credentials
from fleetmind.agent.outbox import Outbox, OutboxLimits
from fleetmind.agent.pipeline import SensorPipeline, SettingsError
from fleetmind.agent.power import STRETCH, Battery, PowerMode, mode_for
from fleetmind.agent.sensors import Anomalies, SensorDescription
from fleetmind.agent.settings import AgentSettings
from fleetmind.agent.uplink import Uplink
from fleetmind.certificates import CertificateError
from fleetmind.commands.client import CommandHandlers
from fleetmind.files import write_file
from fleetmind.transport.backoff import Backoff
from fleetmind.transport.errors import TransportError
from fleetmind.transport.mqtt import Connector
from fleetmind.transport.paho_client import PahoClient
from fleetmind.twins.client import TwinClient
from fleetmind.wire import messages, senml, topics
from fleetmind.wire.errors import WireError

log = logging.getLogger(__name__)

TWIN_FILE = "twin.json"
OUTBOX_FILE = "outbox.db"
#: the device's identity (credentials with its certificate and key), kept current on renewal
IDENTITY_FILE = "identity.json"
#: a certificate this close to its expiry is renewed at the next connect
RENEW_BEFORE = timedelta(days=30)


@dataclass(frozen=True, slots=True)
class AgentConfig:
    credentials: Credentials
    #: what the agent starts with when it has no last known settings of its own
    settings: AgentSettings = field(default_factory=AgentSettings)
    #: what the agent reads (it has none of its own; the simulator's: ``fleetmind.sim.world``)
    sensors: Sequence[SensorDescription] = ()
    #: faults injected into the sensors' values (the simulator's anomalies); None: none
    anomalies: Anomalies | None = None
    #: where the outbox and the last known settings live; None keeps them in memory
    state_dir: Path | None = None
    outbox: OutboxLimits = field(default_factory=OutboxLimits)
    #: reconnect delays grow from the first to the cap (full jitter)
    reconnect_first_s: float = 0.5
    reconnect_cap_s: float = 30.0
    #: a battery to watch (the simulator's); None is mains power
    battery: Battery | None = None
    #: packs per second (and burst) when replaying a backlog, so a returning fleet does not
    #: flatten the hub
    replay_rate: float = 200.0
    replay_burst: int = 400
    #: makes the MQTT client of each connection attempt
    connector: Connector = PahoClient


class Agent:
    """Run with ``await agent.run()`` (until cancelled) or ``run_for`` a fixed time."""

    def __init__(self, config: AgentConfig) -> None:
        self.config = config
        self.boot_id = uuid.uuid4().hex[:16]
        self.started = time.monotonic()
        state = config.state_dir
        if state is not None:
            state.mkdir(parents=True, exist_ok=True)
        self.outbox = Outbox(state / OUTBOX_FILE if state else ":memory:", config.outbox)
        self.settings = config.settings
        self._settings_document: object = {}
        self.twin = TwinClient(self._apply_desired)
        self.pipelines = {
            sensor.key: SensorPipeline(sensor.key, self.settings.sensor(sensor.key))
            for sensor in config.sensors
        }
        self.uplink = Uplink(
            config.credentials,
            self.outbox,
            boot_id=self.boot_id,
            backoff=Backoff(config.reconnect_first_s, config.reconnect_cap_s),
            replay_rate=config.replay_rate,
            replay_burst=config.replay_burst,
            connector=config.connector,
        )
        self.uplink.on_connect = self.report_state
        self.commands = CommandHandlers()
        for name, handler in (
            ("ping", self._ping),
            ("set_sampling", self._set_sampling),
            ("collect_logs", self._collect_logs),
            ("reboot", self._reboot),
            ("renew_certificate", self._renew_certificate),
        ):
            self.commands.register(name, handler)
        self.events: deque[str] = deque(maxlen=200)
        #: messages the hub told this agent it refused (down/reject), and which kinds it named
        self.refused_by_hub = 0
        self._refusals_noted: set[tuple[str, str]] = set()
        self._pending: list[senml.Reading] = []
        self._seq = 0
        self._settings_changed = asyncio.Event()
        self._next_health = 0.0
        self.power_mode = PowerMode.NORMAL
        self._renewal_key: certificates.PrivateKey | None = None
        self._sent_bytes = self._sent_readings = 0
        self._restore_twin()

    @property
    def device_id(self) -> str:
        return self.config.credentials.username

    # -- running ------------------------------------------------------------------------------

    async def run(self) -> None:
        try:
            async with asyncio.TaskGroup() as group:
                group.create_task(self.uplink.run(), name=f"{self.device_id}/uplink")
                group.create_task(self.sample(), name=f"{self.device_id}/sensors")
                group.create_task(self.downlink(), name=f"{self.device_id}/downlink")
        finally:
            self.seal(final=True)

    async def run_for(self, seconds: float, *, drain_timeout: float = 30.0) -> None:
        """Sample for ``seconds``, then wait (bounded) until the outbox is empty and leave."""
        background = [
            asyncio.create_task(self.uplink.run(), name=f"{self.device_id}/uplink"),
            asyncio.create_task(self.downlink(), name=f"{self.device_id}/downlink"),
        ]
        try:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.sample(), timeout=seconds)
            self.seal(final=True)
            await self.drain(drain_timeout)
            await self.uplink.close()
        finally:
            for task in background:
                task.cancel()
            await asyncio.gather(*background, return_exceptions=True)

    async def drain(self, timeout: float) -> bool:
        """Wait until every sealed pack was acknowledged; False if ``timeout`` passed first."""
        deadline = time.monotonic() + timeout
        while len(self.outbox) and time.monotonic() < deadline:  # noqa: ASYNC110 - a count, polled
            await asyncio.sleep(0.05)
        return not len(self.outbox)

    async def sample(self) -> None:
        next_sample = time.monotonic()
        sealed_at = -math.inf  # the first readings go out at once: the hub sees a device start
        while True:
            t = time.time()
            sample_factor, pack_factor = STRETCH[self._update_power(t)]
            self.read_sensors(t)
            if t >= self._next_health:
                self._pending.extend(health.readings(t, self.health()))
                self._next_health = t + self.settings.health_interval_s
            now = time.monotonic()
            if now - sealed_at >= self.settings.pack_interval_s * pack_factor:
                self.seal()
                sealed_at = now
            next_sample += sample_factor / self.settings.sample_hz
            delay = next_sample - time.monotonic()
            if delay < -1.0:  # fell behind (settings changed, machine stalled): start afresh
                next_sample, delay = time.monotonic(), 0.0
            self._settings_changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._settings_changed.wait(), max(0.0, delay))

    def _update_power(self, t: float) -> PowerMode:
        battery = self.config.battery
        mode = mode_for(None if battery is None else battery.update(t, self.power_mode))
        if mode is not self.power_mode:
            self._note(f"power mode {self.power_mode} -> {mode}")
            self.power_mode = mode
            self.uplink.duty_cycle = mode is PowerMode.CRITICAL
        return mode

    def health(self) -> dict[str, float | bool]:
        """The agent's vital signs, as reported in ``health.*`` telemetry."""
        counters = self.outbox.counters
        inputs = sum(p.inputs for p in self.pipelines.values())
        outputs = sum(p.outputs for p in self.pipelines.values())
        invalid = sum(sum(p.invalid.values()) for p in self.pipelines.values())
        per_reading = self._sent_bytes / self._sent_readings if self._sent_readings else 0.0
        figures: dict[str, float | bool] = {
            "uptime_s": self.uptime_s,
            "cpu_s": health.cpu_s(),
            "rss_mb": health.rss_mb(),
            "load_1m": health.load_average(),
            "disk_free_mb": health.disk_free_mb(self.config.state_dir or Path()),
            "outbox_packs": len(self.outbox),
            "outbox_bytes": self.outbox.bytes,
            "readings_dropped_oldest": counters.readings_dropped_oldest,
            "readings_dropped_newest": counters.readings_dropped_newest,
            "readings_expired": counters.readings_expired,
            "readings_invalid": invalid,
            "readings_filtered": inputs - outputs - invalid,
            "bytes_saved": (inputs - outputs - invalid) * per_reading,
            "link_ms": self.uplink.stats.ack_ms,
            "refused_by_hub": self.refused_by_hub,
            "power_mode": list(PowerMode).index(self.power_mode),
        }
        battery = self.config.battery
        if battery is not None:
            figures["battery_pct"] = battery.level_pct
            figures["charging"] = battery.charging(time.time(), self.power_mode)
        return figures

    async def downlink(self) -> None:
        """Handle what the hub sends: desired twin documents and commands."""
        while True:
            topic, payload = await self.uplink.inbox.get()
            try:
                kind = topics.parse(topic).known
                if kind == topics.Down.DESIRED:
                    if payload:  # an empty retained message clears the twin
                        state = self.twin.on_desired(messages.Desired.decode(payload))
                        if state is not None:
                            await self._send_state(state)
                elif kind == topics.Down.CERTIFICATE:
                    self._renewed(messages.Certificate.decode(payload))
                elif kind == topics.Down.REJECT:
                    self._refused_by_hub(messages.Rejected.decode(payload))
                elif kind == topics.Down.COMMAND:
                    command = messages.Command.decode(payload)
                    answer = await self.commands.handle(command, now=time.time())
                    await self.uplink.send(
                        topics.up(self.device_id, topics.Up.COMMAND_RESULT), answer.encode()
                    )
                    self._note(f"command {command.name}: {'ok' if answer.ok else answer.error}")
            except WireError as exc:
                self._note(f"refused a message on {topic[:120]}: {exc}")
            except TransportError:
                pass  # the hub re-syncs state on reconnect; a command answer times out there

    async def report_state(self) -> None:
        """Tell the hub what is applied (after every connect, so both sides sync by version);
        ask for a new certificate when the current one is close to its expiry."""
        with contextlib.suppress(TransportError):
            await self._send_state(self.twin.state())
            certificate = self.uplink.credentials.certificate
            if certificate and self._renewal_key is None:
                expires = certificates.load_certificate(certificate.encode()).not_valid_after_utc
                if expires - datetime.now(UTC) < RENEW_BEFORE:
                    await self.renew_certificate()

    async def renew_certificate(self) -> None:
        """Make a new key and send its CSR; the hub answers on ``down/certificate``."""
        self._renewal_key = certificates.new_key()
        csr = certificates.make_csr(self._renewal_key, self.device_id).decode()
        await self.uplink.send(
            topics.up(self.device_id, topics.Up.CSR), messages.Renewal(csr).encode()
        )
        self._note("certificate renewal requested")

    def _renewed(self, answer: messages.Certificate) -> None:
        """Switch to the new certificate if it is for the key this agent made and its hub's CA
        signed it; keep it on disk (0600) for the next start."""
        key, self._renewal_key = self._renewal_key, None
        current = self.uplink.credentials
        if answer.certificate is None or key is None or current.ca is None:
            self._note(f"certificate renewal refused: {answer.error or 'not asked for'}")
            return
        try:
            new = certificates.load_certificate(answer.certificate.encode())
            ca = certificates.load_certificate(current.ca.encode())
            certificates.verify_issued_by(new, ca, datetime.now(UTC))
        except CertificateError as exc:
            self._note(f"certificate renewal refused: {exc}")
            return
        if new.public_key() != key.public_key():
            self._note("certificate renewal refused: not for this agent's key")
            return
        renewed = dataclasses.replace(
            current,
            certificate=answer.certificate,
            private_key=certificates.key_pem(key).decode(),
        )
        if self.config.state_dir is not None:
            write_file(self.config.state_dir / IDENTITY_FILE, json.dumps(renewed.document()))
        self.uplink.replace_credentials(renewed)
        self._note(f"certificate renewed, serial {certificates.serial_hex(new)}")

    async def _send_state(self, state: messages.State) -> None:
        await self.uplink.send(topics.up(self.device_id, topics.Up.STATE), state.encode())

    def read_sensors(self, t: float) -> None:
        inject = self.config.anomalies
        for sensor in self.config.sensors:
            value = sensor.value_fn(t)
            if value is not None and inject is not None:
                value = inject(sensor.key, t, value)
            if value is None:  # the sensor gave nothing this time
                continue
            if not sensor.low <= value <= sensor.high:
                value = math.nan  # outside what the sensor can measure: the pipeline rejects it
            for name, when, out in self.pipelines[sensor.key].push(t, value):
                self._pending.append(senml.Reading(name, when, round(out, 4), sensor.unit))

    def seal(self, *, final: bool = False) -> None:
        """Close the current pack: encode it and commit it to the outbox."""
        now = math.inf if final else time.time()
        for sensor in self.config.sensors:
            for name, when, out in self.pipelines[sensor.key].flush(now):
                self._pending.append(senml.Reading(name, when, round(out, 4), sensor.unit))
        if not self._pending:
            return
        payload = senml.encode_cbor(self._pending, boot=self.boot_id, seq=self._seq)
        self.outbox.put(payload, len(self._pending))
        self._sent_bytes += len(payload)
        self._sent_readings += len(self._pending)
        self._seq += 1
        self._pending = []

    # -- settings -----------------------------------------------------------------------------

    def apply(self, document: object) -> AgentSettings:
        """Validate and apply a settings document live."""
        settings = AgentSettings.parse(document)
        for key, pipeline in self.pipelines.items():
            if pipeline.settings != settings.sensor(key):
                self.pipelines[key] = SensorPipeline(
                    key,
                    settings.sensor(key),
                    inputs=pipeline.inputs,
                    outputs=pipeline.outputs,
                    invalid=pipeline.invalid,
                )
        self.settings = settings
        self._settings_changed.set()
        self._note("settings applied")
        return settings

    def _apply_desired(self, desired: dict[str, Any]) -> dict[str, Any]:
        """A desired twin document: apply its ``settings``, keep it as the last known one."""
        document = desired.get("settings", {})
        try:
            self.apply(document)
        except SettingsError as exc:
            self._note(f"desired settings refused: {exc}")
            return {"settings": self._settings_document, "error": str(exc)}
        self._settings_document = document
        if self.config.state_dir is not None:
            record = {"version": self.twin.applied_version + 1, "desired": desired}
            write_file(self.config.state_dir / TWIN_FILE, json.dumps(record))
        return {"settings": document, "error": None}

    def _restore_twin(self) -> None:
        """Start from the last known desired document, so the agent works without the hub."""
        state = self.config.state_dir
        path = state / TWIN_FILE if state is not None else None
        if path is None or not path.exists():
            return
        try:
            record = json.loads(path.read_text())
            version, desired = int(record["version"]), record["desired"]
            self.apply(desired.get("settings", {}))
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
            log.warning("%s: ignoring unreadable last known settings: %s", self.device_id, exc)
            return
        self._settings_document = desired.get("settings", {})
        self.twin.applied_version = version
        self.twin.reported = {"settings": self._settings_document, "error": None}

    # -- commands -----------------------------------------------------------------------------

    async def _ping(self, _args: dict[str, Any]) -> dict[str, Any]:
        return {"pong": time.time(), "boot": self.boot_id, "uptime_s": self.uptime_s}

    async def _set_sampling(self, args: dict[str, Any]) -> dict[str, Any]:
        document = (
            dict(self._settings_document) if isinstance(self._settings_document, dict) else {}
        )
        document["sample_hz"] = args.get("sample_hz")
        settings = self.apply(document)
        self._settings_document = document
        return {"sample_hz": settings.sample_hz}

    async def _collect_logs(self, args: dict[str, Any]) -> dict[str, Any]:
        lines = args.get("lines", 50)
        if isinstance(lines, bool) or not isinstance(lines, int) or not 1 <= lines <= 200:
            raise ValueError("lines must be a whole number from 1 to 200")
        return {"lines": list(self.events)[-lines:]}

    async def _renew_certificate(self, _args: dict[str, Any]) -> dict[str, Any]:
        if not self.uplink.credentials.uses_certificate:
            raise ValueError("this agent connects with a password, not a certificate")
        await self.renew_certificate()
        return {"requested": True}

    async def _reboot(self, _args: dict[str, Any]) -> dict[str, Any]:
        """Restart the agent's session: seal what is pending, new boot id, reconnect."""
        old = self.boot_id
        self.seal(final=True)
        self.boot_id = uuid.uuid4().hex[:16]
        self._seq = 0
        asyncio.get_running_loop().call_later(0.2, self.uplink.new_boot, self.boot_id)
        self._note(f"reboot from boot {old}")
        return {"previous_boot": old, "boot": self.boot_id}

    def _refused_by_hub(self, notice: messages.Rejected) -> None:
        """The hub refused something this agent sent (a clock far off, say): count it, and say
        so once per kind and reason; the hub repeats its notice at most once a minute."""
        self.refused_by_hub += 1
        if (notice.kind, notice.reason) not in self._refusals_noted:
            self._refusals_noted.add((notice.kind, notice.reason))
            self._note(f"the hub refused {notice.kind} ({notice.reason}): {notice.detail}")

    def _note(self, event: str) -> None:
        self.events.append(f"{time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())} {event}")
        log.info("%s: %s", self.device_id, event)

    @property
    def uptime_s(self) -> float:
        return round(time.monotonic() - self.started, 3)
