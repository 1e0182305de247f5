"""Chaos end to end: 100 agents; kill -9 some mid-stream and restart them, stop the broker for a
while, kill -9 the hub and restart it. Every reading any agent accepted is stored exactly once."""

from pathlib import Path

import pytest

from conftest import require
from fleetmind.sim.chaos import ChaosPlan, run_chaos
from fleetmind.sim.stack import Stack


@pytest.mark.timeout(400)
def test_nothing_accepted_is_lost_or_duplicated(tmp_path: Path) -> None:
    result = run_chaos(Stack(tmp_path, mosquitto=require("mosquitto")), ChaosPlan())
    assert result.readings_accepted > 100 * 2 * 4 * 20  # every device sent for most of the run
    assert result.readings_left_in_outboxes == 0
    assert result.readings_dropped == 0
    assert result.readings_lost == 0
    assert result.duplicates == 0
    assert result.readings_stored == result.readings_accepted
