"""The HPA replica calculator: one metric, the pods and their samples in, a replica proposal out.

Kubernetes semantics (`autoscaling/v2`, pkg/controller/podautoscaler):

- failed pods and pods being deleted are ignored entirely;
- pending pods are unready; for cpu, a pod that is not ready is unready while it is within the
  cpu initialization period, and after it only if it has never been ready;
- pods without a sample are "missing";
- the ratio is computed over ready pods with samples; with no unready/missing pods the
  proposal is `ceil(ratio * ready)` unless `|ratio - 1| <= tolerance`;
- otherwise the ratio is recomputed assuming missing pods use 0 % on a scale-up and 100 % of
  the target (at least 100 % of the request for utilization) on a scale-down, and unready pods
  0 % on a scale-up; if the new ratio is within tolerance or flips direction, nothing changes.

Values are integers in milli-units, as Kubernetes computes them, so percentages truncate the
same way. A proposal that cannot be computed is a value with a reason, not an exception.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

PodPhase = Literal["Pending", "Running", "Succeeded", "Failed", "Unknown"]


@dataclass(frozen=True)
class PodState:
    """One pod of the scale target as the HPA sees it.

    `requests` and `usage` are in base units (cores, bytes, or the metric's own unit) keyed by
    resource or metric name; a name absent from `usage` means the pod has no sample for it.
    `started_at` and `ready_changed_at` are absolute times (seconds); None means unknown.
    """

    name: str
    phase: PodPhase = "Running"
    ready: bool = True
    deleted: bool = False
    started_at: float | None = None
    ready_changed_at: float | None = None
    requests: Mapping[str, float] = field(default_factory=dict)
    usage: Mapping[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class PodGroups:
    ready_count: int
    unready: frozenset[str]
    missing: frozenset[str]
    ignored: frozenset[str]


@dataclass(frozen=True)
class CalculatorSettings:
    tolerance: float = 0.1
    cpu_initialization_period: float = 300.0
    delay_of_initial_readiness_status: float = 30.0


@dataclass(frozen=True)
class Proposal:
    """A replica count from one metric, or None with the reason it could not be computed."""

    replicas: int | None
    ratio: float | None = None
    error: str = ""


def to_milli(value: float) -> int:
    """A base-unit value as integer milli-units (the unit the calculator works in)."""
    return round(value * 1000)


def _cpu_unready(pod: PodState, now: float, settings: CalculatorSettings) -> bool:
    if pod.started_at is None:
        return not pod.ready
    if pod.started_at + settings.cpu_initialization_period > now:
        return not pod.ready
    if pod.ready:
        return False
    if pod.ready_changed_at is None:
        return True
    # not ready, and the last transition came right after start: it has never been ready
    return pod.started_at + settings.delay_of_initial_readiness_status > pod.ready_changed_at


def group_pods(
    pods: Sequence[PodState],
    samples: Mapping[str, int],
    resource: str,
    now: float,
    settings: CalculatorSettings,
) -> PodGroups:
    """Sort pods into ready (counted), unready, missing (no sample) and ignored."""
    ready = 0
    unready: set[str] = set()
    missing: set[str] = set()
    ignored: set[str] = set()
    for pod in pods:
        if pod.deleted or pod.phase == "Failed":
            ignored.add(pod.name)
        elif pod.phase == "Pending":
            unready.add(pod.name)
        elif pod.name not in samples:
            missing.add(pod.name)
        elif resource == "cpu" and _cpu_unready(pod, now, settings):
            unready.add(pod.name)
        else:
            ready += 1
    return PodGroups(ready, frozenset(unready), frozenset(missing), frozenset(ignored))


def utilization_ratio(
    samples: Mapping[str, int], requests: Mapping[str, int], target_utilization: int
) -> tuple[float, int] | None:
    """(usage ratio, utilization percent truncated) over pods with a request; None if none."""
    usage_total = 0
    request_total = 0
    for name, value in samples.items():
        if name in requests:
            usage_total += value
            request_total += requests[name]
    if request_total == 0:
        return None
    utilization = usage_total * 100 // request_total
    return utilization / target_utilization, utilization


def average_ratio(samples: Mapping[str, int], target: int) -> float:
    return sum(samples.values()) / len(samples) / target


def _samples(pods: Sequence[PodState], name: str) -> dict[str, int]:
    return {pod.name: to_milli(pod.usage[name]) for pod in pods if name in pod.usage}


def _settle(
    current: int,
    ratio: float,
    new_ratio: float,
    counted: int,
    tolerance: float,
) -> Proposal:
    if (
        abs(1.0 - new_ratio) <= tolerance
        or (ratio < 1.0 and new_ratio > 1.0)
        or (ratio > 1.0 and new_ratio < 1.0)
    ):
        return Proposal(current, new_ratio)
    replicas = math.ceil(new_ratio * counted)
    if (new_ratio < 1.0 and replicas > current) or (new_ratio > 1.0 and replicas < current):
        return Proposal(current, new_ratio)
    return Proposal(replicas, new_ratio)


def utilization_replicas(
    pods: Sequence[PodState],
    resource: str,
    target_utilization: int,
    current: int,
    now: float,
    settings: CalculatorSettings = CalculatorSettings(),
) -> Proposal:
    """Replicas for a Resource metric with a target average utilization (percent of request)."""
    if target_utilization <= 0:
        return Proposal(None, error=f"target averageUtilization for {resource} must be positive")
    samples = _samples(pods, resource)
    groups = group_pods(pods, samples, resource, now, settings)
    requests: dict[str, int] = {}
    for pod in pods:
        if pod.name in groups.ignored:
            continue
        if resource not in pod.requests:
            return Proposal(None, error=f"missing request for {resource} in pod {pod.name}")
        requests[pod.name] = to_milli(pod.requests[resource])
    for name in groups.ignored | groups.unready:
        samples.pop(name, None)
    if not samples:
        return Proposal(None, error="did not receive metrics for targeted pods (pods might be unready)")
    first = utilization_ratio(samples, requests, target_utilization)
    if first is None:
        return Proposal(None, error=f"no {resource} requests matched the pods with metrics")
    ratio = first[0]
    scale_up_with_unready = bool(groups.unready) and ratio > 1.0
    if not scale_up_with_unready and not groups.missing:
        if abs(1.0 - ratio) <= settings.tolerance:
            return Proposal(current, ratio)
        return Proposal(math.ceil(ratio * groups.ready_count), ratio)
    if groups.missing:
        if ratio < 1.0:
            fallback = max(100, target_utilization)
            for name in groups.missing:
                samples[name] = requests[name] * fallback // 100
        elif ratio > 1.0:
            for name in groups.missing:
                samples[name] = 0
    if scale_up_with_unready:
        for name in groups.unready:
            if name in requests:
                samples[name] = 0
    second = utilization_ratio(samples, requests, target_utilization)
    assert second is not None  # the first pass found requests, and we only added pods
    return _settle(current, ratio, second[0], len(samples), settings.tolerance)


def average_value_replicas(
    pods: Sequence[PodState],
    name: str,
    target_milli: int,
    current: int,
    now: float,
    settings: CalculatorSettings = CalculatorSettings(),
    resource: str = "",
) -> Proposal:
    """Replicas for a target average value per pod (Resource AverageValue or a Pods metric).

    `resource` is the resource name for Resource metrics ("cpu" applies the cpu readiness
    rules) and "" for Pods metrics.
    """
    if target_milli <= 0:
        return Proposal(None, error=f"target averageValue for {name} must be positive")
    samples = _samples(pods, name)
    groups = group_pods(pods, samples, resource, now, settings)
    for pod_name in groups.ignored | groups.unready:
        samples.pop(pod_name, None)
    if not samples:
        return Proposal(None, error="did not receive metrics for targeted pods (pods might be unready)")
    ratio = average_ratio(samples, target_milli)
    scale_up_with_unready = bool(groups.unready) and ratio > 1.0
    if not scale_up_with_unready and not groups.missing:
        if abs(1.0 - ratio) <= settings.tolerance:
            return Proposal(current, ratio)
        return Proposal(math.ceil(ratio * groups.ready_count), ratio)
    if groups.missing:
        fill = target_milli if ratio < 1.0 else 0
        for pod_name in groups.missing:
            samples[pod_name] = fill
    if scale_up_with_unready:
        for pod_name in groups.unready:
            samples[pod_name] = 0
    return _settle(current, ratio, average_ratio(samples, target_milli), len(samples), settings.tolerance)
