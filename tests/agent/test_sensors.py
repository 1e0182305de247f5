"""Simulated sensors stay in range over days; anomalies do what their plan says."""

from fleetmind.agent.sensors import DAY_S, SIMULATED_SENSORS, AnomalyPlan, Environment

T0 = 1_732_400_000.0


def test_simulated_values_stay_within_sensor_range_for_a_week() -> None:
    for seed in range(20):
        env = Environment(seed)
        for step in range(0, int(7 * DAY_S), 600):
            for sensor in SIMULATED_SENSORS:
                value = sensor.value_fn(env, T0 + step)
                assert sensor.low <= value <= sensor.high, (sensor.key, value)


def test_a_seed_gives_the_same_signal() -> None:
    first, second = Environment(7), Environment(7)
    sensor = SIMULATED_SENSORS[0]
    assert [sensor.value_fn(first, T0 + s) for s in range(10)] == [
        sensor.value_fn(second, T0 + s) for s in range(10)
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
