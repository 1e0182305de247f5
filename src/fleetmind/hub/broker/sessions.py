"""amqtt's session and subscription table, made safe for client ids that come back.

amqtt finds a session's subscriptions by client id; a client id comes back with a new session (a
clean reconnect, a takeover) while the old one is being cleaned up, and that cleanup removed the
new session's subscriptions. Here a subscription belongs to its session object, and cleanup
removes only the session it found. The table is also walked over a snapshot.
"""

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from amqtt.session import Session


class Subscriptions(dict[str, Any]):
    """amqtt's subscription table, iterated over a snapshot: amqtt walks the live table across
    awaits (routing a message, sending retained messages to a new client), and a client
    subscribing meanwhile aborted the walk ("dictionary changed size during iteration")."""

    def items(self) -> Any:
        return list(super().items())

    def __iter__(self) -> Any:
        return iter(list(super().__iter__()))


class SessionTable:
    """The session and subscription handling of :class:`~.server.StrictBroker` (a mixin over
    amqtt's ``Broker``, whose ``_subscriptions`` and ``_sessions`` it uses)."""

    # amqtt's, declared for the type checker only (a definition here would replace amqtt's)
    _subscriptions: dict[str, list[tuple[Session, int]]]
    _sessions: dict[str, tuple[Session, Any]]
    _cleanup_session: Callable[[str], Awaitable[None]]

    def _forget_older(self, session: Session) -> None:
        """Drop subscriptions left by earlier sessions of this client id."""
        for entries in self._subscriptions.values():
            entries[:] = [
                (other, qos)
                for other, qos in entries
                if other is session or other.client_id != session.client_id
            ]

    def _del_subscription(self, a_filter: str, session: Session) -> int:
        entries = self._subscriptions.get(a_filter, [])
        before = len(entries)
        entries[:] = [(other, qos) for other, qos in entries if other is not session]
        return before - len(entries)

    async def _session_monitor(self) -> None:
        """Forget disconnected clean sessions, each only if it is still the registered one."""
        while True:
            ended = [
                (client_id, session)
                for client_id, (session, _) in self._sessions.items()
                if session.clean_session and session.transitions.state == "disconnected"
            ]
            for client_id, session in ended:
                if self._sessions.get(client_id, (None, None))[0] is session:
                    await self._cleanup_session(client_id)
            await asyncio.sleep(1)
