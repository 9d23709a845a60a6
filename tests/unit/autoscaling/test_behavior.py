"""HPA behavior: stabilization windows and rate policies, each step alone."""

from __future__ import annotations

from gs_engine.autoscaling.behavior import (
    DEFAULT_SCALE_DOWN,
    DEFAULT_SCALE_UP,
    Behavior,
    PastRecommendation,
    ScaleEvent,
    ScalingPolicy,
    ScalingRules,
    limit_rate,
    period_start_replicas,
    scale_down_limit,
    scale_up_limit,
    stabilize,
)

NOW = 10_000.0


def rec(age: float, replicas: int) -> PastRecommendation:
    return PastRecommendation(NOW - age, replicas)


def test_defaults_match_kubernetes() -> None:
    assert DEFAULT_SCALE_UP.stabilization_window_seconds == 0
    assert DEFAULT_SCALE_DOWN.stabilization_window_seconds == 300
    assert set(DEFAULT_SCALE_UP.policies) == {ScalingPolicy("Pods", 4, 15), ScalingPolicy("Percent", 100, 15)}
    assert DEFAULT_SCALE_DOWN.policies == (ScalingPolicy("Percent", 100, 15),)


def test_scale_down_uses_highest_recommendation_in_window() -> None:
    result = stabilize(3, 5, [rec(60, 5), rec(120, 4)], Behavior(), NOW)
    assert result.replicas == 5
    assert result.reason == "ScaleDownStabilized"


def test_scale_down_window_excludes_older_recommendations() -> None:
    result = stabilize(3, 5, [rec(300, 5), rec(400, 6)], Behavior(), NOW)
    assert result.replicas == 3
    assert result.reason == "ReadyForNewScale"


def test_scale_down_partially_stabilized() -> None:
    assert stabilize(2, 6, [rec(30, 4), rec(500, 6)], Behavior(), NOW).replicas == 4


def test_scale_up_uses_lowest_recommendation_in_window() -> None:
    behavior = Behavior(scale_up=ScalingRules(300, "Max", DEFAULT_SCALE_UP.policies))
    result = stabilize(7, 1, [rec(60, 4), rec(120, 5)], behavior, NOW)
    assert result.replicas == 4
    assert result.reason == "ScaleUpStabilized"


def test_default_scale_up_is_not_stabilized() -> None:
    assert stabilize(7, 1, [rec(1, 2)], Behavior(), NOW).replicas == 7


def test_period_start_undoes_recent_events_only() -> None:
    events = [ScaleEvent(NOW - 5, 3), ScaleEvent(NOW - 10, -1), ScaleEvent(NOW - 60, 10)]
    assert period_start_replicas(10, events, 15, NOW) == 10 - 3 + 1
    assert period_start_replicas(10, events, 120, NOW) == 10 - 13 + 1


def test_default_scale_up_limit_is_max_of_four_pods_and_double() -> None:
    assert scale_up_limit(1, [], DEFAULT_SCALE_UP, NOW) == 5
    assert scale_up_limit(3, [], DEFAULT_SCALE_UP, NOW) == 7
    assert scale_up_limit(10, [], DEFAULT_SCALE_UP, NOW) == 20


def test_scale_up_limit_min_select_policy() -> None:
    rules = ScalingRules(0, "Min", DEFAULT_SCALE_UP.policies)
    assert scale_up_limit(10, [], rules, NOW) == 14
    assert scale_up_limit(1, [], rules, NOW) == 2


def test_scale_up_limit_counts_events_in_period() -> None:
    rules = ScalingRules(0, "Max", (ScalingPolicy("Pods", 2, 60),))
    # 2 pods were already added 30 s ago: the period started at 3, so at most 5
    assert scale_up_limit(5, [ScaleEvent(NOW - 30, 2)], rules, NOW) == 5
    assert scale_up_limit(5, [ScaleEvent(NOW - 90, 2)], rules, NOW) == 7


def test_percent_scale_up_rounds_up() -> None:
    rules = ScalingRules(0, "Max", (ScalingPolicy("Percent", 10, 60),))
    assert scale_up_limit(3, [], rules, NOW) == 4


def test_scale_down_limits() -> None:
    rules = ScalingRules(300, "Max", (ScalingPolicy("Percent", 50, 60), ScalingPolicy("Pods", 1, 60)))
    assert scale_down_limit(10, [], rules, NOW) == 5  # Max: the biggest change
    assert scale_down_limit(10, [], ScalingRules(300, "Min", rules.policies), NOW) == 9
    assert scale_down_limit(10, [ScaleEvent(NOW - 10, -4)], rules, NOW) == 7


def test_disabled_policy_holds_current() -> None:
    rules = ScalingRules(0, "Disabled", ())
    assert scale_up_limit(4, [], rules, NOW) == 4
    assert scale_down_limit(4, [], rules, NOW) == 4


def test_limit_rate_reasons() -> None:
    behavior = Behavior()
    up = limit_rate(30, 3, 1, 100, [], behavior, NOW)
    assert (up.replicas, up.reason) == (7, "ScaleUpLimit")
    too_many = limit_rate(30, 3, 1, 5, [], behavior, NOW)
    assert (too_many.replicas, too_many.reason) == (5, "TooManyReplicas")
    too_few = limit_rate(0, 3, 2, 10, [], behavior, NOW)
    assert (too_few.replicas, too_few.reason) == (2, "TooFewReplicas")
    slow = Behavior(scale_down=ScalingRules(0, "Max", (ScalingPolicy("Pods", 1, 60),)))
    down = limit_rate(1, 5, 1, 10, [], slow, NOW)
    assert (down.replicas, down.reason) == (4, "ScaleDownLimit")
    within = limit_rate(4, 3, 1, 10, [], behavior, NOW)
    assert (within.replicas, within.reason) == (4, "DesiredWithinRange")


def test_scale_up_blocked_until_events_age_out() -> None:
    rules = ScalingRules(0, "Max", (ScalingPolicy("Pods", 1, 60),))
    behavior = Behavior(scale_up=rules)
    events = [ScaleEvent(NOW - 10, 3)]
    assert limit_rate(8, 6, 1, 10, events, behavior, NOW).replicas == 6
    assert limit_rate(8, 6, 1, 10, events, behavior, NOW + 60).replicas == 7
