"""hpa_decide: metrics combined, then stabilization, rate limits and bounds, with conditions."""

from __future__ import annotations

from gs_engine.autoscaling import (
    Behavior,
    HpaInput,
    MetricSpec,
    MetricTarget,
    PastRecommendation,
    PodState,
    ScaleEvent,
    ScalingPolicy,
    ScalingRules,
    hpa_decide,
)
from gs_engine.autoscaling.hpa import HpaDecision

NOW = 5000.0
CPU30 = MetricSpec("Resource", "cpu", MetricTarget("Utilization", average_utilization=30))


def pods(cpu: list[float], rps: list[float] | None = None) -> tuple[PodState, ...]:
    out = []
    for i, used in enumerate(cpu):
        usage = {"cpu": used}
        if rps is not None:
            usage["rps"] = rps[i]
        out.append(PodState(f"p{i}", requests={"cpu": 1.0}, usage=usage))
    return tuple(out)


def cond(decision: HpaDecision, type_: str) -> tuple[str, str]:
    found = [c for c in decision.conditions if c.type == type_]
    assert len(found) == 1, decision.conditions
    return found[0].status, found[0].reason


def case(**kw: object) -> HpaInput:
    base: dict[str, object] = {
        "current_replicas": 3,
        "min_replicas": 1,
        "max_replicas": 10,
        "metrics": (CPU30,),
        "pods": pods([0.3, 0.5, 0.7]),
    }
    base.update(kw)
    return HpaInput(**base)


def test_scale_up_with_conditions() -> None:
    decision = hpa_decide(case(), NOW)
    assert decision.desired_replicas == 5
    assert decision.recommendation == 5
    assert cond(decision, "AbleToScale") == ("True", "ReadyForNewScale")
    assert cond(decision, "ScalingActive") == ("True", "ValidMetricFound")
    assert cond(decision, "ScalingLimited") == ("False", "DesiredWithinRange")


def test_max_replicas_clamp() -> None:
    decision = hpa_decide(case(max_replicas=4), NOW)
    assert decision.desired_replicas == 4
    assert cond(decision, "ScalingLimited") == ("True", "TooManyReplicas")


def test_min_replicas_clamp() -> None:
    decision = hpa_decide(case(min_replicas=3, pods=pods([0.01, 0.01, 0.01])), NOW)
    assert decision.desired_replicas == 3
    assert decision.recommendation == 1
    assert cond(decision, "ScalingLimited") == ("True", "TooFewReplicas")


def test_scale_up_rate_limit() -> None:
    decision = hpa_decide(case(current_replicas=1, max_replicas=100, pods=pods([5.0])), NOW)
    assert decision.recommendation == 17
    assert decision.desired_replicas == 5  # default: max(1 + 4, 2 * 1)
    assert cond(decision, "ScalingLimited") == ("True", "ScaleUpLimit")


def test_scale_down_stabilized_by_recent_recommendation() -> None:
    low = pods([0.1, 0.1, 0.1])
    decision = hpa_decide(case(pods=low, recommendations=(PastRecommendation(NOW - 120, 3),)), NOW)
    assert decision.desired_replicas == 3
    assert cond(decision, "AbleToScale") == ("True", "ScaleDownStabilized")
    later = hpa_decide(case(pods=low, recommendations=(PastRecommendation(NOW - 400, 3),)), NOW)
    assert later.desired_replicas == 1


def test_scale_down_policy_with_events() -> None:
    behavior = Behavior(scale_down=ScalingRules(0, "Max", (ScalingPolicy("Pods", 1, 60),)))
    low = pods([0.01] * 6)
    first = hpa_decide(case(current_replicas=6, pods=low, behavior=behavior), NOW)
    assert first.desired_replicas == 5
    assert cond(first, "ScalingLimited") == ("True", "ScaleDownLimit")
    blocked = hpa_decide(
        case(current_replicas=5, pods=low[:5], behavior=behavior, scale_events=(ScaleEvent(NOW - 20, -1),)),
        NOW,
    )
    assert blocked.desired_replicas == 5


def test_several_metrics_largest_wins() -> None:
    rps = MetricSpec("Pods", "rps", MetricTarget("AverageValue", average_value=10))
    decision = hpa_decide(case(metrics=(CPU30, rps), pods=pods([0.3, 0.5, 0.7], [30, 30, 30])), NOW)
    assert decision.recommendation == 9  # rps: 30 per pod at 10 each; cpu alone would give 5
    assert decision.desired_replicas == 7  # the default scale-up rate from 3
    assert "pods metric rps" in [c for c in decision.conditions if c.type == "ScalingActive"][0].message


def test_invalid_metric_skipped_when_others_scale_up() -> None:
    memory = MetricSpec("Resource", "memory", MetricTarget("Utilization", average_utilization=50))
    decision = hpa_decide(case(metrics=(memory, CPU30)), NOW)  # no memory requests
    assert decision.desired_replicas == 5
    assert cond(decision, "ScalingActive") == ("True", "ValidMetricFound")


def test_invalid_metric_blocks_scale_down() -> None:
    memory = MetricSpec("Resource", "memory", MetricTarget("Utilization", average_utilization=50))
    decision = hpa_decide(case(metrics=(memory, CPU30), pods=pods([0.01, 0.01, 0.01])), NOW)
    assert decision.desired_replicas == 3
    assert decision.recommendation is None
    assert cond(decision, "ScalingActive") == ("False", "FailedGetResourceMetric")


def test_all_metrics_invalid() -> None:
    no_requests = tuple(PodState(f"p{i}", usage={"cpu": 0.5}) for i in range(3))
    decision = hpa_decide(case(pods=no_requests), NOW)
    assert decision.desired_replicas == 3
    status, reason = cond(decision, "ScalingActive")
    assert (status, reason) == ("False", "FailedGetResourceMetric")
    assert "missing request for cpu" in decision.reason


def test_unsupported_source_type() -> None:
    decision = hpa_decide(
        case(metrics=(MetricSpec("External", "queue", MetricTarget("Value", average_value=1)),)), NOW
    )
    assert cond(decision, "ScalingActive") == ("False", "InvalidMetricSourceType")


def test_current_outside_bounds() -> None:
    above = hpa_decide(case(current_replicas=12, pods=pods([0.3] * 12)), NOW)
    assert above.desired_replicas == 10
    assert cond(above, "ScalingLimited") == ("True", "TooManyReplicas")
    below = hpa_decide(case(current_replicas=1, min_replicas=2, pods=pods([0.01])), NOW)
    assert below.desired_replicas == 2
    assert cond(below, "ScalingLimited") == ("True", "TooFewReplicas")


def test_zero_replicas_disables_scaling() -> None:
    decision = hpa_decide(case(current_replicas=0, pods=()), NOW)
    assert decision.desired_replicas == 0
    assert cond(decision, "ScalingActive") == ("False", "ScalingDisabled")


def test_memory_average_value() -> None:
    gib = float(2**30)
    memory = MetricSpec("Resource", "memory", MetricTarget("AverageValue", average_value=gib))
    heavy = tuple(PodState(f"p{i}", usage={"memory": 3 * gib}) for i in range(2))
    assert hpa_decide(case(current_replicas=2, metrics=(memory,), pods=heavy), NOW).desired_replicas == 6
