"""What the hub refused from each device, so the device's page can say why its data is missing.

Every refused uplink message is counted by kind (telemetry, state, status...) and reason; the
last few refusals of each device are kept with their reason and a short detail; the first
refusal of a kind and reason by a device is logged, the rest only counted. Memory is bounded:
at most ``per_device`` refusals for at most ``devices`` devices (the least recently refused
device is forgotten first).
"""

import logging
import threading
from collections import Counter, OrderedDict, deque
from dataclasses import dataclass
from datetime import UTC, datetime

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Reject:
    """One refused message: when, which uplink kind, the counter's reason, and why in words."""

    at: datetime
    kind: str
    reason: str
    detail: str
    size: int


class RejectLog:
    def __init__(self, *, per_device: int = 20, devices: int = 10_000) -> None:
        self._per_device = per_device
        self._devices = devices
        self._recent: OrderedDict[str, deque[Reject]] = OrderedDict()
        self._counts: Counter[tuple[str, str]] = Counter()
        self._logged: set[tuple[str, str, str]] = set()
        self._lock = threading.Lock()

    def record(
        self,
        device_id: str,
        kind: str,
        reason: str,
        detail: str,
        size: int = 0,
        *,
        error: BaseException | None = None,
    ) -> bool:
        """Count a refusal; True if it is the first of its device, kind and reason (logged,
        with the traceback of ``error``: an unexpected failure, not a refused input)."""
        reject = Reject(datetime.now(UTC), kind, reason, detail[:300], size)
        key = (device_id, kind, reason)
        with self._lock:
            self._counts[kind, reason] += 1
            recent = self._recent.pop(device_id, None) or deque(maxlen=self._per_device)
            recent.append(reject)
            self._recent[device_id] = recent
            if len(self._recent) > self._devices:
                self._recent.popitem(last=False)
            first = key not in self._logged and len(self._logged) < self._devices * 4
            if first:
                self._logged.add(key)
        if first:
            log.warning(
                "refused %s from %s (%s): %s; further ones are only counted",
                kind, device_id, reason, reject.detail, exc_info=error,
            )  # fmt: skip
        return first

    def recent(self, device_id: str) -> list[Reject]:
        """The device's last refusals, newest first."""
        with self._lock:
            return list(reversed(self._recent.get(device_id, ())))

    def counts(self) -> dict[str, dict[str, int]]:
        """Refusals since start, by kind and reason."""
        by_kind: dict[str, dict[str, int]] = {}
        with self._lock:
            for (kind, reason), count in sorted(self._counts.items()):
                by_kind.setdefault(kind, {})[reason] = count
        return by_kind

    def by_reason(self) -> dict[str, int]:
        """Refusals since start, by reason, whatever their kind."""
        totals: Counter[str] = Counter()
        with self._lock:
            for (_, reason), count in self._counts.items():
                totals[reason] += count
        return dict(totals)
