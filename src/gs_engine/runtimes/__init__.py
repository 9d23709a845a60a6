"""Execution environments behind one interface (`base.Runtime`)."""

from gs_engine.runtimes.base import (
    GpuInfo,
    NodeInfo,
    ReplicaObservation,
    ReplicaRequest,
    ReplicaState,
    ReplicaStats,
    Runtime,
)

__all__ = [
    "GpuInfo",
    "NodeInfo",
    "ReplicaObservation",
    "ReplicaRequest",
    "ReplicaState",
    "ReplicaStats",
    "Runtime",
]
