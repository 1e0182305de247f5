"""The agent's uplink against a real broker that goes away and comes back."""

import asyncio
import socket
import time
from pathlib import Path

from conftest import HubSink, free_port, wait_until
from fleetmind.agent.agent import Agent, AgentConfig
from fleetmind.agent.credentials import Credentials
from fleetmind.agent.settings import AgentSettings
from fleetmind.devices import model
from fleetmind.devices.service import DeviceService
from fleetmind.devices.store import DeviceStore
from fleetmind.hub.broker import EmbeddedBroker
from fleetmind.hub.registry import create_engine, migrate


def listening(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) == 0


def test_agent_reconnects_and_resends_everything_it_sealed(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'registry.db'}"
    engine = create_engine(url)
    migrate(engine)
    secret = DeviceService(DeviceStore(engine)).add("d1").secret
    port, hub_port, hub_secret = free_port(), free_port(), model.new_secret()
    broker = EmbeddedBroker(
        "127.0.0.1", port, url, model.hash_secret(hub_secret), hub_port=hub_port
    )
    broker.start()
    wait_until(lambda: listening(port))
    hub = HubSink(hub_port, hub_secret)  # the broker acknowledges once the hub has a message
    credentials = Credentials("127.0.0.1", port, "d1", secret)
    agent = Agent(
        AgentConfig(
            credentials,
            settings=AgentSettings(sample_hz=10),
            reconnect_first_s=0.1,
            reconnect_cap_s=0.5,
        )
    )

    async def scenario() -> None:
        run = asyncio.create_task(agent.run_for(6, drain_timeout=20))
        await asyncio.sleep(1.5)
        broker.stop()  # the broker vanishes mid-stream
        await asyncio.sleep(1.5)
        broker.start()
        await run

    started = time.monotonic()
    asyncio.run(scenario())
    broker.stop()
    hub.close()
    assert time.monotonic() - started < 30
    assert agent.uplink.stats.connects >= 2
    assert len(agent.outbox) == 0
    counters = agent.outbox.counters
    assert counters.readings_acked == counters.readings_accepted > 0


def test_duty_cycled_uplink_connects_per_flush_and_loses_nothing(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'registry.db'}"
    engine = create_engine(url)
    migrate(engine)
    secret = DeviceService(DeviceStore(engine)).add("d1").secret
    port, hub_port, hub_secret = free_port(), free_port(), model.new_secret()
    with EmbeddedBroker("127.0.0.1", port, url, model.hash_secret(hub_secret), hub_port=hub_port):
        wait_until(lambda: listening(port))
        hub = HubSink(hub_port, hub_secret)
        credentials = Credentials("127.0.0.1", port, "d1", secret)
        agent = Agent(AgentConfig(credentials, settings=AgentSettings(pack_interval_s=1)))
        agent.uplink.duty_cycle = True
        asyncio.run(agent.run_for(4.5, drain_timeout=20))
        hub.close()
    assert agent.uplink.stats.connects >= 3  # one connection per flushed pack
    counters = agent.outbox.counters
    assert counters.readings_acked == counters.readings_accepted > 0
