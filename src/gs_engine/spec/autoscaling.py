"""Autoscaling settings, shaped like Kubernetes autoscaling/v2 (policy hpa) and Knative (policy kpa).

Only shapes and bounds are checked here; the algorithms live in `gs_engine.autoscaling`.
`policy` may be left out: a document with `metrics` means hpa, otherwise kpa. With hpa and no
metrics, CPU at 80% utilization is filled in, and `behavior` gets the Kubernetes defaults.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field, field_validator, model_validator

from gs_engine.spec.base import NonNegativeInt, PositiveInt, SpecModel, invalid

PositiveFloat = Annotated[float, Field(gt=0)]
NonNegativeFloat = Annotated[float, Field(ge=0)]


class MetricTarget(SpecModel):
    type: Literal["Utilization", "AverageValue", "Value"]
    average_utilization: PositiveInt | None = None
    average_value: PositiveFloat | None = None
    value: PositiveFloat | None = None

    @field_validator("average_value", "value", mode="before")
    @classmethod
    def _quantity(cls, raw: Any) -> Any:
        # Kubernetes writes these as quantities ("500m", "1k"); keep them as plain numbers.
        if isinstance(raw, str):
            from gs_engine.spec.quantity import QuantityError, parse_quantity

            try:
                return float(parse_quantity(raw))
            except QuantityError as exc:
                raise invalid(f"{raw!r} is not a number", "write a number, e.g. 10 or 500m") from exc
        return raw

    @model_validator(mode="after")
    def _field_for_type(self) -> MetricTarget:
        wanted = {"Utilization": "averageUtilization", "AverageValue": "averageValue", "Value": "value"}
        given = {
            "averageUtilization": self.average_utilization,
            "averageValue": self.average_value,
            "value": self.value,
        }
        field = wanted[self.type]
        if given[field] is None:
            raise invalid(f"target type {self.type} needs {field}", f"add {field}: N", at=field)
        extra = [name for name, item in given.items() if item is not None and name != field]
        if extra:
            raise invalid(
                f"target type {self.type} takes only {field}, not {', '.join(extra)}",
                f"remove {', '.join(extra)}",
                at=extra[0],
            )
        return self


class MetricSpec(SpecModel):
    """One metric: `Resource` (cpu or memory of the replicas) or `Pods` (a per-replica metric).

    Written flat ({type, name, target}) or in the Kubernetes nesting
    ({type: Resource, resource: {name, target}}); stored flat.
    """

    type: Literal["Resource", "Pods"]
    name: str
    target: MetricTarget

    @model_validator(mode="before")
    @classmethod
    def _unnest(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        kind = data.get("type")
        nested_key = {"Resource": "resource", "Pods": "pods"}.get(kind) if isinstance(kind, str) else None
        if nested_key and isinstance(data.get(nested_key), dict) and "name" not in data:
            inner = dict(data[nested_key])
            rest = {k: v for k, v in data.items() if k != nested_key}
            if nested_key == "pods" and isinstance(inner.get("metric"), dict):
                inner["name"] = inner.pop("metric").get("name")
            return {**rest, **inner}
        return data

    @model_validator(mode="after")
    def _shape(self) -> MetricSpec:
        if self.type == "Resource" and self.name not in ("cpu", "memory"):
            raise invalid(f"resource metric {self.name!r} is not cpu or memory", "write name: cpu", at="name")
        if self.type == "Pods" and not self.name:
            raise invalid("a Pods metric needs a name", "write name: requests_per_second", at="name")
        if self.type == "Pods" and self.target.type == "Utilization":
            raise invalid(
                "a Pods metric cannot have a Utilization target",
                "use target: {type: AverageValue, averageValue: N}",
                at="target.type",
            )
        return self


class ScalingPolicy(SpecModel):
    type: Literal["Pods", "Percent"]
    value: PositiveInt
    period_seconds: Annotated[int, Field(strict=True, ge=1, le=1800)]


class ScalingRules(SpecModel):
    stabilization_window_seconds: Annotated[int, Field(strict=True, ge=0, le=3600)] | None = None
    select_policy: Literal["Max", "Min", "Disabled"] = "Max"
    policies: list[ScalingPolicy] = Field(default_factory=list)


def default_scale_up() -> ScalingRules:
    """Kubernetes' default: no stabilization; double, or add 4 pods, per 15 s, whichever is more."""
    return ScalingRules(
        stabilization_window_seconds=0,
        select_policy="Max",
        policies=[
            ScalingPolicy(type="Percent", value=100, period_seconds=15),
            ScalingPolicy(type="Pods", value=4, period_seconds=15),
        ],
    )


