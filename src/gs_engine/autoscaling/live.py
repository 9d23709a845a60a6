"""From a service document and live measurements to the deciders' inputs. Pure.

The engine's autoscaler builds the same JSON case the simulator reads (`simulate.parse_hpa_case`),
so "what would the autoscaler do?" and what it does are one code path.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from gs_engine.autoscaling.kpa import KpaConfig
from gs_engine.autoscaling.prewarm import Window
from gs_engine.spec.cron import parse_cron
from gs_engine.spec.quantity import cpu_cores, memory_bytes

RPS_METRICS = frozenset({"requests_per_second", "rps", "requests-per-second"})
INFLIGHT_METRICS = frozenset({"inflight", "in_flight_requests", "concurrency", "inflight_requests"})


def service_doc(spec: Mapping[str, Any]) -> Mapping[str, Any]:
    inner = spec.get("service", spec)
    return inner if isinstance(inner, Mapping) else {}


def autoscaling_of(spec: Mapping[str, Any]) -> Mapping[str, Any] | None:
    value = service_doc(spec).get("autoscaling")
    return value if isinstance(value, Mapping) else None


def prewarm_of(spec: Mapping[str, Any]) -> Mapping[str, Any]:
    value = service_doc(spec).get("prewarm")
    return value if isinstance(value, Mapping) else {}


def bounds(spec: Mapping[str, Any]) -> tuple[int, int]:
    scaling = autoscaling_of(spec) or {}
    return int(scaling.get("minReplicas", 1)), int(scaling.get("maxReplicas", 1))


def clamp(value: int, low: int, high: int) -> int:
    return max(low, min(high, value))


def kpa_config(spec: Mapping[str, Any]) -> KpaConfig:
    """Knative semantics: the per-replica target is `target` (capped by containerConcurrency when
    set) times the target utilization; `total_value` is the per-replica capacity before it."""
    scaling = autoscaling_of(spec) or {}
    target = float(scaling.get("target", 100.0))
    concurrency = int(scaling.get("containerConcurrency", 0) or 0)
    if concurrency > 0 and scaling.get("metric", "concurrency") == "concurrency":
        target = min(target, float(concurrency))
    utilization = float(scaling.get("targetUtilizationPercentage", 70.0)) / 100.0
    return KpaConfig(
        target=target * utilization,
        total_value=target,
        panic_threshold=float(scaling.get("panicThresholdPercentage", 200.0)) / 100.0,
        max_scale_up_rate=float(scaling.get("maxScaleUpRate", 1000.0)),
        max_scale_down_rate=float(scaling.get("maxScaleDownRate", 2.0)),
        stable_window_seconds=float(scaling.get("stableWindowSeconds", 60.0)),
        panic_window_percentage=float(scaling.get("panicWindowPercentage", 10.0)),
        scale_down_delay_seconds=float(scaling.get("scaleDownDelaySeconds", 0.0)),
        activation_scale=int(scaling.get("activationScale", 1)),
        target_burst_capacity=float(scaling.get("targetBurstCapacity", 200.0)),
    )


def windows(spec: Mapping[str, Any]) -> tuple[Window, ...]:
    from zoneinfo import ZoneInfo

    return tuple(
        Window(
            parse_cron(str(w["cron"])),
            ZoneInfo(str(w.get("timezone", "UTC"))),
            int(w["minReplicas"]),
            float(w.get("durationMinutes", 60)) * 60.0,
        )
        for w in prewarm_of(spec).get("schedule", []) or []
    )


def replica_requests(spec: Mapping[str, Any]) -> dict[str, str]:
    """The per-replica resource requests (summed over containers), as quantity strings."""
    cpu, memory = 0.0, 0
    for container in service_doc(spec).get("containers", []):
        requests = (container.get("resources") or {}).get("requests") or {}
        if requests.get("cpu") is not None:
            cpu += cpu_cores(requests["cpu"])
        if requests.get("memory") is not None:
            memory += memory_bytes(requests["memory"])
    result: dict[str, str] = {}
    if cpu > 0:
        result["cpu"] = repr(cpu)
    if memory > 0:
        result["memory"] = str(memory)
    return result


@dataclass(frozen=True)
class ReplicaMetrics:
    """What was measured for one replica over the last second."""

    name: str
    ready: bool
    running: bool
    failed: bool = False
    cpu_cores: float | None = None
    memory_bytes: int | None = None
    requests_per_second: float | None = None
    inflight: float | None = None


def _nested_metric(metric: Mapping[str, Any]) -> dict[str, Any]:
    target = {k: v for k, v in metric.get("target", {}).items() if v is not None}
    if metric.get("type") == "Resource":
        return {"type": "Resource", "resource": {"name": metric["name"], "target": target}}
    return {"type": "Pods", "pods": {"metric": {"name": metric["name"]}, "target": target}}


def _usage(metrics: Sequence[Mapping[str, Any]], replica: ReplicaMetrics) -> dict[str, str]:
    usage: dict[str, str] = {}
    if replica.cpu_cores is not None:
        usage["cpu"] = repr(max(0.0, replica.cpu_cores))
    if replica.memory_bytes is not None:
        usage["memory"] = str(replica.memory_bytes)
    for metric in metrics:
        name = str(metric.get("name", ""))
        if metric.get("type") != "Pods":
            continue
        if name in RPS_METRICS and replica.requests_per_second is not None:
            usage[name] = repr(replica.requests_per_second)
        elif name in INFLIGHT_METRICS and replica.inflight is not None:
            usage[name] = repr(replica.inflight)
    return usage


def hpa_case(
    spec: Mapping[str, Any],
    current_replicas: int,
    replicas: Sequence[ReplicaMetrics],
    recommendations: Sequence[tuple[float, int]],
    scale_events: Sequence[tuple[float, int]],
    now: float,
) -> dict[str, Any]:
    """The simulator's HPA case for this moment (history as ages relative to `now`)."""
    scaling = autoscaling_of(spec) or {}
    metrics = list(scaling.get("metrics") or [])
    requests = replica_requests(spec)
    case: dict[str, Any] = {
        "policy": "hpa",
        "currentReplicas": current_replicas,
        "minReplicas": max(1, int(scaling.get("minReplicas", 1))),
        "maxReplicas": int(scaling.get("maxReplicas", 1)),
        "metrics": [_nested_metric(m) for m in metrics],
        "pods": [
            {
                "name": r.name,
                "phase": "Failed" if r.failed else ("Running" if r.running else "Pending"),
                "ready": r.ready,
                "requests": requests,
                "usage": _usage(metrics, r),
            }
            for r in replicas
        ],
        "recommendations": [{"ageSeconds": max(0.0, now - t), "replicas": n} for t, n in recommendations],
        "scaleEvents": [{"ageSeconds": max(0.0, now - t), "change": c} for t, c in scale_events],
    }
    if scaling.get("behavior"):
        case["behavior"] = scaling["behavior"]
    return case
