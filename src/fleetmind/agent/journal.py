"""What happened on an agent: each event logged once as it happens, the last 200 kept for the
``collect_logs`` command."""

import logging
import time
from collections import deque

log = logging.getLogger(__name__)


class Journal:
    def __init__(self, device_id: str, *, size: int = 200) -> None:
        self.device_id = device_id
        self.events: deque[str] = deque(maxlen=size)

    def note(self, event: str) -> None:
        self.events.append(f"{time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())} {event}")
        log.info("%s: %s", self.device_id, event)
