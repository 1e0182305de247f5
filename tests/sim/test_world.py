"""Simulated sensors stay in range over days; anomalies do what their plan says; the battery
drains at night and charges by day; a world gives an agent what it reads."""

import math

from fleetmind.agent.power import PowerMode
from fleetmind.sim.world import (
    DAY_S,
    SIMULATED_SENSORS,
    AnomalyPlan,
    Environment,
    SimulatedBattery,
    World,
)

T0 = 1_732_400_000.0


def test_simulated_values_stay_within_sensor_range_for_a_week() -> None:
    for seed in range(20):
        env = Environment(seed)
        for step in range(0, int(7 * DAY_S), 600):
            for sensor in SIMULATED_SENSORS:
                value = sensor.signal(env, T0 + step)
                assert sensor.low <= value <= sensor.high, (sensor.key, value)


def test_a_seed_gives_the_same_signal() -> None:
    first, second = World(7), World(7)
    assert [s.key for s in first.sensors] == [s.key for s in SIMULATED_SENSORS]
    sensor_a, sensor_b = first.sensors[0], second.sensors[0]
    assert [sensor_a.value_fn(T0 + s) for s in range(10)] == [
        sensor_b.value_fn(T0 + s) for s in range(10)
    ]


def test_anomalies() -> None:
    env = Environment(1)
    assert AnomalyPlan(dropout=1.0).apply(env, "temp", T0, 20.0) is None
    stuck = AnomalyPlan(stuck=1.0, duration_s=10)
    assert stuck.apply(env, "temp", T0, 20.0) == 20.0
    assert stuck.apply(env, "temp", T0 + 5, 25.0) == 20.0
    assert AnomalyPlan(spike=1.0).apply(env, "temp", T0, 20.0) == 50.0
    assert AnomalyPlan(level_shift=1.0).apply(env, "temp", T0, 20.0) == 35.0
    assert AnomalyPlan().apply(env, "temp", T0, 20.0) == 20.0
    assert World(1, anomalies=AnomalyPlan(dropout=1.0)).inject("temp", T0, 20.0) is None


def test_battery_drains_at_night_and_charges_by_day() -> None:
    night = SimulatedBattery(level_pct=50, phase=math.pi)  # sun below the horizon at first
    night.update(T0, PowerMode.NORMAL)
    assert night.update(T0 + 3600, PowerMode.NORMAL) < 50
    day = SimulatedBattery(level_pct=50, phase=math.pi / 2 - 2 * math.pi * T0 / 86400)
    day.update(T0, PowerMode.CRITICAL)
    assert day.update(T0 + 600, PowerMode.CRITICAL) > 50
    assert day.charging(T0, PowerMode.CRITICAL)
