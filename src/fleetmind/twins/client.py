"""The agent's side of the twin: apply desired documents newer than the applied one, report."""

import time
from collections.abc import Callable
from typing import Any

from fleetmind.wire import messages

#: applies a desired document and returns the reported document that results
Apply = Callable[[dict[str, Any]], dict[str, Any]]


class TwinClient:
    """Versions sync by number, never by replaying history: an agent that missed three desired
    versions applies the newest one it sees and reports it."""

    def __init__(self, apply: Apply, *, applied_version: int = 0) -> None:
        self._apply = apply
        self.applied_version = applied_version
        self.reported: dict[str, Any] = {}
        self._reported_version = 0

    def on_desired(self, desired: messages.Desired) -> messages.State | None:
        """Apply ``desired`` if it is newer; the state to report, or None if nothing changed."""
        if desired.version <= self.applied_version:
            return None
        self.reported = self._apply(desired.desired)
        self.applied_version = desired.version
        return self.state()

    def state(self) -> messages.State:
        # milliseconds keep growing across agent restarts, so the hub never takes a new report
        # for a stale one
        self._reported_version = max(self._reported_version + 1, int(time.time() * 1000))
        return messages.State(self._reported_version, self.reported, self.applied_version)
