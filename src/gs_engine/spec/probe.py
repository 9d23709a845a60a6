"""Readiness probes in the Kubernetes shape: exactly one of httpGet, tcpSocket or exec.

A port left out means the replica's own port. Seconds may be fractions (an edge engine probes
faster than once a second); the kubernetes runtime rounds them up to whole seconds.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, field_validator, model_validator

from gs_engine.spec.base import Port, PositiveInt, SpecModel, TextList, invalid

Seconds = Annotated[float, Field(ge=0)]
PositiveSeconds = Annotated[float, Field(gt=0)]


class HttpGetAction(SpecModel):
    path: str = "/"
    port: Port | None = None
    scheme: Literal["HTTP", "HTTPS"] = "HTTP"

    @field_validator("path")
    @classmethod
    def _path(cls, value: str) -> str:
        if not value.startswith("/") or any(c.isspace() for c in value):
            raise invalid(f"{value!r} is not a URL path", "write a path that starts with '/', e.g. /healthz")
        return value


class TcpSocketAction(SpecModel):
    port: Port | None = None


class ExecAction(SpecModel):
    command: TextList = Field(min_length=1)


_KINDS = ("httpGet", "tcpSocket", "exec")


class Probe(SpecModel):
    http_get: HttpGetAction | None = None
    tcp_socket: TcpSocketAction | None = None
    exec_: ExecAction | None = Field(default=None, alias="exec")
    initial_delay_seconds: Seconds = 0.0
    period_seconds: PositiveSeconds = 1.0
    timeout_seconds: PositiveSeconds = 1.0
    success_threshold: PositiveInt = 1
    failure_threshold: PositiveInt = 3

    @model_validator(mode="after")
    def _one_kind(self) -> Probe:
        given = [
            kind
            for kind, action in zip(_KINDS, (self.http_get, self.tcp_socket, self.exec_), strict=True)
            if action is not None
        ]
        if len(given) != 1:
            said = " and ".join(given) if given else "none"
            raise invalid(
                f"a probe needs exactly one of httpGet, tcpSocket or exec; this one has {said}",
                "keep one, e.g. httpGet: {path: /healthz} or tcpSocket: {}",
            )
        return self

    @property
    def kind(self) -> Literal["httpGet", "tcpSocket", "exec"]:
        if self.http_get is not None:
            return "httpGet"
        if self.tcp_socket is not None:
            return "tcpSocket"
        return "exec"

    def port_or(self, replica_port: int) -> int:
        """The port to probe: the one written, else the replica's own."""
        written = self.http_get.port if self.http_get else self.tcp_socket.port if self.tcp_socket else None
        return written if written is not None else replica_port
