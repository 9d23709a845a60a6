"""Prometheus metrics for the engine: controller passes, services and replicas, plus the gateway's."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.registry import Collector


class EngineCollector(Collector):
    def __init__(self, engine: Any) -> None:
        self.engine = engine

    def collect(self) -> Iterator[Any]:
        metrics = self.engine.controller.metrics
        passes = CounterMetricFamily("gse_controller_passes", "Reconcile passes of the service controller")
        passes.add_metric([], metrics.passes)
        yield passes
        errors = CounterMetricFamily("gse_controller_errors", "Reconcile passes that failed")
        errors.add_metric([], metrics.errors)
        yield errors
        duration = GaugeMetricFamily(
            "gse_controller_last_pass_seconds", "Duration of the last reconcile pass"
        )
        duration.add_metric([], metrics.last_duration)
        yield duration
        replicas = GaugeMetricFamily(
            "gse_replicas", "Replicas by service and state", labels=["namespace", "service", "state", "ready"]
        )
        counts: dict[tuple[str, str, str, str], int] = {}
        for replica in self.engine.runtime.replicas():
            key = (replica.namespace, replica.service, replica.state.value, str(replica.ready).lower())
            counts[key] = counts.get(key, 0) + 1
        for key, count in sorted(counts.items()):
            replicas.add_metric(list(key), count)
        yield replicas


def engine_registry(engine: Any) -> CollectorRegistry:
    registry = CollectorRegistry()
    registry.register(EngineCollector(engine))
    return registry


def render_metrics(registry: CollectorRegistry) -> tuple[bytes, str]:
    return generate_latest(registry), CONTENT_TYPE_LATEST
