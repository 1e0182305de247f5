"""The ``Outbox`` seam: sealed packs wait here until the broker acknowledged them.

Entries are kept in sequence order; an entry leaves only through :meth:`Outbox.ack`.
"""

import asyncio
import itertools
from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True, slots=True)
class Entry:
    seq: int
    payload: bytes
    readings: int


class Outbox(Protocol):
    changed: asyncio.Event

    def put(self, entry: Entry) -> None: ...

    def pending(self, *, after: int, limit: int) -> list[Entry]:
        """Unacknowledged entries with a sequence number above ``after``, in order."""
        ...

    def ack(self, seq: int) -> None: ...

    def __len__(self) -> int: ...


class MemoryOutbox:
    """An outbox in RAM: survives broker outages, not agent restarts."""

    def __init__(self) -> None:
        self._entries: dict[int, Entry] = {}
        self.changed = asyncio.Event()

    def put(self, entry: Entry) -> None:
        self._entries[entry.seq] = entry
        self.changed.set()

    def pending(self, *, after: int, limit: int) -> list[Entry]:
        # sequence numbers only grow, so dict order is seq order; entries at or below ``after``
        # still here are the few in flight
        newer = itertools.dropwhile(lambda entry: entry.seq <= after, self._entries.values())
        return list(itertools.islice(newer, limit))

    def ack(self, seq: int) -> None:
        self._entries.pop(seq, None)
        self.changed.set()

    def __len__(self) -> int:
        return len(self._entries)