def default_scale_down() -> ScalingRules:
    """Kubernetes' default: 300 s stabilization; may remove all surplus pods per 15 s."""
    return ScalingRules(
        stabilization_window_seconds=300,
        select_policy="Max",
        policies=[ScalingPolicy(type="Percent", value=100, period_seconds=15)],
    )


def _with_defaults(rules: ScalingRules, defaults: ScalingRules) -> ScalingRules:
    return ScalingRules(
        stabilization_window_seconds=(
            defaults.stabilization_window_seconds
            if rules.stabilization_window_seconds is None
            else rules.stabilization_window_seconds
        ),
        select_policy=rules.select_policy,
        policies=rules.policies or defaults.policies,
    )


class ScalingBehavior(SpecModel):
    scale_up: ScalingRules = Field(default_factory=default_scale_up)
    scale_down: ScalingRules = Field(default_factory=default_scale_down)

    @field_validator("scale_up")
    @classmethod
    def _fill_up(cls, rules: ScalingRules) -> ScalingRules:
        # Fields left out inside a direction take the Kubernetes defaults of that direction.
        return _with_defaults(rules, default_scale_up())

    @field_validator("scale_down")
    @classmethod
    def _fill_down(cls, rules: ScalingRules) -> ScalingRules:
        return _with_defaults(rules, default_scale_down())


DEFAULT_CPU_METRIC = {
    "type": "Resource",
    "name": "cpu",
    "target": {"type": "Utilization", "averageUtilization": 80},
}


class AutoscalingSpec(SpecModel):
    policy: Literal["hpa", "kpa"]
    min_replicas: NonNegativeInt = 1
    max_replicas: NonNegativeInt
    # hpa
    metrics: list[MetricSpec] = Field(default_factory=list)
    behavior: ScalingBehavior | None = None
    # kpa (names and defaults as Knative's)
    metric: Literal["concurrency", "rps"] = "concurrency"
    target: PositiveFloat = 100.0
    target_utilization_percentage: Annotated[float, Field(gt=0, le=100)] = 70.0
    container_concurrency: NonNegativeInt = 0  # 0: unlimited
    stable_window_seconds: Annotated[float, Field(ge=1, le=3600)] = 60.0
    panic_window_percentage: Annotated[float, Field(ge=1, le=100)] = 10.0
    panic_threshold_percentage: Annotated[float, Field(ge=110, le=1000)] = 200.0
    max_scale_up_rate: Annotated[float, Field(gt=1)] = 1000.0
    max_scale_down_rate: Annotated[float, Field(gt=1)] = 2.0
    scale_down_delay_seconds: Annotated[float, Field(ge=0, le=3600)] = 0.0
    scale_to_zero_grace_period_seconds: NonNegativeFloat = 30.0
    activation_scale: PositiveInt = 1
    target_burst_capacity: Annotated[float, Field(ge=-1)] = 200.0  # -1: always route via the activator

    @model_validator(mode="before")
    @classmethod
    def _infer_policy_and_fill(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("policy") is None:
            data = dict(data)
            data["policy"] = "hpa" if data.get("metrics") or data.get("behavior") else "kpa"
        if isinstance(data, dict) and data.get("policy") == "hpa":
            data = dict(data)
            if not data.get("metrics"):
                data["metrics"] = [DEFAULT_CPU_METRIC]
            if data.get("behavior") is None:
                data["behavior"] = {}
        return data

    @model_validator(mode="after")
    def _consistent(self) -> AutoscalingSpec:
        if self.max_replicas < self.min_replicas:
            raise invalid(
                f"maxReplicas {self.max_replicas} is less than minReplicas {self.min_replicas}",
                f"set maxReplicas to at least {self.min_replicas}",
                at="maxReplicas",
            )
        if self.policy == "hpa" and self.min_replicas == 0:
            raise invalid(
                "policy hpa cannot scale to zero (minReplicas 0)",
                "use policy: kpa to scale to zero, or set minReplicas: 1",
                at="minReplicas",
            )
        if self.policy == "kpa" and self.metrics:
            raise invalid(
                "metrics are settings of policy hpa; policy kpa scales on 'metric' and 'target'",
                "set policy: hpa, or replace metrics with metric: concurrency and target: N",
                at="metrics",
            )
        if self.policy == "kpa" and self.behavior is not None:
            raise invalid(
                "behavior is a setting of policy hpa",
                "set policy: hpa, or remove behavior (kpa uses maxScaleUpRate and maxScaleDownRate)",
                at="behavior",
            )
        return self
