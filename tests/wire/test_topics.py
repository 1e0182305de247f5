"""The topic tree and its parser."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fleetmind.wire import topics
from fleetmind.wire.errors import TopicError


def test_builders_and_parser_agree() -> None:
    parsed = topics.parse(topics.telemetry("pump-7"))
    assert parsed == topics.DeviceTopic("pump-7", topics.Direction.UP, "telemetry")
    assert topics.parse(topics.up("d1", "event/alarm")).kind == "event/alarm"
    assert topics.parse(topics.down("d1", "command")).direction is topics.Direction.DOWN
    assert topics.status("d1") == "fm/v1/d/d1/up/status"


@pytest.mark.parametrize(
    "topic",
    [
        "fm/v1/d/d1/up",
        "fm/v1/d/d1/sideways/telemetry",
        "fm/v2/d/d1/up/telemetry",
        "fm/v1/d/-bad/up/telemetry",
        "fm/v1/d/d1/up/",
        "fm/v1/d/d1/up/a//b",
        "fm/v1/d/d1/up/+",
        "other/topic",
        "",
    ],
)
def test_invalid_topics_are_refused(topic: str) -> None:
    with pytest.raises(TopicError):
        topics.parse(topic)


@given(st.text(max_size=200))
def test_fuzz_parse_only_raises_topic_errors(topic: str) -> None:
    try:
        parsed = topics.parse(topic)
    except TopicError:
        return
    assert topics.DEVICE_ID_PATTERN.fullmatch(parsed.device_id)
