"""The horizontal autoscaler decision (Kubernetes `autoscaling/v2` semantics), as one pure function.

    hpa_decide(case, now)
      ├─ bounds first: replicas 0 with minReplicas > 0 (disabled), above max, below min
      ├─ one proposal per metric (replicas.py); the largest wins; a failing metric is skipped
      │  unless all fail, or unless skipping it would let the others scale down
      ├─ stabilize (behavior.py): windows over past recommendations
      └─ limit_rate (behavior.py): policies over past scale events, then min/max

Every step leaves its reason in a condition, as Kubernetes reports them in HPA status. The
caller owns the history: after acting, it records `PastRecommendation(now,
decision.recommendation)` and, if the scale changed, a `ScaleEvent`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

from gs_engine.autoscaling.behavior import (
    Behavior,
    Limited,
    PastRecommendation,
    ScaleEvent,
    limit_rate,
    stabilize,
)
from gs_engine.autoscaling.replicas import (
    CalculatorSettings,
    PodState,
    Proposal,
    average_value_replicas,
    to_milli,
    utilization_replicas,
)

ConditionStatus = Literal["True", "False", "Unknown"]
TargetType = Literal["Utilization", "AverageValue", "Value"]


@dataclass(frozen=True)
class Condition:
    type: str
    status: ConditionStatus
    reason: str
    message: str

    def as_dict(self) -> dict[str, str]:
        return {"type": self.type, "status": self.status, "reason": self.reason, "message": self.message}


@dataclass(frozen=True)
class MetricTarget:
    """`average_utilization` (percent) for Utilization, `average_value` (base units) otherwise."""

    type: TargetType
    average_utilization: int | None = None
    average_value: float | None = None


@dataclass(frozen=True)
class MetricSpec:
    """One autoscaling/v2 metric: `type` "Resource" (name cpu/memory) or "Pods" (a metric name)."""

    type: str
    name: str
    target: MetricTarget


@dataclass(frozen=True)
class HpaInput:
    current_replicas: int
    min_replicas: int
    max_replicas: int
    metrics: tuple[MetricSpec, ...]
    pods: tuple[PodState, ...] = ()
    behavior: Behavior = field(default_factory=Behavior)
    recommendations: tuple[PastRecommendation, ...] = ()
    scale_events: tuple[ScaleEvent, ...] = ()
    settings: CalculatorSettings = field(default_factory=CalculatorSettings)


@dataclass(frozen=True)
class HpaDecision:
    """`recommendation` is the raw metric proposal (None when metrics failed), before behavior."""

    desired_replicas: int
    conditions: tuple[Condition, ...]
    recommendation: int | None
    reason: str


@dataclass(frozen=True)
class MetricProposal:
    """One metric's outcome: replicas, or None with the ScalingActive reason for the failure."""

    metric: MetricSpec
    replicas: int | None
    reason: str
    message: str


def describe_metric(metric: MetricSpec) -> str:
    if metric.type == "Resource":
        if metric.target.type == "Utilization":
            return f"{metric.name} resource utilization (percentage of request)"
        return f"{metric.name} resource"
    if metric.type == "Pods":
        return f"pods metric {metric.name}"
    return f"{metric.type} metric {metric.name}"


def _failure(metric: MetricSpec, reason: str, what: str, error: str) -> MetricProposal:
    return MetricProposal(
        metric,
        None,
        reason,
        f"the HPA was unable to compute the replica count: failed to get {what}: {error}",
    )


def propose_for_metric(
    metric: MetricSpec, pods: Sequence[PodState], current: int, now: float, settings: CalculatorSettings
) -> MetricProposal:
    """The replica proposal of a single metric."""
    target = metric.target
    proposal: Proposal
    if metric.type == "Resource":
        reason, what = "FailedGetResourceMetric", f"{metric.name} resource metric"
        if target.type == "Utilization" and target.average_utilization is not None:
            what = f"{metric.name} utilization"
            proposal = utilization_replicas(
                pods, metric.name, target.average_utilization, current, now, settings
            )
        elif target.type == "AverageValue" and target.average_value is not None:
            proposal = average_value_replicas(
                pods, metric.name, to_milli(target.average_value), current, now, settings, metric.name
            )
        else:
            return _failure(metric, reason, what, f"target type {target.type} is not valid for Resource")
    elif metric.type == "Pods":
        reason, what = "FailedGetPodsMetric", f"pods metric {metric.name}"
        if target.type != "AverageValue" or target.average_value is None:
            return _failure(metric, reason, what, "Pods metrics need target type AverageValue")
        proposal = average_value_replicas(
            pods, metric.name, to_milli(target.average_value), current, now, settings
        )
    else:
        return MetricProposal(
            metric,
            None,
            "InvalidMetricSourceType",
            "the HPA was unable to compute the replica count: "
            f"the simulator has no data for metric source type {metric.type!r}",
        )
    if proposal.replicas is None:
        return _failure(metric, reason, what, proposal.error)
    return MetricProposal(
        metric,
        proposal.replicas,
        "ValidMetricFound",
        f"the HPA was able to successfully calculate a replica count from {describe_metric(metric)}",
    )


