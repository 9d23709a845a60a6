"""Prometheus exposition of the gateway's counters, read at scrape time (nothing on the hot path)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector, CollectorRegistry

if TYPE_CHECKING:
    from gs_engine.gateway.server import Gateway


class GatewayCollector(Collector):
    def __init__(self, gateway: Gateway) -> None:
        self._gateway = gateway

    def collect(self) -> Iterator[Metric]:
        gw = self._gateway
        routes = gw.route_stats()
        requests = CounterMetricFamily(
            "gse_gateway_requests", "Requests answered by the gateway", labels=["route", "code"]
        )
        inflight = GaugeMetricFamily(
            "gse_gateway_inflight_requests", "Requests in flight through the gateway", labels=["route"]
        )
        duration = HistogramMetricFamily(
            "gse_gateway_request_duration_seconds",
            "Time from a request's head to the end of its response",
            labels=["route"],
        )
        for name, stats in sorted(routes.items()):
            for code, n in sorted(stats.requests_by_code.items()):
                requests.add_metric([name, str(code)], n)
            inflight.add_metric([name], stats.inflight)
            buckets = [(_bound(b), n) for b, n in stats.latency_buckets]
            duration.add_metric([name], buckets, stats.latency_sum)
        yield requests
        yield inflight
        yield duration
        errors = CounterMetricFamily(
            "gse_gateway_upstream_errors",
            "Upstream failures: connect errors, resets, timeouts",
        )
        errors.add_metric([], gw.upstream_errors_total)
        yield errors
        per_endpoint = GaugeMetricFamily(
            "gse_gateway_endpoint_inflight_requests", "Requests in flight per endpoint", labels=["endpoint"]
        )
        for ep_id, ep in sorted(gw.endpoint_stats().items()):
            per_endpoint.add_metric([ep_id], ep.inflight)
        yield per_endpoint


def _bound(value: float) -> str:
    return "+Inf" if value == float("inf") else repr(value)


def register_gateway_metrics(gateway: Gateway, registry: CollectorRegistry) -> GatewayCollector:
    collector = GatewayCollector(gateway)
    registry.register(collector)
    return collector
