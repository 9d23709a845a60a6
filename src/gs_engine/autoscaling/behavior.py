"""HPA `behavior`: stabilization windows and scaling-rate policies (autoscaling/v2 semantics).

Every step is a free function over plain data with `now` passed in. Each clamp returns the
replica count together with the reason Kubernetes reports for it, so the caller can turn it
into a status condition.

Times are absolute seconds on the caller's clock; a past recommendation or scale event counts
inside a window of W seconds when `now - timestamp < W` (strictly newer than the cutoff).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

PolicyType = Literal["Pods", "Percent"]
SelectPolicy = Literal["Max", "Min", "Disabled"]

SCALE_UP_STABILIZED = "ScaleUpStabilized"
SCALE_DOWN_STABILIZED = "ScaleDownStabilized"
READY_FOR_NEW_SCALE = "ReadyForNewScale"


@dataclass(frozen=True)
class ScalingPolicy:
    """At most `value` pods (or percent of the replicas at the period start) per `period_seconds`."""

    type: PolicyType
    value: int
    period_seconds: int


@dataclass(frozen=True)
class ScalingRules:
    stabilization_window_seconds: int
    select_policy: SelectPolicy
    policies: tuple[ScalingPolicy, ...]


DEFAULT_SCALE_UP = ScalingRules(
    stabilization_window_seconds=0,
    select_policy="Max",
    policies=(ScalingPolicy("Pods", 4, 15), ScalingPolicy("Percent", 100, 15)),
)
DEFAULT_SCALE_DOWN = ScalingRules(
    stabilization_window_seconds=300,
    select_policy="Max",
    policies=(ScalingPolicy("Percent", 100, 15),),
)


@dataclass(frozen=True)
class Behavior:
    scale_up: ScalingRules = field(default=DEFAULT_SCALE_UP)
    scale_down: ScalingRules = field(default=DEFAULT_SCALE_DOWN)


@dataclass(frozen=True)
class PastRecommendation:
    """A raw (unstabilized) replica recommendation made at `timestamp`."""

    timestamp: float
    replicas: int


@dataclass(frozen=True)
class ScaleEvent:
    """A scale the controller applied at `timestamp`: `change` > 0 added pods, < 0 removed them."""

    timestamp: float
    change: int


@dataclass(frozen=True)
class Limited:
    """A replica count after one step, with the reason and message for its status condition."""

    replicas: int
    reason: str
    message: str


def stabilize(
    desired: int,
    current: int,
    recommendations: Sequence[PastRecommendation],
    behavior: Behavior,
    now: float,
) -> Limited:
    """Hold the recommendation inside the band set by the recommendations in each window.

    Scale-up uses the lowest recommendation within the scale-up window, scale-down the highest
    within the scale-down window; the current recommendation is part of both.
    """
    up_window = behavior.scale_up.stabilization_window_seconds
    down_window = behavior.scale_down.stabilization_window_seconds
    up_floor = desired
    down_ceiling = desired
    for rec in recommendations:
        age = now - rec.timestamp
        if age < up_window:
            up_floor = min(up_floor, rec.replicas)
        if age < down_window:
            down_ceiling = max(down_ceiling, rec.replicas)
    stabilized = min(max(current, up_floor), down_ceiling)
    if stabilized == desired:
        return Limited(stabilized, READY_FOR_NEW_SCALE, "recommended size matches current size")
    if desired >= current:
        return Limited(
            stabilized,
            SCALE_UP_STABILIZED,
            "recent recommendations were lower than current one, applying the lowest recent recommendation",
        )
    return Limited(
        stabilized,
        SCALE_DOWN_STABILIZED,
        "recent recommendations were higher than current one, applying the highest recent recommendation",
    )


def replicas_changed_in_period(
    events: Sequence[ScaleEvent], period_seconds: float, now: float, direction: Literal["up", "down"]
) -> int:
    """Pods added (direction "up") or removed ("down") by events younger than the period."""
    total = 0
    for event in events:
        if now - event.timestamp >= period_seconds:
            continue
        if direction == "up" and event.change > 0:
            total += event.change
        elif direction == "down" and event.change < 0:
            total -= event.change
    return total


def period_start_replicas(
    current: int, events: Sequence[ScaleEvent], period_seconds: float, now: float
) -> int:
    """The replica count at the start of the policy period, undoing the events inside it."""
    added = replicas_changed_in_period(events, period_seconds, now, "up")
    removed = replicas_changed_in_period(events, period_seconds, now, "down")
    return current - added + removed


def scale_up_limit(current: int, events: Sequence[ScaleEvent], rules: ScalingRules, now: float) -> int:
    """The most replicas the scale-up policies allow now (before the max-replicas clamp)."""
    if rules.select_policy == "Disabled" or not rules.policies:
        return current
    proposals: list[int] = []
    for policy in rules.policies:
        start = period_start_replicas(current, events, policy.period_seconds, now)
        if policy.type == "Pods":
            proposals.append(start + policy.value)
        else:
            # rounded up so that a small percentage still adds a pod
            proposals.append(math.ceil(start * (1 + policy.value / 100)))
    return min(proposals) if rules.select_policy == "Min" else max(proposals)


def scale_down_limit(current: int, events: Sequence[ScaleEvent], rules: ScalingRules, now: float) -> int:
    """The fewest replicas the scale-down policies allow now (before the min-replicas clamp)."""
    if rules.select_policy == "Disabled" or not rules.policies:
        return current
    proposals: list[int] = []
    for policy in rules.policies:
        start = period_start_replicas(current, events, policy.period_seconds, now)
        if policy.type == "Pods":
            proposals.append(start - policy.value)
        else:
            proposals.append(math.floor(start * (1 - policy.value / 100)))
    # "Min" selects the smallest change, which for a scale-down is the largest count
    return max(proposals) if rules.select_policy == "Min" else min(proposals)


def limit_rate(
    desired: int,
    current: int,
    min_replicas: int,
    max_replicas: int,
    events: Sequence[ScaleEvent],
    behavior: Behavior,
    now: float,
) -> Limited:
    """Clamp a stabilized recommendation by the rate policies and by min/max replicas."""
    if desired > current:
        up_limit = max(scale_up_limit(current, events, behavior.scale_up, now), current)
        if max_replicas > up_limit:
            allowed, reason = up_limit, "ScaleUpLimit"
            message = "the desired replica count is increasing faster than the maximum scale rate"
        else:
            allowed, reason = max_replicas, "TooManyReplicas"
            message = "the desired replica count is more than the maximum replica count"
        if desired > allowed:
            return Limited(allowed, reason, message)
    elif desired < current:
        down_limit = min(scale_down_limit(current, events, behavior.scale_down, now), current)
        if min_replicas < down_limit:
            allowed, reason = down_limit, "ScaleDownLimit"
            message = "the desired replica count is decreasing faster than the maximum scale rate"
        else:
            allowed, reason = min_replicas, "TooFewReplicas"
            message = "the desired replica count is less than the minimum replica count"
        if desired < allowed:
            return Limited(allowed, reason, message)
    return Limited(desired, "DesiredWithinRange", "the desired count is within the acceptable range")
