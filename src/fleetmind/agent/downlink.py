"""What the hub sends an agent (``down/...``), each kind to the part that owns it: desired twin
documents to the settings (the state that results goes back on ``up/state``), commands to their
handlers (answered on ``up/command_result``), certificate answers to the renewal, and refusal
notices counted (``health.refused_by_hub``) and noted once per kind and reason."""

import contextlib
import time

from fleetmind.agent.desired import DesiredSettings
from fleetmind.agent.journal import Journal
from fleetmind.agent.renewal import Renewal
from fleetmind.agent.uplink import Uplink
from fleetmind.commands.client import CommandHandlers
from fleetmind.transport.errors import TransportError
from fleetmind.wire import messages, topics
from fleetmind.wire.errors import WireError


class Downlink:
    def __init__(
        self,
        uplink: Uplink,
        desired: DesiredSettings,
        commands: CommandHandlers,
        renewal: Renewal,
        journal: Journal,
    ) -> None:
        self._uplink = uplink
        self._desired = desired
        self._commands = commands
        self._renewal = renewal
        self._journal = journal
        self._device_id = journal.device_id
        #: messages the hub told this agent it refused (down/reject), and which kinds it named
        self.refused_by_hub = 0
        self._refusals_noted: set[tuple[str, str]] = set()

    async def run(self) -> None:
        """Handle what the hub sends, message by message: until cancelled."""
        while True:
            topic, payload = await self._uplink.inbox.get()
            try:
                await self._dispatch(topic, payload)
            except WireError as exc:
                self._journal.note(f"refused a message on {topic[:120]}: {exc}")
            except TransportError:
                pass  # the hub re-syncs state on reconnect; a command answer times out there

    async def report_state(self) -> None:
        """Tell the hub what is applied (after every connect, so both sides sync by version);
        ask for a new certificate when the current one is close to its expiry."""
        with contextlib.suppress(TransportError):
            await self._send_state(self._desired.twin.state())
            await self._renewal.if_due()

    async def _dispatch(self, topic: str, payload: bytes) -> None:
        kind = topics.parse(topic).known
        if kind == topics.Down.DESIRED:
            if payload:  # an empty retained message clears the twin
                state = self._desired.twin.on_desired(messages.Desired.decode(payload))
                if state is not None:
                    await self._send_state(state)
        elif kind == topics.Down.CERTIFICATE:
            self._renewal.answered(messages.Certificate.decode(payload))
        elif kind == topics.Down.REJECT:
            self._refused(messages.Rejected.decode(payload))
        elif kind == topics.Down.COMMAND:
            command = messages.Command.decode(payload)
            answer = await self._commands.handle(command, now=time.time())
            await self._uplink.send(
                topics.up(self._device_id, topics.Up.COMMAND_RESULT), answer.encode()
            )
            self._journal.note(f"command {command.name}: {'ok' if answer.ok else answer.error}")

    async def _send_state(self, state: messages.State) -> None:
        await self._uplink.send(topics.up(self._device_id, topics.Up.STATE), state.encode())

    def _refused(self, notice: messages.Rejected) -> None:
        """The hub refused something this agent sent (a clock far off, say): count it, and say
        so once per kind and reason; the hub repeats its notice at most once a minute."""
        self.refused_by_hub += 1
        if (notice.kind, notice.reason) not in self._refusals_noted:
            self._refusals_noted.add((notice.kind, notice.reason))
            self._journal.note(f"the hub refused {notice.kind} ({notice.reason}): {notice.detail}")
