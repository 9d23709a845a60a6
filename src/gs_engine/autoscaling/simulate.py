"""Answer a JSON autoscaling case (camelCase, policy hpa / kpa / vpa) with the decision it gets.

    simulate({"policy": "hpa", ...}) -> {"desiredReplicas": N, "conditions": [...]}
    simulate({"policy": "kpa", ...}) -> {"steps": [{"atSeconds", "desiredPods", "panic",
                                                    "excessBurstCapacity"}, ...]}
    simulate({"policy": "vpa", ...}) -> {"containers": {name: {"target", "lowerBound",
                                                               "upperBound"}}}

Times in a case are relative: HPA and VPA give ages (`ageSeconds`, seconds before now), KPA
gives `atSeconds` on its own timeline. A KPA step without data (raw samples with none in the
window) answers `desiredPods: null, excessBurstCapacity: null` plus `valid: false` and `reason`.

A malformed case raises InvalidInput listing every wrong field (path, message, fix).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, cast, get_args

from gs_engine.autoscaling._fields import Fields
from gs_engine.autoscaling.behavior import (
    DEFAULT_SCALE_DOWN,
    DEFAULT_SCALE_UP,
    Behavior,
    PastRecommendation,
    PolicyType,
    ScaleEvent,
    ScalingPolicy,
    ScalingRules,
    SelectPolicy,
)
from gs_engine.autoscaling.hpa import HpaInput, MetricSpec, MetricTarget, hpa_decide
from gs_engine.autoscaling.kpa import KpaConfig, KpaDecider, Sample, window_average
from gs_engine.autoscaling.replicas import CalculatorSettings, PodPhase, PodState
from gs_engine.autoscaling.vpa import (
    ContainerUsage,
    CpuSample,
    MemoryPeak,
    Resources,
    VpaConfig,
    recommend,
)
from gs_engine.errors import InvalidInput

POLICIES = ("hpa", "kpa", "vpa")
METRIC_TYPES = ("Resource", "Pods", "ContainerResource", "Object", "External")
_NOW = 0.0  # HPA and VPA cases are written relative to "now"


def simulate(case: Mapping[str, Any]) -> dict[str, Any]:
    """The decision for one case document; raises InvalidInput when the case is malformed."""
    if not isinstance(case, Mapping):
        raise InvalidInput(
            "an autoscaling case must be a JSON object",
            fix='write {"policy": "hpa" | "kpa" | "vpa", ...}',
        )
    fields = Fields()
    policy = fields.choice(case, "policy", "policy", POLICIES, "")
    if fields.problems:
        raise InvalidInput("the autoscaling case is not valid", problems=fields.problems)
    if policy == "hpa":
        return _simulate_hpa(case, fields)
    if policy == "kpa":
        return _simulate_kpa(case, fields)
    return _simulate_vpa(case, fields)


def _raise_if_bad(fields: Fields, policy: str) -> None:
    if fields.problems:
        raise InvalidInput(f"the {policy} case is not valid", problems=fields.problems)


def _unknown_keys(fields: Fields, doc: Mapping[str, Any], known: set[str], path: str) -> None:
    for key in doc:
        if key not in known:
            fields.bad(f"{path}.{key}", "is not a known setting", f"use one of {', '.join(sorted(known))}")


# ---------------------------------------------------------------- HPA


def _metric_target(fields: Fields, doc: Mapping[str, Any], path: str, kind: str) -> MetricTarget:
    target = fields.mapping(doc, "target", f"{path}.target", required=True)
    allowed: tuple[str, ...] = ("Utilization", "AverageValue") if kind == "Resource" else ("AverageValue",)
    type_ = fields.choice(target, "type", f"{path}.target.type", allowed, allowed[0])
    if type_ == "Utilization":
        value = fields.integer(target, "averageUtilization", f"{path}.target.averageUtilization", minimum=1)
        return MetricTarget("Utilization", average_utilization=value)
    key = "averageValue" if type_ == "AverageValue" else "value"
    raw = target.get(key)
    amount: float | None = None
    if raw is None:
        fields.bad(f"{path}.target.{key}", "is required", 'write a quantity such as "500m" or "10"')
    else:
        amount = fields.quantity(raw, f"{path}.target.{key}")
        if amount is not None and amount <= 0:
            fields.bad(f"{path}.target.{key}", "must be greater than 0", "use a positive quantity")
    return MetricTarget(cast(Any, type_), average_value=amount)


def _metric(fields: Fields, doc: Mapping[str, Any], path: str) -> MetricSpec | None:
    before = len(fields.problems)
    kind = fields.choice(doc, "type", f"{path}.type", METRIC_TYPES, "Resource")
    if len(fields.problems) > before:
        return None
    if kind == "Resource":
        source = fields.mapping(doc, "resource", f"{path}.resource", required=True)
        name = fields.text(source, "name", f"{path}.resource.name")
        if name and name not in ("cpu", "memory"):
            fields.bad(f"{path}.resource.name", f"must be cpu or memory, got {name!r}", "use cpu or memory")
        return MetricSpec("Resource", name, _metric_target(fields, source, f"{path}.resource", "Resource"))
    if kind == "Pods":
        source = fields.mapping(doc, "pods", f"{path}.pods", required=True)
        metric = fields.mapping(source, "metric", f"{path}.pods.metric", required=True)
        name = fields.text(metric, "name", f"{path}.pods.metric.name")
        return MetricSpec("Pods", name, _metric_target(fields, source, f"{path}.pods", "Pods"))
    # valid autoscaling/v2 sources the simulator has no data for: the decision reports them
    return MetricSpec(kind, kind.lower(), MetricTarget("Value"))


def _rules(
    fields: Fields, doc: Mapping[str, Any], key: str, path: str, default: ScalingRules
) -> ScalingRules:
    if doc.get(key) is None:
        return default
    rules = fields.mapping(doc, key, path)
    window = fields.integer(
        rules, "stabilizationWindowSeconds", f"{path}.stabilizationWindowSeconds",
        default=default.stabilization_window_seconds, minimum=0,
    )  # fmt: skip
    if window > 3600:
        fields.bad(f"{path}.stabilizationWindowSeconds", "must be at most 3600", "use 0..3600 seconds")
    select = fields.choice(rules, "selectPolicy", f"{path}.selectPolicy", get_args(SelectPolicy), "Max")
    policies: list[ScalingPolicy] = []
    if rules.get("policies") is None:
        policies = list(default.policies)
    for index, entry in enumerate(fields.items(rules, "policies", f"{path}.policies")):
        where = f"{path}.policies[{index}]"
        type_ = fields.choice(entry, "type", f"{where}.type", get_args(PolicyType), "Pods")
        value = fields.integer(entry, "value", f"{where}.value", minimum=1)
        period = fields.integer(entry, "periodSeconds", f"{where}.periodSeconds", minimum=1)
        if period > 1800:
            fields.bad(f"{where}.periodSeconds", "must be at most 1800", "use 1..1800 seconds")
        policies.append(ScalingPolicy(cast(PolicyType, type_), value, period))
    if not policies and select != "Disabled":
        fields.bad(
            f"{path}.policies", "must list at least one policy", "add e.g. {type: Percent, value: 100}"
        )
    return ScalingRules(window, cast(SelectPolicy, select), tuple(policies))


def _pod(fields: Fields, doc: Mapping[str, Any], path: str) -> PodState:
    phases = get_args(PodPhase)
    started = doc.get("startedSecondsAgo")
    ready_changed = doc.get("readyChangedSecondsAgo")
    started_at = None
    ready_changed_at = None
    if started is not None:
        started_at = _NOW - fields.number(doc, "startedSecondsAgo", f"{path}.startedSecondsAgo", minimum=0)
    if ready_changed is not None:
        ready_changed_at = _NOW - fields.number(
            doc, "readyChangedSecondsAgo", f"{path}.readyChangedSecondsAgo", minimum=0
        )
    return PodState(
        name=fields.text(doc, "name", f"{path}.name"),
        phase=cast(PodPhase, fields.choice(doc, "phase", f"{path}.phase", phases, "Running")),
        ready=fields.boolean(doc, "ready", f"{path}.ready", True),
        deleted=fields.boolean(doc, "deleted", f"{path}.deleted", False),
        started_at=started_at,
        ready_changed_at=ready_changed_at,
        requests=fields.quantities(doc, "requests", f"{path}.requests"),
        usage=fields.quantities(doc, "usage", f"{path}.usage"),
    )


def parse_hpa_case(case: Mapping[str, Any]) -> HpaInput:
    """The HpaInput a case describes (now = 0, ages become negative timestamps)."""
    fields = Fields()
    result = _parse_hpa(case, fields)
    _raise_if_bad(fields, "hpa")
    return result


def _parse_hpa(case: Mapping[str, Any], fields: Fields) -> HpaInput:
    current = fields.integer(case, "currentReplicas", "currentReplicas", minimum=0)
    min_replicas = fields.integer(case, "minReplicas", "minReplicas", default=1, minimum=0)
    max_replicas = fields.integer(case, "maxReplicas", "maxReplicas", minimum=1)
    if max_replicas < min_replicas:
        fields.bad("maxReplicas", f"must be at least minReplicas ({min_replicas})", "raise maxReplicas")
    metrics = [
        m
        for index, doc in enumerate(fields.items(case, "metrics", "metrics"))
        if (m := _metric(fields, doc, f"metrics[{index}]")) is not None
    ]
    if not metrics and not case.get("metrics"):
        # Kubernetes' default when no metric is given: 80 % average cpu utilization
        metrics = [MetricSpec("Resource", "cpu", MetricTarget("Utilization", average_utilization=80))]
    pods = [_pod(fields, doc, f"pods[{i}]") for i, doc in enumerate(fields.items(case, "pods", "pods"))]
    seen: set[str] = set()
    for index, pod in enumerate(pods):
        if pod.name in seen:
            fields.bad(
                f"pods[{index}].name", f"duplicate pod name {pod.name!r}", "give each pod its own name"
            )
        seen.add(pod.name)
    behavior_doc = fields.mapping(case, "behavior", "behavior")
    behavior = Behavior(
        _rules(fields, behavior_doc, "scaleUp", "behavior.scaleUp", DEFAULT_SCALE_UP),
        _rules(fields, behavior_doc, "scaleDown", "behavior.scaleDown", DEFAULT_SCALE_DOWN),
    )
    recommendations = tuple(
        PastRecommendation(
            _NOW - fields.number(doc, "ageSeconds", f"recommendations[{i}].ageSeconds", minimum=0),
            fields.integer(doc, "replicas", f"recommendations[{i}].replicas", minimum=0),
        )
        for i, doc in enumerate(fields.items(case, "recommendations", "recommendations"))
    )
    events = tuple(
        ScaleEvent(
            _NOW - fields.number(doc, "ageSeconds", f"scaleEvents[{i}].ageSeconds", minimum=0),
            fields.integer(doc, "change", f"scaleEvents[{i}].change"),
        )
        for i, doc in enumerate(fields.items(case, "scaleEvents", "scaleEvents"))
    )
    settings = CalculatorSettings(
        tolerance=fields.number(case, "tolerance", "tolerance", default=0.1, minimum=0),
        cpu_initialization_period=fields.number(
            case, "cpuInitializationPeriodSeconds", "cpuInitializationPeriodSeconds", default=300.0, minimum=0
        ),
        delay_of_initial_readiness_status=fields.number(
            case,
            "initialReadinessDelaySeconds",
            "initialReadinessDelaySeconds",
            default=30.0,
            minimum=0,
        ),
    )
    return HpaInput(
        current,
        min_replicas,
        max_replicas,
        tuple(metrics),
        tuple(pods),
        behavior,
        recommendations,
        events,
        settings,
    )


def _simulate_hpa(case: Mapping[str, Any], fields: Fields) -> dict[str, Any]:
    parsed = _parse_hpa(case, fields)
    _raise_if_bad(fields, "hpa")
    decision = hpa_decide(parsed, _NOW)
    return {
        "desiredReplicas": decision.desired_replicas,
        "conditions": [c.as_dict() for c in decision.conditions],
    }


# ---------------------------------------------------------------- KPA

_KPA_KEYS = {
    "target": "target",
    "totalValue": "total_value",
    "panicThreshold": "panic_threshold",
    "maxScaleUpRate": "max_scale_up_rate",
    "maxScaleDownRate": "max_scale_down_rate",
    "stableWindowSeconds": "stable_window_seconds",
    "panicWindowPercentage": "panic_window_percentage",
    "scaleDownDelaySeconds": "scale_down_delay_seconds",
    "targetBurstCapacity": "target_burst_capacity",
}


def _kpa_config(fields: Fields, doc: Mapping[str, Any]) -> KpaConfig:
    _unknown_keys(fields, doc, set(_KPA_KEYS) | {"activationScale", "reachable"}, "config")
    defaults = KpaConfig(target=1.0)
    values: dict[str, Any] = {}
    for key, attr in _KPA_KEYS.items():
        default = None if key == "target" else float(getattr(defaults, attr))
        values[attr] = fields.number(doc, key, f"config.{key}", default=default)
    values["activation_scale"] = fields.integer(doc, "activationScale", "config.activationScale", default=1)
    values["reachable"] = fields.boolean(doc, "reachable", "config.reachable", True)
    config = KpaConfig(**values)
    fields.problems.extend(config.problems())
    return config


def _simulate_kpa(case: Mapping[str, Any], fields: Fields) -> dict[str, Any]:
    if case.get("config") is None:
        fields.bad("config", "is required", 'add {"target": 10} (the per-pod target)')
        config = KpaConfig(target=1.0)
    else:
        config = _kpa_config(fields, fields.mapping(case, "config", "config"))
    samples = [
        Sample(
            fields.number(doc, "atSeconds", f"samples[{i}].atSeconds"),
            fields.number(doc, "value", f"samples[{i}].value", minimum=0),
        )
        for i, doc in enumerate(fields.items(case, "samples", "samples"))
    ]
    have_samples = case.get("samples") is not None
    steps = fields.items(case, "steps", "steps", required=True)
    if case.get("steps") is not None and not steps and not fields.problems:
        fields.bad("steps", "must list at least one step", 'add {"atSeconds": 0, "readyPods": 1, ...}')
    parsed: list[tuple[Any, float, int, float | None, float | None]] = []
    last = -math.inf
    for i, doc in enumerate(steps):
        at = fields.number(doc, "atSeconds", f"steps[{i}].atSeconds")
        if at < last:
            fields.bad(f"steps[{i}].atSeconds", "steps must be in time order", "sort the steps by atSeconds")
        last = at
        ready = fields.integer(doc, "readyPods", f"steps[{i}].readyPods", minimum=0)
        stable = panic = None
        if doc.get("stableValue") is not None or not have_samples:
            stable = fields.number(doc, "stableValue", f"steps[{i}].stableValue", minimum=0)
            panic = fields.number(doc, "panicValue", f"steps[{i}].panicValue", default=stable, minimum=0)
        parsed.append((doc.get("atSeconds"), at, ready, stable, panic))
    _raise_if_bad(fields, "kpa")
    decider = KpaDecider(config)
    out: list[dict[str, Any]] = []
    for raw_at, at, ready, stable, panic in parsed:
        if stable is None:
            stable = window_average(samples, at, config.stable_window_seconds)
            panic = window_average(samples, at, config.panic_window_seconds)
        result = decider.scale(at, stable, panic, ready)
        step: dict[str, Any] = {
            "atSeconds": raw_at,
            "desiredPods": result.desired_pods if result.valid else None,
            "panic": result.panic,
            "excessBurstCapacity": result.excess_burst_capacity if result.valid else None,
        }
        if not result.valid:
            step["valid"] = False
            step["reason"] = result.reason
        out.append(step)
    return {"steps": out}


# ---------------------------------------------------------------- VPA

_VPA_NUMBERS = {
    "halfLifeSeconds": ("half_life_seconds", True),
    "targetPercentile": ("target_percentile", True),
    "lowerBoundPercentile": ("lower_bound_percentile", True),
    "upperBoundPercentile": ("upper_bound_percentile", True),
    "safetyMarginFraction": ("safety_margin_fraction", False),
    "samplesPerDay": ("samples_per_day", True),
}
_VPA_QUANTITIES = {"podMinCpu": "pod_min_cpu_cores", "podMinMemory": "pod_min_memory_bytes"}


def _vpa_config(fields: Fields, doc: Mapping[str, Any]) -> VpaConfig:
    _unknown_keys(fields, doc, set(_VPA_NUMBERS) | set(_VPA_QUANTITIES), "config")
    defaults = VpaConfig()
    values: dict[str, Any] = {}
    for key, (attr, positive) in _VPA_NUMBERS.items():
        value = fields.number(
            doc, key, f"config.{key}", default=float(getattr(defaults, attr)), minimum=0, positive=positive
        )
        if key.endswith("Percentile") and value > 1:
            fields.bad(f"config.{key}", f"must be a fraction in (0, 1], got {value:g}", "use e.g. 0.9")
        values[attr] = value
    for key, attr in _VPA_QUANTITIES.items():
        if doc.get(key) is not None:
            amount = fields.quantity(doc[key], f"config.{key}")
            if amount is not None and amount < 0:
                fields.bad(f"config.{key}", "must not be negative", 'use e.g. "25m" or "250Mi"')
            elif amount is not None:
                values[attr] = amount
    return VpaConfig(**values)


def _container(fields: Fields, doc: Mapping[str, Any], path: str) -> ContainerUsage:
    cpu = []
    for i, s in enumerate(fields.items(doc, "cpuSamples", f"{path}.cpuSamples")):
        where = f"{path}.cpuSamples[{i}]"
        request = None
        if s.get("requestCores") is not None:
            request = fields.number(s, "requestCores", f"{where}.requestCores", minimum=0)
        cpu.append(
            CpuSample(
                _NOW - fields.number(s, "ageSeconds", f"{where}.ageSeconds", minimum=0),
                fields.number(s, "cores", f"{where}.cores", minimum=0),
                request,
            )
        )
    memory = [
        MemoryPeak(
            _NOW - fields.number(p, "ageSeconds", f"{path}.memoryPeaks[{i}].ageSeconds", minimum=0),
            fields.number(p, "bytes", f"{path}.memoryPeaks[{i}].bytes", minimum=0),
        )
        for i, p in enumerate(fields.items(doc, "memoryPeaks", f"{path}.memoryPeaks"))
    ]
    return ContainerUsage(fields.text(doc, "name", f"{path}.name"), tuple(cpu), tuple(memory))


def cpu_cores_out(cores: float) -> float:
    """Cores truncated to whole millicores, as the recommender stores cpu."""
    return math.floor(cores * 1000 + 1e-6) / 1000


def _resources_out(res: Resources) -> dict[str, float | int]:
    return {"cpu": cpu_cores_out(res.cpu), "memory": math.floor(res.memory + 1e-6)}


def _simulate_vpa(case: Mapping[str, Any], fields: Fields) -> dict[str, Any]:
    config = _vpa_config(fields, fields.mapping(case, "config", "config"))
    docs = fields.items(case, "containers", "containers", required=True)
    if case.get("containers") is not None and not docs and not fields.problems:
        fields.bad(
            "containers", "must list at least one container", 'add {"name": "app", "cpuSamples": [...]}'
        )
    containers = [_container(fields, doc, f"containers[{i}]") for i, doc in enumerate(docs)]
    names = [c.name for c in containers]
    for index, name in enumerate(names):
        if name and names.index(name) != index:
            fields.bad(
                f"containers[{index}].name", f"duplicate container name {name!r}", "name each container once"
            )
    _raise_if_bad(fields, "vpa")
    result = recommend(containers, config, _NOW)
    return {
        "containers": {
            name: {
                "target": _resources_out(rec.target),
                "lowerBound": _resources_out(rec.lower_bound),
                "upperBound": _resources_out(rec.upper_bound),
            }
            for name, rec in result.items()
        }
    }
