"""One container (or process) of a replica: what to run, its ports, env and resources.

Upstream defaults are kept: requests 200m/500Mi and limits 500m/1Gi per container. Where a
document gives only one side, the omitted side is defaulted so that it does not contradict the
given one (an omitted request never exceeds the given limit, an omitted limit never falls below
the given request); requests greater than limits are refused only when both are written.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, Field, field_validator, model_validator
from pydantic_core import PydanticCustomError

from gs_engine.spec.base import (
    NonNegativeInt,
    Port,
    SpecModel,
    TextList,
    invalid,
    invalid_many,
    scalar_text,
)
from gs_engine.spec.names import dns_label_fix, dns_label_problem
from gs_engine.spec.probe import Probe
from gs_engine.spec.quantity import QuantityError, cpu_cores, memory_bytes, parse_quantity

DEFAULT_REQUESTS = {"cpu": "200m", "memory": "500Mi"}
DEFAULT_LIMITS = {"cpu": "500m", "memory": "1Gi"}


def _quantity_text(value: Any, kind: str) -> str:
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise invalid(f"{value!r} is not a {kind} quantity", _QUANTITY_FIX[kind])
    text = str(value).strip()
    try:
        amount = parse_quantity(text)
    except QuantityError as exc:
        raise invalid(f"{value!r} is not a {kind} quantity", _QUANTITY_FIX[kind]) from exc
    if amount < 0:
        raise invalid(f"{value!r} is negative", _QUANTITY_FIX[kind])
    if kind == "memory" and text.endswith("m"):
        raise invalid(
            f"{value!r} means {amount} bytes ('m' is milli, not mega)",
            f"write {text[:-1]}Mi for mebibytes or {text[:-1]}M for megabytes",
        )
    return text


_QUANTITY_FIX = {
    "cpu": "write cores as a number or millicores, e.g. 250m, 0.5, 2",
    "memory": "write bytes with a suffix, e.g. 512Mi, 1Gi, 500M",
}

CpuQuantity = Annotated[str, BeforeValidator(lambda v: _quantity_text(v, "cpu"))]
MemoryQuantity = Annotated[str, BeforeValidator(lambda v: _quantity_text(v, "memory"))]
ScalarText = Annotated[str, BeforeValidator(scalar_text)]


class EnvVar(SpecModel):
    name: str
    value: ScalarText = ""

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not value or "=" in value or "\x00" in value:
            raise invalid(f"{value!r} is not an environment variable name", "use e.g. MODEL_PATH")
        return value


class ContainerPort(SpecModel):
    container_port: Port
    protocol: Literal["TCP", "UDP", "SCTP"] = "TCP"
    external_port: Port | None = None


class ResourceAmounts(SpecModel):
    cpu: CpuQuantity
    memory: MemoryQuantity

    @property
    def cpu_cores(self) -> float:
        return cpu_cores(self.cpu)

    @property
    def memory_bytes(self) -> int:
        return memory_bytes(self.memory)


class ComputeSpec(SpecModel):
    gpu: NonNegativeInt = 0


class AccelerationSpec(SpecModel):
    topology_aware: bool = False
    compute: ComputeSpec = Field(default_factory=ComputeSpec)


def _parsed(value: Any, kind: str) -> float | None:
    """The quantity's value when it would pass validation, else None (its own error is reported)."""
    try:
        return float(parse_quantity(_quantity_text(value, kind)))
    except PydanticCustomError:
        return None


