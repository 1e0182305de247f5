"""The hub's subscriber when a batch cannot be committed, against both brokers: it acknowledges
nothing of it, turns unhealthy, goes away and comes back, and the broker delivers everything
again; nothing a device saw acknowledged is missing at the end."""

import threading
import time

from brokers import HUB_SECRET, Broker, Client, broker  # noqa: F401 - broker is the fixture

from conftest import wait_until
from fleetmind.devices import model
from fleetmind.telemetry.errors import StoreUnavailable
from fleetmind.transport.address import BrokerAddress
from fleetmind.transport.backoff import Backoff
from fleetmind.transport.mqtt import Received
from fleetmind.transport.subscriber import BatchSubscriber
from fleetmind.wire import topics


def test_a_batch_that_cannot_be_committed_is_delivered_again(broker: Broker) -> None:
    committed: set[bytes] = set()
    outage = threading.Event()
    outage.set()
    failed_batches: list[int] = []

    def handler(batch: list[Received]) -> None:
        if outage.is_set():
            failed_batches.append(len(batch))
            raise StoreUnavailable("the store cannot commit")
        committed.update(message.payload for message in batch)

    address = BrokerAddress("127.0.0.1", broker.hub_port, model.HUB_USERNAME, HUB_SECRET)
    subscriber = BatchSubscriber(
        address, topics.UPLINK_FILTER, handler, client_id="_hub-redelivery",
        backoff=Backoff(initial=0.2, cap=0.5),
    )  # fmt: skip
    subscriber.start()
    device = Client(broker.port, "d1", broker.secrets["d1"], client_id="d1")
    sent = [b"reading-%d" % n for n in range(200)]
    acknowledged: list[bytes] = []

    def publish_all() -> None:
        for payload in sent:
            info = device.mqtt.publish("fm/v1/d/d1/up/telemetry", payload, qos=1)
            info.wait_for_publish(timeout=60)
            acknowledged.append(payload)

    publisher = threading.Thread(target=publish_all)
    publisher.start()
    wait_until(lambda: failed_batches, timeout=20)
    assert not subscriber.healthy  # what /healthz reports
    time.sleep(1.5)  # several failed rounds: disconnect, back off, come back, fail again
    outage.clear()
    publisher.join(timeout=60)
    wait_until(lambda: subscriber.healthy and set(acknowledged) <= committed, timeout=30)
    assert len(failed_batches) >= 2
    assert len(acknowledged) == len(sent)
    subscriber.stop()
    device.close()
