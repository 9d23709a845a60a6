"""The one interface every execution environment implements (process, podman, kubernetes).

Callers (controllers, API) see only these types. A runtime translates its backend's failures into
`gs_engine.errors` (TemporaryBackendError, PermanentBackendError, Unsupported) at this boundary.
"""

from __future__ import annotations

import enum
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable


class ReplicaState(enum.StrEnum):
    STARTING = "Starting"  # launched, not yet ready
    RUNNING = "Running"  # alive (ready says whether its probe passes)
    EXITED = "Exited"  # process ended; exit_code says how
    STOPPING = "Stopping"  # asked to stop, not gone yet


@dataclass(frozen=True)
class ReplicaRequest:
    """Everything a runtime needs to start one replica of a service."""

    replica_id: str  # unique and stable for the replica's life, e.g. "default.digits.3f9a1c"
    namespace: str
    service: str
    revision: str  # hash of the pod template; replicas of one revision are interchangeable
    spec: Mapping[str, Any]  # the normalized service document (ServiceSpec.model_dump(by_alias=True))
    port: int | None = None  # the port the replica must listen on; None lets the runtime choose
    attempt: int = 0  # restarts so far of this replica slot


@dataclass(frozen=True)
class ReplicaObservation:
    replica_id: str
    namespace: str
    service: str
    revision: str
    state: ReplicaState
    ready: bool
    host: str
    port: int
    pid: int | None = None
    started_at: float | None = None  # wall-clock seconds
    exit_code: int | None = None
    exited_at: float | None = None
    attempt: int = 0
    node: str = ""
    message: str = ""  # why it is not ready / why it exited


@dataclass(frozen=True)
class ReplicaStats:
    cpu_cores: float  # recent CPU use in cores, summed over the replica's processes
    memory_bytes: int  # resident set size
    at: float


@dataclass(frozen=True)
class GpuInfo:
    index: int
    name: str
    memory_bytes: int | None = None
    uuid: str = ""


@dataclass(frozen=True)
class NodeInfo:
    name: str
    runtime: str
    cpu_cores: int
    memory_bytes: int
    cpu_percent: float = 0.0
    memory_available_bytes: int = 0
    gpus: tuple[GpuInfo, ...] = ()
    numa_nodes: int = 1
    labels: Mapping[str, str] = field(default_factory=dict)
    ready: bool = True


@runtime_checkable
class Runtime(Protocol):
    """Where replicas run. One object per engine; it owns its background supervision."""

    name: str

    async def start(self) -> None:
        """Open the backend; adopt replicas a previous engine left running."""

    async def close(self, stop_replicas: bool = True) -> None:
        """Stop supervising; by default stop every replica it runs (no child left behind)."""

    async def run_replica(self, request: ReplicaRequest) -> ReplicaObservation:
        """Start one replica. Raises Unsupported for a spec this runtime cannot run."""

    async def stop_replica(self, replica_id: str, grace_seconds: float = 10.0) -> None:
        """SIGTERM (or the backend's equivalent), then force after the grace period."""

    def watch(self, callback: Callable[[], None]) -> None:
        """Register a callback (no arguments, run on the event loop) for state or readiness changes."""

    def replicas(self) -> list[ReplicaObservation]:
        """What runs now, as last observed. Cheap; no I/O on the caller's path."""

    async def logs(self, replica_id: str, tail_lines: int | None = None) -> str: ...

    def follow_logs(self, replica_id: str) -> AsyncIterator[str]: ...

    async def stats(self, replica_id: str) -> ReplicaStats | None: ...

    async def nodes(self) -> list[NodeInfo]: ...

    def check_spec(self, spec: Mapping[str, Any]) -> None:
        """Raise Unsupported (naming the field and the runtime it needs) if this runtime can't run spec."""
