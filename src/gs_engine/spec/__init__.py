"""The service schema: parse, validate, default and normalize service documents.

load_service(text) / service_from_dict(data) -> ServiceSpec   (SpecInvalid lists every problem)
ServiceSpec.to_document() -> {"service": {...}}                (normalized, parses back equal)
template_revision(spec) -> 12 hex digits                       (what defines a replica)
validate_dns_label(value, field)                               (InvalidInput unless DNS-1123)
"""

from gs_engine.spec.autoscaling import (
    AutoscalingSpec,
    MetricSpec,
    MetricTarget,
    ScalingBehavior,
    ScalingPolicy,
    ScalingRules,
)
from gs_engine.spec.container import (
    AccelerationSpec,
    ComputeSpec,
    ContainerPort,
    ContainerSpec,
    EnvVar,
    ResourceAmounts,
    ResourcesSpec,
)
from gs_engine.spec.cron import CronError, CronSchedule, parse_cron
from gs_engine.spec.loader import load_service, parse_document, service_from_dict
from gs_engine.spec.names import validate_dns_label
from gs_engine.spec.prewarm import PredictiveSpec, PrewarmSpec, PrewarmWindow, ZygoteSpec
from gs_engine.spec.probe import ExecAction, HttpGetAction, Probe, TcpSocketAction
from gs_engine.spec.quantity import QuantityError, cpu_cores, memory_bytes, parse_quantity
from gs_engine.spec.route import RouteSpec
from gs_engine.spec.service import Runtime, ServiceSpec, template_revision

__all__ = [
    "AccelerationSpec",
    "AutoscalingSpec",
    "ComputeSpec",
    "ContainerPort",
    "ContainerSpec",
    "CronError",
    "CronSchedule",
    "EnvVar",
    "ExecAction",
    "HttpGetAction",
    "MetricSpec",
    "MetricTarget",
    "PredictiveSpec",
    "PrewarmSpec",
    "PrewarmWindow",
    "Probe",
    "QuantityError",
    "ResourceAmounts",
    "ResourcesSpec",
    "RouteSpec",
    "Runtime",
    "ScalingBehavior",
    "ScalingPolicy",
    "ScalingRules",
    "ServiceSpec",
    "TcpSocketAction",
    "ZygoteSpec",
    "cpu_cores",
    "load_service",
    "memory_bytes",
    "parse_cron",
    "parse_document",
    "parse_quantity",
    "service_from_dict",
    "template_revision",
    "validate_dns_label",
]
