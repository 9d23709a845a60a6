"""The KPA decider: published Knative autoscaler behaviour, tick by tick with a stepped clock."""

from __future__ import annotations

import pytest

from gs_engine.autoscaling.kpa import (
    KpaConfig,
    KpaDecider,
    Sample,
    clamp_desired,
    excess_burst_capacity,
    rate_bounds,
    window_average,
)
from gs_engine.errors import InvalidInput


def config(**kw: object) -> KpaConfig:
    base: dict[str, object] = {
        "target": 10.0,
        "total_value": 13.3,
        "max_scale_up_rate": 10.0,
        "max_scale_down_rate": 10.0,
        "stable_window_seconds": 60.0,
        "target_burst_capacity": 0.0,
    }
    base.update(kw)
    return KpaConfig(**base)


def test_stable_mode_follows_concurrency() -> None:
    decider = KpaDecider(config())
    assert decider.scale(0, 50, 10, 1).desired_pods == 5
    assert decider.scale(2, 100, 10, 5).desired_pods == 10


def test_rate_limited_scale_up() -> None:
    assert KpaDecider(config()).scale(0, 1000, 1001, 1).desired_pods == 10
    assert KpaDecider(config()).scale(0, 1000, 1001, 10).desired_pods == 100


def test_rate_limited_scale_down() -> None:
    assert KpaDecider(config()).scale(0, 1, 1, 100).desired_pods == 10
    assert KpaDecider(config()).scale(0, 1, 1, 10).desired_pods == 1


def test_unreachable_can_scale_down_freely() -> None:
    assert KpaDecider(config(reachable=False)).scale(0, 1, 1, 100).desired_pods == 1
    assert rate_bounds(config(reachable=False), 100) == (0, 1000)


def test_zero_ready_pods_counts_as_one_for_rates() -> None:
    assert rate_bounds(config(), 0) == (0, 10)


def test_panic_starts_at_threshold_and_never_decreases() -> None:
    decider = KpaDecider(config(max_scale_up_rate=1000))
    # 1 ready pod, panic window shows 20 per pod → 2 desired / 1 ready = 2.0 ≥ threshold
    first = decider.scale(0, 10, 20, 1)
    assert first.panic and first.desired_pods == 2
    grown = decider.scale(2, 10, 80, 2)
    assert grown.panic and grown.desired_pods == 8
    # the load drops but panic holds the count
    held = decider.scale(4, 10, 10, 8)
    assert held.panic and held.desired_pods == 8


def test_panic_lasts_a_stable_window_after_the_last_panicking_tick() -> None:
    decider = KpaDecider(config())
    decider.scale(0, 10, 100, 1)
    decider.scale(10, 10, 200, 5)  # still panicking: extends panic to t=10
    assert decider.scale(70, 10, 10, 20).panic  # exactly one window later: not yet over
    calm = decider.scale(71, 10, 10, 20)
    assert not calm.panic
    assert calm.desired_pods == 2  # limited by max scale-down: floor(20 / 10)


def test_panic_uses_the_larger_of_stable_and_panic() -> None:
    decider = KpaDecider(config(max_scale_up_rate=1000))
    result = decider.scale(0, 300, 40, 2)  # panic: 4 / 2 = 2.0; stable wants 30
    assert result.panic and result.desired_pods == 30


def test_scale_down_delay_keeps_the_max_over_the_window() -> None:
    decider = KpaDecider(config(scale_down_delay_seconds=60, max_scale_down_rate=1000))
    assert decider.scale(0, 100, 100, 10).desired_pods == 10
    assert decider.scale(30, 20, 20, 10).desired_pods == 10
    assert decider.scale(59, 20, 20, 10).desired_pods == 10
    assert decider.scale(60, 20, 20, 10).desired_pods == 2


def test_no_delay_scales_down_at_once() -> None:
    decider = KpaDecider(config(max_scale_down_rate=1000))
    decider.scale(0, 100, 100, 10)
    assert decider.scale(1, 20, 20, 10).desired_pods == 2


def test_activation_scale() -> None:
    cfg = config(activation_scale=3)
    assert KpaDecider(cfg).scale(0, 1, 1, 1).desired_pods == 3
    assert KpaDecider(cfg).scale(0, 0, 0, 1).desired_pods == 0
    assert KpaDecider(cfg).scale(0, 50, 50, 5).desired_pods == 5
    assert clamp_desired(cfg, 0, (0, 10)) == 0


def test_excess_burst_capacity() -> None:
    assert excess_burst_capacity(config(target_burst_capacity=0), 3, 10) == 0
    assert excess_burst_capacity(config(target_burst_capacity=-1), 3, 10) == -1
    # 3 pods x 13.3 capacity - 20 burst - 10.5 in flight = 9.4 → 9
    assert excess_burst_capacity(config(target_burst_capacity=20), 3, 10.5) == 9
    assert excess_burst_capacity(config(target_burst_capacity=211, total_value=100), 1, 50) == -161
    result = KpaDecider(config(target_burst_capacity=20)).scale(0, 20, 10.5, 3)
    assert result.excess_burst_capacity == 9


def test_no_data_is_an_invalid_result() -> None:
    result = KpaDecider(config()).scale(0, None, None, 1)
    assert not result.valid
    assert result.desired_pods == -1
    assert "no data" in result.reason


def test_window_average() -> None:
    samples = [Sample(0, 10), Sample(30, 20), Sample(59, 30), Sample(61, 90)]
    assert window_average(samples, 59, 60) == pytest.approx(20)
    assert window_average(samples, 61, 6) == pytest.approx(60)  # 59 and 61
    assert window_average(samples, 61, 1) == pytest.approx(90)
    assert window_average(samples, 120, 10) is None


def test_bad_config_is_rejected_with_fields() -> None:
    with pytest.raises(InvalidInput) as err:
        KpaDecider(config(target=0, max_scale_down_rate=0))
    paths = {p.path for p in err.value.problems}
    assert {"config.target", "config.maxScaleDownRate"} <= paths


def test_panic_window_defaults_to_ten_percent() -> None:
    assert config().panic_window_seconds == pytest.approx(6.0)
