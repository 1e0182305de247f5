"""The agent's side of commands: a registry of handlers and the answer to each request."""

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from fleetmind.wire import messages

log = logging.getLogger(__name__)

Handler = Callable[[dict[str, Any]], Awaitable[dict[str, Any]]]


class CommandHandlers:
    def __init__(self) -> None:
        self._handlers: dict[str, Handler] = {}

    def register(self, name: str, handler: Handler) -> None:
        self._handlers[name] = handler

    @property
    def names(self) -> list[str]:
        return sorted(self._handlers)

    async def handle(self, command: messages.Command, *, now: float) -> messages.CommandResult:
        """Run the handler; an unknown, expired or failing command is answered with an error."""
        if now > command.expires_at:
            return messages.CommandResult(command.id, ok=False, result={}, error="expired")
        handler = self._handlers.get(command.name)
        if handler is None:
            return messages.CommandResult(
                command.id, ok=False, result={}, error=f"unknown command {command.name!r}"
            )
        try:
            result = await handler(command.args)
        except Exception as exc:  # noqa: BLE001 - any failure of a handler is the command's answer
            log.warning("command %s failed: %s", command.name, exc)
            return messages.CommandResult(command.id, ok=False, result={}, error=str(exc)[:500])
        return messages.CommandResult(command.id, ok=True, result=result)
