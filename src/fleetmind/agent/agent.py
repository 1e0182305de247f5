"""One agent, assembled: its configuration, its parts, and the TaskGroup that runs them.

The parts: the sampler (sensors through their pipelines into packs in the outbox, health, power
modes), the uplink (one MQTT connection that drains the outbox), the downlink (what the hub
sends, to the part that owns it), the desired settings (applied live, kept on disk), the
certificate renewal and the commands the agent answers.
"""

import asyncio
import contextlib
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from fleetmind.agent.credentials import Credentials
from fleetmind.agent.desired import DesiredSettings
from fleetmind.agent.downlink import Downlink
from fleetmind.agent.handlers import AgentCommands
from fleetmind.agent.journal import Journal
from fleetmind.agent.outbox import Outbox, OutboxLimits
from fleetmind.agent.pipeline import SensorPipeline
from fleetmind.agent.power import Battery, PowerMode
from fleetmind.agent.renewal import IDENTITY_FILE, Renewal
from fleetmind.agent.sampling import Figures, Sampler, new_boot_id
from fleetmind.agent.sensors import Anomalies, SensorDescription
from fleetmind.agent.settings import AgentSettings
from fleetmind.agent.uplink import Uplink
from fleetmind.transport.backoff import Backoff
from fleetmind.transport.mqtt import Connector
from fleetmind.transport.paho_client import PahoClient
from fleetmind.twins.client import TwinClient

__all__ = ["IDENTITY_FILE", "OUTBOX_FILE", "Agent", "AgentConfig"]

#: in the state directory, beside the last known settings (``desired.TWIN_FILE``) and the
#: identity (``renewal.IDENTITY_FILE``)
OUTBOX_FILE = "outbox.db"


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
        state = config.state_dir
        if state is not None:
            state.mkdir(parents=True, exist_ok=True)
        self.outbox = Outbox(state / OUTBOX_FILE if state else ":memory:", config.outbox)
        boot_id = new_boot_id()
        self.uplink = Uplink(
            config.credentials,
            self.outbox,
            boot_id=boot_id,
            backoff=Backoff(config.reconnect_first_s, config.reconnect_cap_s),
            replay_rate=config.replay_rate,
            replay_burst=config.replay_burst,
            connector=config.connector,
        )
        self.journal = Journal(self.device_id)
        self.sampler = Sampler(
            config.sensors,
            config.settings,
            self.outbox,
            self.uplink,
            self.journal,
            boot_id=boot_id,
            anomalies=config.anomalies,
            battery=config.battery,
            state_dir=state,
            more_health=self._downlink_health,
        )
        self.desired = DesiredSettings(self.sampler, self.journal, state)
        self.renewal = Renewal(self.uplink, self.journal, state)
        answers = AgentCommands(self.sampler, self.desired, self.renewal, self.uplink, self.journal)
        self.downlink = Downlink(
            self.uplink, self.desired, answers.handlers, self.renewal, self.journal
        )
        self.uplink.on_connect = self.downlink.report_state

    @property
    def device_id(self) -> str:
        return self.config.credentials.username

    @property
    def boot_id(self) -> str:
        return self.sampler.boot_id

    @property
    def settings(self) -> AgentSettings:
        return self.sampler.settings

    @property
    def pipelines(self) -> dict[str, SensorPipeline]:
        return self.sampler.pipelines

    @property
    def power_mode(self) -> PowerMode:
        return self.sampler.power_mode

    @property
    def twin(self) -> TwinClient:
        return self.desired.twin

    def health(self) -> Figures:
        """The agent's vital signs, as reported in ``health.*`` telemetry."""
        return self.sampler.health()

    async def sample(self) -> None:
        await self.sampler.run()

    def seal(self, *, final: bool = False) -> None:
        self.sampler.seal(final=final)

    async def run(self) -> None:
        try:
            async with asyncio.TaskGroup() as group:
                group.create_task(self.uplink.run(), name=f"{self.device_id}/uplink")
                group.create_task(self.sampler.run(), name=f"{self.device_id}/sensors")
                group.create_task(self.downlink.run(), name=f"{self.device_id}/downlink")
        finally:
            self.seal(final=True)

    async def run_for(self, seconds: float, *, drain_timeout: float = 30.0) -> None:
        """Sample for ``seconds``, then wait (bounded) until the outbox is empty and leave."""
        background = [
            asyncio.create_task(self.uplink.run(), name=f"{self.device_id}/uplink"),
            asyncio.create_task(self.downlink.run(), name=f"{self.device_id}/downlink"),
        ]
        try:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.sampler.run(), timeout=seconds)
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

    def _downlink_health(self) -> Figures:
        return {"refused_by_hub": self.downlink.refused_by_hub}
