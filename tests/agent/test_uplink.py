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
from fleetmind.sim.world import World
from fleetmind.telemetry.errors import StoreUnavailable
from fleetmind.transport.loopback import LoopbackBroker
from fleetmind.transport.mqtt import Received
from fleetmind.wire import topics


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
            sensors=World().sensors,
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
        agent = Agent(
            AgentConfig(
                credentials, settings=AgentSettings(pack_interval_s=1), sensors=World().sensors
            )
        )
        agent.uplink.duty_cycle = True
        asyncio.run(agent.run_for(4.5, drain_timeout=20))
        hub.close()
    assert agent.uplink.stats.connects >= 3  # one connection per flushed pack
    counters = agent.outbox.counters
    assert counters.readings_acked == counters.readings_accepted > 0


def test_over_a_loopback_the_uplink_sends_again_what_the_hub_could_not_take() -> None:
    """The uplink on the MQTT seam's in-memory loopback: while the hub refuses (a store that
    cannot commit), publishes fail and packs stay in the outbox; then everything arrives."""
    loopback = LoopbackBroker()
    refusing = [True]
    taken: list[bytes] = []

    def hub(batch: list[Received]) -> None:
        if refusing[0]:
            raise StoreUnavailable("the store cannot commit")
        taken.extend(m.payload for m in batch if m.topic == topics.telemetry("d1"))

    loopback.subscriber(topics.UPLINK_FILTER, hub)
    config = AgentConfig(
        Credentials("loopback", 0, "d1", "secret"),
        settings=AgentSettings(sample_hz=10, pack_interval_s=0.2),
        sensors=World().sensors,
        reconnect_first_s=0.01,
        reconnect_cap_s=0.05,
        connector=loopback.connector,
    )
    agent = Agent(config)

    async def scenario() -> None:
        run = asyncio.create_task(agent.run_for(3, drain_timeout=10))
        await asyncio.sleep(1.5)
        assert len(agent.outbox) > 0 and not taken
        refusing[0] = False
        await run

    asyncio.run(scenario())
    counters = agent.outbox.counters
    assert len(agent.outbox) == 0
    assert counters.readings_acked == counters.readings_accepted > 0
    assert len(taken) == len(set(taken)) >= 10
