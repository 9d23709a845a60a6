"""Plain values the store hands out. Callers never see ORM objects or SQLAlchemy types.

Each record is a frozen dataclass built fresh for every call, so a caller may keep it, pass it between
threads or change the dicts inside it without touching the database or another caller's copy.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

ApplyOutcome = Literal["created", "updated", "unchanged"]


@dataclass(frozen=True)
class NamespaceRecord:
    name: str
    labels: dict[str, str]
    created_at: datetime


@dataclass(frozen=True)
class ServiceRecord:
    """Desired state (spec, labels, revision, generation) and the status controllers last wrote."""

    namespace: str
    name: str
    spec: dict[str, Any]
    labels: dict[str, str]
    revision: str
    generation: int
    observed_generation: int
    status: dict[str, Any]
    deleting: bool
    created_at: datetime
    updated_at: datetime

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"


@dataclass(frozen=True)
class RouteRecord:
    """One gateway route: requests for `host` ('' = any host) under `path_prefix` go to the service."""

    namespace: str
    service: str
    host: str
    path_prefix: str


@dataclass(frozen=True)
class ReplicaRecord:
    """A row of the observed-state mirror, for listing replicas without asking the runtime."""

    replica_id: str
    namespace: str
    service: str
    revision: str
    state: str
    ready: bool = False
    host: str = ""
    port: int | None = None
    pid: int | None = None
    node: str = ""
    attempt: int = 0
    message: str = ""
    started_at: datetime | None = None
    updated_at: datetime | None = None  # filled in by the store when left empty


@dataclass(frozen=True)
class EventRecord:
    id: int
    at: datetime
    namespace: str
    object_kind: str
    object_name: str
    controller: str
    reason: str
    message: str
    data: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class TokenRecord:
    name: str
    token_hash: str
    created_at: datetime
    last_used_at: datetime | None
