"""Invariants over many generated inputs: bounds always hold, decisions never raise."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from gs_engine.autoscaling import (
    HpaInput,
    KpaConfig,
    KpaDecider,
    MetricSpec,
    MetricTarget,
    PodState,
    hpa_decide,
)
from gs_engine.autoscaling.kpa import rate_bounds


@settings(max_examples=200, deadline=None)
@given(
    usages=st.lists(st.one_of(st.none(), st.floats(0, 8)), min_size=1, max_size=12),
    ready=st.lists(st.booleans(), min_size=12, max_size=12),
    target=st.integers(1, 200),
    min_replicas=st.integers(1, 5),
    span=st.integers(0, 20),
)
def test_hpa_stays_within_bounds(
    usages: list[float | None], ready: list[bool], target: int, min_replicas: int, span: int
) -> None:
    max_replicas = min_replicas + span
    current = max(min_replicas, min(len(usages), max_replicas))
    pods = tuple(
        PodState(f"p{i}", ready=ready[i], requests={"cpu": 1.0}, usage={} if u is None else {"cpu": u})
        for i, u in enumerate(usages)
    )
    metric = MetricSpec("Resource", "cpu", MetricTarget("Utilization", average_utilization=target))
    decision = hpa_decide(HpaInput(current, min_replicas, max_replicas, (metric,), pods), 0.0)
    assert min_replicas <= decision.desired_replicas <= max_replicas
    assert decision.desired_replicas <= max(2 * current, current + 4)


@settings(max_examples=200, deadline=None)
@given(
    ticks=st.lists(
        st.tuples(st.floats(0, 5000), st.floats(0, 5000), st.integers(0, 200)), min_size=1, max_size=20
    ),
    up=st.floats(1.1, 100),
    down=st.floats(1.1, 100),
)
def test_kpa_stable_mode_respects_rate_bounds(
    ticks: list[tuple[float, float, int]], up: float, down: float
) -> None:
    decider = KpaDecider(KpaConfig(target=10, max_scale_up_rate=up, max_scale_down_rate=down))
    for step, (stable, panic, ready) in enumerate(ticks):
        result = decider.scale(step * 2.0, stable, panic, ready)
        assert result.valid
        low, high = rate_bounds(decider.config, ready)
        if not result.panic:
            assert low <= result.desired_pods <= high
