"""JSON shapes the API returns (camelCase, as in the service documents)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from gs_engine.runtimes.base import NodeInfo, ReplicaObservation, ReplicaStats


def _iso(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    return value


def service_view(record: Any) -> dict[str, Any]:
    return {
        "namespace": record.namespace,
        "name": record.name,
        "generation": record.generation,
        "observedGeneration": record.observed_generation,
        "revision": record.revision,
        "labels": dict(record.labels or {}),
        "deleting": record.deleting,
        "createdAt": _iso(record.created_at),
        "updatedAt": _iso(record.updated_at),
        "spec": record.spec,
        "status": record.status or {},
    }


def replica_view(
    replica: ReplicaObservation, draining: bool = False, stats: ReplicaStats | None = None
) -> dict[str, Any]:
    state = "Draining" if draining and replica.state.value != "Exited" else replica.state.value
    return {
        "id": replica.replica_id,
        "namespace": replica.namespace,
        "service": replica.service,
        "revision": replica.revision,
        "state": state,
        "ready": replica.ready,
        "host": replica.host,
        "port": replica.port,
        "pid": replica.pid,
        "node": replica.node,
        "restarts": replica.attempt,
        "startedAt": replica.started_at,
        "exitCode": replica.exit_code,
        "message": replica.message,
        "cpuCores": round(stats.cpu_cores, 4) if stats else None,
        "memoryBytes": stats.memory_bytes if stats else None,
    }


def node_view(node: NodeInfo) -> dict[str, Any]:
    return {
        "name": node.name,
        "runtime": node.runtime,
        "ready": node.ready,
        "cpu": {"cores": node.cpu_cores, "percent": node.cpu_percent},
        "memory": {"bytes": node.memory_bytes, "availableBytes": node.memory_available_bytes},
        "numaNodes": node.numa_nodes,
        "gpus": [
            {"index": g.index, "name": g.name, "memoryBytes": g.memory_bytes, "uuid": g.uuid}
            for g in node.gpus
        ],
        "labels": dict(node.labels),
    }


def event_view(event: Any) -> dict[str, Any]:
    return {
        "at": _iso(event.at),
        "namespace": event.namespace,
        "kind": event.object_kind,
        "name": event.object_name,
        "controller": event.controller,
        "reason": event.reason,
        "message": event.message,
        "data": event.data,
    }


def namespace_view(record: Any) -> dict[str, Any]:
    return {"name": record.name, "labels": dict(record.labels or {}), "createdAt": _iso(record.created_at)}
