"""Power modes follow the battery; health figures are reported as telemetry."""

import asyncio
import time

from fleetmind.agent.agent import Agent, AgentConfig
from fleetmind.agent.credentials import Credentials
from fleetmind.agent.power import STRETCH, PowerMode, mode_for
from fleetmind.agent.settings import AgentSettings
from fleetmind.sim.world import SimulatedBattery, World
from fleetmind.wire import senml


def test_modes_by_level() -> None:
    assert mode_for(None) is PowerMode.NORMAL
    assert mode_for(80) is PowerMode.NORMAL
    assert mode_for(29.9) is PowerMode.SAVER
    assert mode_for(9.9) is PowerMode.CRITICAL
    assert STRETCH[PowerMode.CRITICAL][0] > STRETCH[PowerMode.SAVER][0] > 1


def test_low_battery_stretches_sampling_and_duty_cycles_the_uplink() -> None:
    world = World(battery=SimulatedBattery(level_pct=5, solar_peak_w=0))
    agent = Agent(
        AgentConfig(
            Credentials("127.0.0.1", 1, "d1", "x"),
            settings=AgentSettings(sample_hz=20, health_interval_s=1),
            sensors=world.sensors,
            anomalies=world.inject,
            battery=world.battery,
        )
    )

    async def sample_a_while() -> None:
        task = asyncio.create_task(agent.sample())
        await asyncio.sleep(1.0)
        task.cancel()

    asyncio.run(sample_a_while())
    assert agent.power_mode is PowerMode.CRITICAL
    assert agent.uplink.duty_cycle
    temperatures = agent.pipelines["temperature"].inputs
    assert 2 <= temperatures <= 6  # 20 Hz stretched by 5: about 4 in a second
    agent.seal(final=True)
    names = set()
    for entry in agent.outbox.pending(after=-1, limit=100):
        names.update(senml.decode(entry.payload, device_id="d1", now=time.time()).names)
    assert {
        "health.battery_pct",
        "health.outbox_packs",
        "health.rss_mb",
        "health.power_mode",
    } <= names
    figures = agent.health()
    assert figures["power_mode"] == 2
    assert figures["battery_pct"] <= 5
