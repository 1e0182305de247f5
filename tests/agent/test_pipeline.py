"""Edge processing: each stage does what it says, for any input (property tests)."""

import itertools
import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fleetmind.agent.pipeline import SensorPipeline, SensorSettings, SettingsError
from fleetmind.agent.settings import AgentSettings

values = st.lists(st.floats(-1000, 1000, allow_nan=False), min_size=1, max_size=300)


def run(
    settings: SensorSettings, series: list[float], step: float = 1.0
) -> list[tuple[str, float, float]]:
    pipeline = SensorPipeline("x", settings)
    out: list[tuple[str, float, float]] = []
    for index, value in enumerate(series):
        out.extend(pipeline.push(1000.0 + index * step, value))
    out.extend(pipeline.flush())
    return out


@given(values, st.floats(0.01, 100))
def test_deadband_never_emits_within_the_band(series: list[float], band: float) -> None:
    out = [value for _, _, value in run(SensorSettings(deadband=band), series)]
    assert out[0] == series[0]
    for previous, current in itertools.pairwise(out):
        assert abs(current - previous) > band


@given(values, st.floats(0.5, 30), st.floats(0.05, 3))
def test_aggregation_windows_cover_every_input_exactly_once(
    series: list[float], window: float, step: float
) -> None:
    out = run(SensorSettings(window_s=window), series, step)
    counts = [value for name, _, value in out if name == "x_count"]
    assert sum(counts) == len(series)
    starts = [t for name, t, _ in out if name == "x_count"]
    assert starts == sorted(set(starts))  # one closing per window, in order
    lows = [value for name, _, value in out if name == "x_min"]
    highs = [value for name, _, value in out if name == "x_max"]
    assert min(lows) == min(series)
    assert max(highs) == max(series)


@given(values, st.integers(1, 10))
def test_decimation_keeps_every_nth(series: list[float], every: int) -> None:
    out = run(SensorSettings(every=every), series)
    assert [value for _, _, value in out] == series[::every]


@given(values, st.integers(1, 20))
def test_moving_average_of_the_last_n(series: list[float], n: int) -> None:
    out = [value for _, _, value in run(SensorSettings(average=n), series)]
    for index, value in enumerate(out):
        window = series[max(0, index - n + 1) : index + 1]
        assert math.isclose(value, sum(window) / len(window), rel_tol=1e-9, abs_tol=1e-9)


def test_calibration_and_validation() -> None:
    pipeline = SensorPipeline(
        "t", SensorSettings(low=0, high=100, max_rate=5, stuck_after=3, gain=2, offset=1)
    )
    assert pipeline.push(0, 10) == [("t", 0, 21)]
    assert pipeline.push(1, 200) == []  # out of range
    assert pipeline.push(2, 40) == []  # 30 in 2 s: faster than 5/s
    assert pipeline.push(3, 12) == [("t", 3, 25)]
    assert pipeline.push(4, 12) == [("t", 4, 25)]
    assert pipeline.push(5, 12) == []  # third identical value: stuck
    assert pipeline.push(6, math.nan) == []
    assert dict(pipeline.invalid) == {"range": 1, "rate": 1, "stuck": 1, "type": 1}
    assert (pipeline.inputs, pipeline.outputs) == (7, 3)


@pytest.mark.parametrize(
    "document",
    [
        [],
        {"sample_hz": 0},
        {"sample_hz": "fast"},
        {"volume": 11},
        {"sensors": {"t": {"deadband": -1}}},
        {"sensors": {"t": {"average": 1.5}}},
        {"sensors": {"t": {"colour": 1}}},
        {"sensors": []},
    ],
)
def test_bad_settings_are_refused(document: object) -> None:
    with pytest.raises(SettingsError):
        AgentSettings.parse(document)


def test_settings_parse() -> None:
    settings = AgentSettings.parse(
        {"sample_hz": 5, "sensors": {"temperature": {"deadband": 0.2, "window_s": 60}}}
    )
    assert settings.sample_hz == 5.0
    assert settings.sensor("temperature") == SensorSettings(deadband=0.2, window_s=60)
    assert settings.sensor("humidity") == SensorSettings()
