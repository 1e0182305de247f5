"""The durable outbox: order, acknowledgement, bounds, overflow policies, crash safety."""

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from fleetmind.agent.outbox import Outbox, OutboxLimits, Overflow


def fill(outbox: Outbox, count: int, size: int = 100, readings: int = 4) -> list[int | None]:
    return [outbox.put(bytes([n % 256]) * size, readings) for n in range(count)]


def test_order_ack_and_counters(tmp_path: Path) -> None:
    outbox = Outbox(tmp_path / "o.db")
    ids = fill(outbox, 5)
    assert [entry.id for entry in outbox.pending(after=-1, limit=10)] == ids
    assert [entry.id for entry in outbox.pending(after=ids[1] or 0, limit=2)] == ids[2:4]
    outbox.ack(ids[0] or 0)
    outbox.ack(ids[0] or 0)  # a second ack of the same pack changes nothing
    assert len(outbox) == 4
    assert outbox.bytes == 400
    assert outbox.pending_readings() == 16
    assert outbox.counters.packs_accepted == 5
    assert outbox.counters.readings_acked == 4
    outbox.close()


def test_survives_reopening(tmp_path: Path) -> None:
    outbox = Outbox(tmp_path / "o.db")
    ids = fill(outbox, 3)
    outbox.ack(ids[0] or 0)
    outbox.close()
    again = Outbox(tmp_path / "o.db")
    assert [entry.id for entry in again.pending(after=-1, limit=10)] == ids[1:]
    assert (len(again), again.bytes) == (2, 200)
    assert again.counters.packs_acked == 1
    later = again.put(b"x", 1)
    assert later is not None
    assert later > (ids[-1] or 0)  # ids keep growing across restarts
    again.close()


def test_drop_oldest_keeps_the_newest_and_counts(tmp_path: Path) -> None:
    outbox = Outbox(tmp_path / "o.db", OutboxLimits(max_bytes=1000))
    ids = fill(outbox, 15)
    assert outbox.bytes <= 1000
    assert [entry.id for entry in outbox.pending(after=-1, limit=100)] == ids[5:]
    counters = outbox.counters
    assert (counters.packs_dropped_oldest, counters.readings_dropped_oldest) == (5, 20)
    assert counters.packs_accepted == 15
    outbox.close()


def test_drop_newest_refuses_what_does_not_fit_and_counts(tmp_path: Path) -> None:
    outbox = Outbox(tmp_path / "o.db", OutboxLimits(max_bytes=1000, overflow=Overflow.DROP_NEWEST))
    ids = fill(outbox, 15)
    assert ids[10:] == [None] * 5
    assert [entry.id for entry in outbox.pending(after=-1, limit=100)] == ids[:10]
    counters = outbox.counters
    assert (counters.packs_dropped_newest, counters.readings_dropped_newest) == (5, 20)
    assert counters.packs_accepted == 10
    outbox.close()


def test_old_packs_expire(tmp_path: Path) -> None:
    outbox = Outbox(tmp_path / "o.db", OutboxLimits(max_age_s=0.2))
    fill(outbox, 3)
    time.sleep(0.3)
    fill(outbox, 1)
    assert len(outbox) == 1
    assert (outbox.counters.packs_expired, outbox.counters.readings_expired) == (3, 12)
    outbox.close()


WRITER = textwrap.dedent(
    """
    import sys
    from fleetmind.agent.outbox import Outbox
    outbox = Outbox(sys.argv[1])
    n = 0
    while True:
        n += 1
        outbox.put(n.to_bytes(8, "big") * 50, 4)
        print(n, flush=True)
    """
)


@pytest.mark.parametrize("seconds", [0.3, 0.7])
def test_kill_minus_nine_mid_write_loses_nothing_committed(tmp_path: Path, seconds: float) -> None:
    path = tmp_path / "o.db"
    writer = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(path)], stdout=subprocess.PIPE, text=True
    )
    time.sleep(seconds)
    os.kill(writer.pid, signal.SIGKILL)
    writer.wait()
    assert writer.stdout is not None
    with writer.stdout:
        confirmed = [int(line) for line in writer.stdout.read().split()]
    assert confirmed, "the writer committed nothing before it was killed"
    outbox = Outbox(path)
    stored = [
        int.from_bytes(entry.payload[:8], "big") for entry in outbox.pending(after=-1, limit=10**9)
    ]
    # everything put() returned for is there, in order, once; at most one more was mid-commit
    assert stored[: len(confirmed)] == confirmed
    assert len(stored) - len(confirmed) <= 1
    assert stored == list(range(1, len(stored) + 1))
    assert outbox.counters.packs_accepted == len(stored)
    outbox.close()
