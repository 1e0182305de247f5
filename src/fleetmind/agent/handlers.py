"""The commands an agent answers: ``ping``, ``set_sampling``, ``collect_logs``, ``reboot`` and
``renew_certificate``."""

import asyncio
import time
from typing import Any

from fleetmind.agent.desired import DesiredSettings
from fleetmind.agent.journal import Journal
from fleetmind.agent.renewal import Renewal
from fleetmind.agent.sampling import Sampler
from fleetmind.agent.uplink import Uplink
from fleetmind.commands.client import CommandHandlers


class AgentCommands:
    def __init__(
        self,
        sampler: Sampler,
        desired: DesiredSettings,
        renewal: Renewal,
        uplink: Uplink,
        journal: Journal,
    ) -> None:
        self._sampler = sampler
        self._desired = desired
        self._renewal = renewal
        self._uplink = uplink
        self._journal = journal
        self.handlers = CommandHandlers()
        for name, handler in (
            ("ping", self._ping),
            ("set_sampling", self._set_sampling),
            ("collect_logs", self._collect_logs),
            ("reboot", self._reboot),
            ("renew_certificate", self._renew_certificate),
        ):
            self.handlers.register(name, handler)

    async def _ping(self, _args: dict[str, Any]) -> dict[str, Any]:
        sampler = self._sampler
        return {"pong": time.time(), "boot": sampler.boot_id, "uptime_s": sampler.uptime_s}

    async def _set_sampling(self, args: dict[str, Any]) -> dict[str, Any]:
        return {"sample_hz": self._desired.set_sample_hz(args.get("sample_hz"))}

    async def _collect_logs(self, args: dict[str, Any]) -> dict[str, Any]:
        lines = args.get("lines", 50)
        if isinstance(lines, bool) or not isinstance(lines, int) or not 1 <= lines <= 200:
            raise ValueError("lines must be a whole number from 1 to 200")
        return {"lines": list(self._journal.events)[-lines:]}

    async def _renew_certificate(self, _args: dict[str, Any]) -> dict[str, Any]:
        if not self._uplink.credentials.uses_certificate:
            raise ValueError("this agent connects with a password, not a certificate")
        await self._renewal.request()
        return {"requested": True}

    async def _reboot(self, _args: dict[str, Any]) -> dict[str, Any]:
        """Restart the agent's session: seal what is pending, new boot id, reconnect."""
        old = self._sampler.reboot()
        boot = self._sampler.boot_id
        asyncio.get_running_loop().call_later(0.2, self._uplink.new_boot, boot)
        self._journal.note(f"reboot from boot {old}")
        return {"previous_boot": old, "boot": boot}
