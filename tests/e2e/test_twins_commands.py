"""Twins and commands end to end: real hub, embedded broker, real agents (the simulator)."""

import asyncio
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from conftest import RunningHub, wait_until
from fleetmind.agent.agent import Agent, AgentConfig
from fleetmind.agent.credentials import Credentials
from fleetmind.sim.world import World


class AgentThread:
    """A real agent on its own event loop, started and stopped at will."""

    def __init__(self, device: dict[str, object], state_dir: Path) -> None:
        self.config = AgentConfig(
            Credentials.from_device(device), state_dir=state_dir, sensors=World().sensors
        )
        self.agent: Agent | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> Agent:
        ready = threading.Event()

        def main() -> None:
            self._loop = asyncio.new_event_loop()
            self.agent = Agent(self.config)
            task = self._loop.create_task(self.agent.run())
            ready.set()
            self._loop.run_until_complete(asyncio.gather(task, return_exceptions=True))
            self._loop.close()

        self._thread = threading.Thread(target=main, daemon=True)
        self._thread.start()
        ready.wait(10)
        assert self.agent is not None
        return self.agent

    def stop(self) -> None:
        loop, agent = self._loop, self.agent
        assert loop is not None and agent is not None and self._thread is not None

        async def shut() -> None:
            await agent.uplink.close()
            for task in asyncio.all_tasks():
                if task is not asyncio.current_task():
                    task.cancel()

        asyncio.run_coroutine_threadsafe(shut(), loop)
        self._thread.join(15)


@pytest.fixture
def agent_of(hub: RunningHub, tmp_path: Path) -> Iterator[object]:
    started: list[AgentThread] = []

    def make(name: str) -> AgentThread:
        runner = AgentThread(hub.add_device(name), tmp_path / name)
        started.append(runner)
        return runner

    yield make
    for runner in started:
        if runner._thread is not None and runner._thread.is_alive():
            runner.stop()


def twin(api: httpx.Client, device: str) -> httpx.Response:
    return api.get(f"/api/v1/devices/{device}/twin")


def test_desired_settings_reach_the_agent_and_come_back_reported(hub: RunningHub, agent_of) -> None:
    runner = agent_of("twin-1")
    agent = runner.start()
    with hub.api() as api:
        wait_until(agent.uplink.connected.is_set)
        etag = twin(api, "twin-1").headers["ETag"]
        desired = {"settings": {"sample_hz": 4, "sensors": {"temperature": {"deadband": 0.5}}}}
        patched = api.patch(
            "/api/v1/devices/twin-1/twin/desired", json=desired, headers={"If-Match": etag}
        )
        assert patched.status_code == 200, patched.text
        assert patched.headers["ETag"] == '"1"'
        wait_until(lambda: agent.settings.sample_hz == 4.0)
        assert agent.pipelines["temperature"].settings.deadband == 0.5
        reported = wait_until(lambda: twin(api, "twin-1").json()["reported"] or None)
        assert reported == {"settings": desired["settings"], "error": None}

        stale = api.patch(
            "/api/v1/devices/twin-1/twin/desired", json={"x": 1}, headers={"If-Match": etag}
        )
        assert stale.status_code == 412
        bad = api.patch("/api/v1/devices/twin-1/twin/desired", json={"settings": {"sample_hz": -1}})
        assert bad.status_code == 200  # the hub stores it; the agent refuses and says why
        wait_until(
            lambda: (twin(api, "twin-1").json()["reported"].get("error") or "").startswith(
                "sample_hz"
            )
        )
        assert agent.settings.sample_hz == 4.0


def test_an_offline_device_converges_to_the_last_desired_version(hub: RunningHub, agent_of) -> None:
    runner = agent_of("twin-2")
    agent = runner.start()
    wait_until(agent.uplink.connected.is_set)
    runner.stop()
    with hub.api() as api:
        for rate in (2, 3, 5):
            response = api.patch(
                "/api/v1/devices/twin-2/twin/desired", json={"settings": {"sample_hz": rate}}
            )
            assert response.status_code == 200
        again = runner.start()
        wait_until(lambda: again.settings.sample_hz == 5.0)
        wait_until(
            lambda: twin(api, "twin-2").json()["reported"].get("settings") == {"sample_hz": 5}
        )
        assert again.twin.applied_version == 3
    runner.stop()
    # offline autonomy: with no broker at all, the agent starts from its last known settings
    alone = Agent(runner.config)
    assert alone.settings.sample_hz == 5.0


def test_commands(hub: RunningHub, agent_of) -> None:
    runner = agent_of("cmd-1")
    agent = runner.start()
    with hub.api() as api:
        wait_until(lambda: api.get("/api/v1/devices/cmd-1").json()["online"])
        ping = api.post("/api/v1/devices/cmd-1/commands", json={"name": "ping"})
        assert ping.status_code == 200, ping.text
        assert ping.json()["status"] == "succeeded"
        assert ping.json()["result"]["boot"] == agent.boot_id

        sampling = api.post(
            "/api/v1/devices/cmd-1/commands",
            json={"name": "set_sampling", "args": {"sample_hz": 7}},
        )
        assert sampling.json()["result"] == {"sample_hz": 7.0}
        assert agent.settings.sample_hz == 7.0

        unknown = api.post("/api/v1/devices/cmd-1/commands", json={"name": "self_destruct"})
        assert unknown.json()["status"] == "failed"
        assert "unknown command" in unknown.json()["error"]

        logs = api.post(
            "/api/v1/devices/cmd-1/commands", json={"name": "collect_logs", "args": {"lines": 5}}
        )
        assert any("command" in line for line in logs.json()["result"]["lines"])
        assert (
            api.post("/api/v1/devices/cmd-1/commands", json={"name": "Bad Name"}).status_code == 422
        )
        runner.stop()
        wait_until(lambda: not api.get("/api/v1/devices/cmd-1").json()["online"], timeout=30)

        fail_fast = api.post("/api/v1/devices/cmd-1/commands", json={"name": "ping"})
        assert fail_fast.status_code == 409
        queued = api.post(
            "/api/v1/devices/cmd-1/commands", json={"name": "ping", "ttl_s": 60, "timeout_s": 1}
        )
        assert queued.status_code == 202
        assert queued.json()["status"] == "queued"
        command_id = queued.json()["id"]
        again = runner.start()

        def answered() -> bool:
            record = api.get(f"/api/v1/devices/cmd-1/commands/{command_id}").json()
            return record["status"] == "succeeded" and record["result"]["boot"] == again.boot_id

        wait_until(answered, timeout=30)
        reboot = api.post("/api/v1/devices/cmd-1/commands", json={"name": "reboot"})
        assert reboot.json()["status"] == "succeeded"
        new_boot = reboot.json()["result"]["boot"]
        wait_until(lambda: api.get("/api/v1/devices/cmd-1").json()["online"])
        time.sleep(1)
        assert api.get("/api/v1/devices/cmd-1").json()["online"]
        assert again.boot_id == new_boot
