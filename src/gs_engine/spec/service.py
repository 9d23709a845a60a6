"""The service document: what to run, how many, where it is routed, how it scales and pre-warms."""

from __future__ import annotations

import hashlib
import json
from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, Field, ValidationInfo, field_validator, model_validator

from gs_engine.spec.autoscaling import AutoscalingSpec
from gs_engine.spec.base import NonNegativeInt, Port, SpecModel, invalid, invalid_many, scalar_text
from gs_engine.spec.container import ContainerSpec
from gs_engine.spec.names import (
    DNS_LABEL_MAX,
    dns_label_fix,
    dns_label_problem,
    label_key_problem,
    label_value_problem,
)
from gs_engine.spec.prewarm import PrewarmSpec
from gs_engine.spec.probe import Probe
from gs_engine.spec.route import RouteSpec

Runtime = Literal["process", "podman", "kubernetes"]


def _labels(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(scalar_text(key)): scalar_text(item) for key, item in value.items()}
    return value


def _json_plain(value: Any) -> Any:
    """Free-form data made JSON-plain (YAML dates become ISO strings, keys become strings)."""
    if isinstance(value, dict):
        return {str(key): _json_plain(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_json_plain(item) for item in value]
    if value is None or isinstance(value, str | int | float | bool):
        return value
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return str(value)


def _dns_label(value: str, what: str) -> str:
    reason = dns_label_problem(value)
    if reason is not None:
        raise invalid(f"{value!r} is not a valid {what}: it {reason}", dns_label_fix(value))
    return value


class ServiceSpec(SpecModel):
    name: str
    namespace: str = "default"
    type: Literal["ClusterIP", "NodePort", "LoadBalancer"] = "ClusterIP"
    ports: list[Port] = Field(default_factory=list)
    monitor_ports: list[Port] = Field(default_factory=list)
    schedule_hint: Annotated[dict[str, Any], BeforeValidator(_json_plain)] = Field(default_factory=dict)
    replicas: NonNegativeInt = 1
    labels: Annotated[dict[str, str], BeforeValidator(_labels)] = Field(default_factory=dict)
    runtime: Runtime | None = None  # None: the engine's default runtime
    containers: list[ContainerSpec] = Field(min_length=1)
    readiness_probe: Probe | None = None
    route: RouteSpec | None = None
    autoscaling: AutoscalingSpec | None = None
    prewarm: PrewarmSpec | None = None

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        return _dns_label(value, "service name")

    @field_validator("namespace")
    @classmethod
    def _namespace(cls, value: str) -> str:
        return _dns_label(value, "namespace")

    @field_validator("schedule_hint", "labels", "monitor_ports", "ports", mode="before")
    @classmethod
    def _null_is_empty(cls, value: Any, info: ValidationInfo) -> Any:
        if value is None:
            return {} if info.field_name in ("schedule_hint", "labels") else []
        return value

    @field_validator("labels")
    @classmethod
    def _label_syntax(cls, value: dict[str, str]) -> dict[str, str]:
        problems = []
        for key, item in value.items():
            reason = label_key_problem(key)
            if reason is not None:
                problems.append(
                    (
                        f'["{key}"]',
                        f"label key {key!r} {reason}",
                        "write a key such as app or example.org/tier",
                    )
                )
            reason = label_value_problem(item)
            if reason is not None:
                problems.append(
                    (f'["{key}"]', f"label value {item!r} {reason}", "write a value such as v1 or edge-gpu")
                )
        if problems:
            raise invalid_many(problems)
        return value

    @field_validator("containers")
    @classmethod
    def _container_names(cls, containers: list[ContainerSpec], info: ValidationInfo) -> list[ContainerSpec]:
        service = info.data.get("name")
        if not isinstance(service, str):
            return containers  # the name itself was refused; that problem is reported already
        named: list[ContainerSpec] = []
        problems: list[tuple[str, str, str]] = []
        for index, container in enumerate(containers):
            if container.name is None:
                default = service if index == 0 else f"{service}{index}"
                if len(default) > DNS_LABEL_MAX:
                    problems.append(
                        (
                            f"[{index}].name",
                            f"the default name {default!r} is longer than {DNS_LABEL_MAX} characters",
                            f"give containers[{index}] a name",
                        )
                    )
                container = container.model_copy(update={"name": default})
            named.append(container)
        seen: set[str] = set()
        for index, container in enumerate(named):
            if container.name in seen:
                problems.append(
                    (
                        f"[{index}].name",
                        f"container name {container.name!r} is used twice",
                        "give each container its own name",
                    )
                )
            seen.add(container.name or "")
        if problems:
            raise invalid_many(problems)
        return named

    @model_validator(mode="after")
    def _runtime_fits(self) -> ServiceSpec:
        problems = []
        for index, container in enumerate(self.containers):
            if self.runtime in ("podman", "kubernetes") and container.image is None:
                problems.append(
                    (
                        f"containers[{index}].image",
                        f"runtime {self.runtime} runs images, and this container has none",
                        "set image: REGISTRY/NAME:TAG, or use runtime: process",
                    )
                )
            if self.runtime == "process" and not container.command:
                problems.append(
                    (
                        f"containers[{index}].command",
                        "runtime process runs commands, and this container has none",
                        "set command: [python, app.py], or use runtime: podman for an image",
                    )
                )
        if problems:
            raise invalid_many(problems)
        return self

    def route_prefix(self) -> str:
        """The gateway path prefix: the route's own, else /{namespace}/{name}."""
        if self.route is not None and self.route.path_prefix is not None:
            return self.route.path_prefix
        return f"/{self.namespace}/{self.name}"

    def effective_readiness_probe(self) -> Probe | None:
        """The probe that decides readiness: the service's own, else the first container's."""
        if self.readiness_probe is not None:
            return self.readiness_probe
        return next((c.readiness_probe for c in self.containers if c.readiness_probe is not None), None)

    @property
    def key(self) -> str:
        """`namespace/name`, unique per engine."""
        return f"{self.namespace}/{self.name}"

    def to_document(self) -> dict[str, Any]:
        """The normalized document, camelCase, defaults filled, JSON-serialisable; parses back equal."""
        body = self.model_dump(mode="json", by_alias=True, exclude_none=True)
        return {"service": body}


_REVISION_FIELDS = {"containers", "readiness_probe", "runtime", "labels"}


def template_revision(spec: ServiceSpec) -> str:
    """A 12-hex-digit hash of what defines a replica; replicas, scaling, pre-warm and route excluded."""
    template = spec.model_dump(mode="json", by_alias=True, include=_REVISION_FIELDS, exclude_none=True)
    canonical = json.dumps(template, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:12]
