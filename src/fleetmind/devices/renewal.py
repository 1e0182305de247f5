"""Certificate renewals over a device's own MQTT connection, signed beside ingest.

A CSR arrives on ``up/csr`` among the telemetry; signing it and recording the certificate take
longer than a pack, and an ingest batch is acknowledged only when all of it was handled. So the
consumer hands each CSR to :class:`RenewalQueue` and moves on: the message is acknowledged once
taken, the answer goes to ``down/certificate`` when it is signed. A device that gets no answer
(the hub went down meanwhile) asks again after it reconnects. One renewal per device waits at a
time, and at most ``max_waiting`` in all.
"""

import logging
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from fleetmind.audit.model import Actor
from fleetmind.devices.errors import DeviceError
from fleetmind.devices.service import DeviceService
from fleetmind.wire import messages, topics

log = logging.getLogger(__name__)

#: publishes (topic, payload, retain) to the broker
Publish = Callable[[str, bytes, bool], None]


class RenewalQueue:
    def __init__(self, devices: DeviceService, publish: Publish, *, max_waiting: int = 100) -> None:
        self._devices = devices
        self._publish = publish
        self._max_waiting = max_waiting
        self._waiting: set[str] = set()
        self._lock = threading.Lock()
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="renewals")

    def submit(self, device_id: str, csr: bytes) -> bool:
        """Queue a renewal; False when one of this device's already waits or the queue is full."""
        with self._lock:
            if device_id in self._waiting or len(self._waiting) >= self._max_waiting:
                return False
            self._waiting.add(device_id)
        self._executor.submit(self._renew, device_id, csr)
        return True

    def _renew(self, device_id: str, csr: bytes) -> None:
        try:
            issued = self._devices.renew(device_id, csr, by=Actor(device_id, "mqtt"))
            answer = messages.Certificate(issued.pem.decode())
        except DeviceError as exc:
            answer = messages.Certificate(None, str(exc))
        except Exception:
            log.exception("renewing the certificate of %s failed; it will ask again", device_id)
            return
        finally:
            with self._lock:
                self._waiting.discard(device_id)
        try:
            self._publish(topics.down(device_id, topics.Down.CERTIFICATE), answer.encode(), False)
        except ConnectionError as exc:  # the device asks again after reconnecting
            log.info("the certificate answer for %s is not sent now: %s", device_id, exc)

    def close(self) -> None:
        """Finish what waits, then stop."""
        self._executor.shutdown(wait=True)