class ResourcesSpec(SpecModel):
    requests: ResourceAmounts
    limits: ResourceAmounts
    acceleration: AccelerationSpec = Field(default_factory=AccelerationSpec)

    @model_validator(mode="before")
    @classmethod
    def _fill_defaults(cls, data: Any) -> Any:
        if data is None:
            data = {}
        if not isinstance(data, dict):
            return data
        data = dict(data)
        requests = data.get("requests") if data.get("requests") is not None else {}
        limits = data.get("limits") if data.get("limits") is not None else {}
        if not isinstance(requests, dict) or not isinstance(limits, dict):
            return data
        requests, limits = dict(requests), dict(limits)
        for key in ("cpu", "memory"):
            asked, capped = requests.get(key), limits.get(key)
            if asked is None and capped is None:
                requests[key], limits[key] = DEFAULT_REQUESTS[key], DEFAULT_LIMITS[key]
            elif asked is None:
                cap = _parsed(capped, key)
                below = cap is not None and cap < float(parse_quantity(DEFAULT_REQUESTS[key]))
                requests[key] = str(capped) if below else DEFAULT_REQUESTS[key]
            elif capped is None:
                need = _parsed(asked, key)
                above = need is not None and need > float(parse_quantity(DEFAULT_LIMITS[key]))
                limits[key] = str(asked) if above else DEFAULT_LIMITS[key]
        data["requests"], data["limits"] = requests, limits
        return data

    @model_validator(mode="after")
    def _requests_within_limits(self) -> ResourcesSpec:
        problems = []
        if self.requests.cpu_cores > self.limits.cpu_cores:
            problems.append(
                (
                    "limits.cpu",
                    f"requests.cpu {self.requests.cpu} is more than limits.cpu {self.limits.cpu}",
                    f"raise limits.cpu to at least {self.requests.cpu} or lower requests.cpu",
                )
            )
        if self.requests.memory_bytes > self.limits.memory_bytes:
            problems.append(
                (
                    "limits.memory",
                    f"requests.memory {self.requests.memory} is more than limits.memory {self.limits.memory}",
                    f"raise limits.memory to at least {self.requests.memory} or lower requests.memory",
                )
            )
        if problems:
            raise invalid_many(problems)
        return self


def _env_list(value: Any) -> Any:
    """Accept `env` as a list of {name, value} (upstream) or as a mapping NAME: value."""
    if isinstance(value, dict):
        return [{"name": str(name), "value": item} for name, item in value.items()]
    return value


class ContainerSpec(SpecModel):
    name: str | None = None
    image: str | None = None
    command: TextList = Field(default_factory=list)
    args: TextList = Field(default_factory=list)
    env: Annotated[list[EnvVar], BeforeValidator(_env_list)] = Field(default_factory=list)
    working_dir: str | None = None
    ports: list[ContainerPort] = Field(default_factory=list)
    resources: ResourcesSpec = Field(default_factory=lambda: ResourcesSpec.model_validate({}))
    readiness_probe: Probe | None = None  # as in Kubernetes; see ServiceSpec.effective_readiness_probe()

    @field_validator("resources", mode="before")
    @classmethod
    def _resources_null(cls, value: Any) -> Any:
        return {} if value is None else value

    @field_validator("name")
    @classmethod
    def _name(cls, value: str | None) -> str | None:
        if value is not None:
            reason = dns_label_problem(value)
            if reason is not None:
                raise invalid(f"{value!r} is not a valid container name: it {reason}", dns_label_fix(value))
        return value

    @field_validator("image")
    @classmethod
    def _image(cls, value: str | None) -> str | None:
        if value is not None and (not value.strip() or any(c.isspace() for c in value)):
            raise invalid(
                f"{value!r} is not an image reference", "write e.g. registry.example.org/team/app:1.0"
            )
        return value

    @model_validator(mode="after")
    def _runnable(self) -> ContainerSpec:
        problems = []
        if self.image is None and not self.command:
            problems.append(
                (
                    "",
                    "neither 'image' nor 'command' is set, so there is nothing to run",
                    "set image: REGISTRY/NAME:TAG for a container, "
                    "or command: [python, app.py] for a process",
                )
            )
        seen: set[tuple[int, str]] = set()
        for index, port in enumerate(self.ports):
            key = (port.container_port, port.protocol)
            if key in seen:
                problems.append(
                    (
                        f"ports[{index}].containerPort",
                        f"{port.container_port}/{port.protocol} is listed twice",
                        "list each port once",
                    )
                )
            seen.add(key)
        names = [var.name for var in self.env]
        for index, name in enumerate(names):
            if name in names[:index]:
                problems.append((f"env[{index}].name", f"{name!r} is set twice", "set each variable once"))
        if problems:
            raise invalid_many(problems)
        return self

    @property
    def requests_cpu_cores(self) -> float:
        return self.resources.requests.cpu_cores

    @property
    def requests_memory_bytes(self) -> int:
        return self.resources.requests.memory_bytes

    @property
    def limits_cpu_cores(self) -> float:
        return self.resources.limits.cpu_cores

    @property
    def limits_memory_bytes(self) -> int:
        return self.resources.limits.memory_bytes

    @property
    def gpus(self) -> int:
        return self.resources.acceleration.compute.gpu

    @property
    def topology_aware(self) -> bool:
        return self.resources.acceleration.topology_aware

    def env_dict(self) -> dict[str, str]:
        return {var.name: var.value for var in self.env}
