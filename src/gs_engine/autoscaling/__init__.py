"""Autoscaling algorithms: HPA (Kubernetes autoscaling/v2), KPA (Knative) and VPA, pure and simulated.

Nothing here does I/O or reads the clock: times are arguments, decisions are values.
"""

from gs_engine.autoscaling.behavior import (
    DEFAULT_SCALE_DOWN,
    DEFAULT_SCALE_UP,
    Behavior,
    Limited,
    PastRecommendation,
    ScaleEvent,
    ScalingPolicy,
    ScalingRules,
    limit_rate,
    scale_down_limit,
    scale_up_limit,
    stabilize,
)
from gs_engine.autoscaling.hpa import (
    Condition,
    HpaDecision,
    HpaInput,
    MetricSpec,
    MetricTarget,
    hpa_decide,
)
from gs_engine.autoscaling.kpa import KpaConfig, KpaDecider, KpaResult, Sample, window_average
from gs_engine.autoscaling.replicas import CalculatorSettings, PodState
from gs_engine.autoscaling.simulate import parse_hpa_case, simulate
from gs_engine.autoscaling.vpa import (
    ContainerUsage,
    CpuSample,
    MemoryPeak,
    Recommendation,
    Resources,
    VpaConfig,
    recommend,
    with_margin,
)

__all__ = [
    "DEFAULT_SCALE_DOWN",
    "DEFAULT_SCALE_UP",
    "Behavior",
    "CalculatorSettings",
    "Condition",
    "ContainerUsage",
    "CpuSample",
    "HpaDecision",
    "HpaInput",
    "KpaConfig",
    "KpaDecider",
    "KpaResult",
    "Limited",
    "MemoryPeak",
    "MetricSpec",
    "MetricTarget",
    "PastRecommendation",
    "PodState",
    "Recommendation",
    "Resources",
    "Sample",
    "ScaleEvent",
    "ScalingPolicy",
    "ScalingRules",
    "VpaConfig",
    "hpa_decide",
    "limit_rate",
    "parse_hpa_case",
    "recommend",
    "scale_down_limit",
    "scale_up_limit",
    "simulate",
    "stabilize",
    "window_average",
    "with_margin",
]