def combine_proposals(proposals: Sequence[MetricProposal], current: int) -> MetricProposal | None:
    """The winning proposal (largest), or the first failure when the metrics cannot decide.

    None when there are no metrics at all.
    """
    best: MetricProposal | None = None
    failures = [p for p in proposals if p.replicas is None]
    for proposal in proposals:
        if proposal.replicas is not None and (best is None or proposal.replicas > (best.replicas or 0)):
            best = proposal
    if not proposals:
        return None
    if best is None or (failures and (best.replicas or 0) < current):
        return failures[0]
    return best


def _condition(type_: str, status: ConditionStatus, reason: str, message: str) -> Condition:
    return Condition(type_, status, reason, message)


def _bounds_decision(case: HpaInput) -> HpaDecision | None:
    current = case.current_replicas
    ready = _condition("AbleToScale", "True", "ReadyForNewScale", "recommended size matches current size")
    if current == 0 and case.min_replicas != 0:
        message = "scaling is disabled since the replica count of the target is zero"
        return HpaDecision(
            0, (ready, _condition("ScalingActive", "False", "ScalingDisabled", message)), None, message
        )
    if current > case.max_replicas:
        message = "Current number of replicas above Spec.MaxReplicas"
        limited = _condition("ScalingLimited", "True", "TooManyReplicas", message)
        return HpaDecision(case.max_replicas, (ready, limited), None, message)
    if current < case.min_replicas:
        message = "Current number of replicas below Spec.MinReplicas"
        limited = _condition("ScalingLimited", "True", "TooFewReplicas", message)
        return HpaDecision(case.min_replicas, (ready, limited), None, message)
    return None


def hpa_decide(case: HpaInput, now: float) -> HpaDecision:
    """How many replicas the target should have now, with the status conditions explaining it."""
    bounded = _bounds_decision(case)
    if bounded is not None:
        return bounded
    current = case.current_replicas
    proposals = [
        propose_for_metric(metric, case.pods, current, now, case.settings) for metric in case.metrics
    ]
    chosen = combine_proposals(proposals, current)
    got_scale = _condition(
        "AbleToScale",
        "True",
        "SucceededGetScale",
        "the HPA controller was able to get the target's current scale",
    )
    if chosen is None:
        message = "the HPA was unable to compute the replica count: no metrics are specified"
        return HpaDecision(
            current,
            (got_scale, _condition("ScalingActive", "False", "InvalidMetricSourceType", message)),
            None,
            message,
        )
    if chosen.replicas is None:
        return HpaDecision(
            current,
            (got_scale, _condition("ScalingActive", "False", chosen.reason, chosen.message)),
            None,
            chosen.message,
        )
    active = _condition("ScalingActive", "True", "ValidMetricFound", chosen.message)
    stabilized: Limited = stabilize(chosen.replicas, current, case.recommendations, case.behavior, now)
    able = _condition("AbleToScale", "True", stabilized.reason, stabilized.message)
    limited = limit_rate(
        stabilized.replicas,
        current,
        case.min_replicas,
        case.max_replicas,
        case.scale_events,
        case.behavior,
        now,
    )
    limited_status: ConditionStatus = "False" if limited.replicas == stabilized.replicas else "True"
    limit = _condition("ScalingLimited", limited_status, limited.reason, limited.message)
    if limited.replicas != stabilized.replicas:
        reason = limited.message
    elif stabilized.replicas != chosen.replicas:
        reason = stabilized.message
    else:
        reason = f"{chosen.replicas} replicas from {describe_metric(chosen.metric)}"
    return HpaDecision(limited.replicas, (able, active, limit), chosen.replicas, reason)
