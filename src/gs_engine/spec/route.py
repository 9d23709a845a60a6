"""The gateway route of a service: which requests reach it and how they are forwarded."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, field_validator

from gs_engine.spec.base import NonNegativeInt, SpecModel, invalid
from gs_engine.spec.names import hostname_problem


class RouteSpec(SpecModel):
    path_prefix: str | None = None  # None: /{namespace}/{name}, see ServiceSpec.route_prefix()
    host: str | None = None
    strip_prefix: bool = True
    timeout_seconds: Annotated[float, Field(gt=0)] | None = None
    retries: NonNegativeInt | None = None

    @field_validator("path_prefix")
    @classmethod
    def _prefix(cls, value: str | None) -> str | None:
        if value is None:
            return value
        if not value.startswith("/"):
            raise invalid(f"{value!r} does not start with '/'", f"write '/{value.lstrip('/')}'")
        if any(c.isspace() or c in "?#" for c in value):
            raise invalid(
                f"{value!r} has a space, '?' or '#'", "write a plain path such as /edge/face-detect"
            )
        if ".." in value.split("/") or "//" in value:
            raise invalid(
                f"{value!r} has an empty or '..' segment", "write a plain path such as /edge/face-detect"
            )
        return value

    @field_validator("host")
    @classmethod
    def _host(cls, value: str | None) -> str | None:
        if value is None:
            return value
        reason = hostname_problem(value)
        if reason is not None:
            raise invalid(
                f"{value!r} is not a hostname: it {reason}",
                "write a lowercase DNS name, e.g. face.edge.example.org or *.edge.example.org",
            )
        return value
