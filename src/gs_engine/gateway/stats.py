"""Counters kept on the hot path as plain ints and lists, and the snapshots read from them."""

from __future__ import annotations

from bisect import bisect_left
from dataclasses import dataclass

# Upper bounds (seconds) of the request duration histogram; the last bucket is +Inf.
LATENCY_BUCKETS: tuple[float, ...] = (
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
)


class RouteCounters:
    """Mutable per-route counters; only the gateway's event loop writes them."""

    __slots__ = ("name", "by_code", "inflight", "buckets", "duration_sum", "count")

    def __init__(self, name: str) -> None:
        self.name = name
        self.by_code: dict[int, int] = {}
        self.inflight = 0
        self.buckets = [0] * (len(LATENCY_BUCKETS) + 1)
        self.duration_sum = 0.0
        self.count = 0

    def observe(self, status: int, seconds: float) -> None:
        self.by_code[status] = self.by_code.get(status, 0) + 1
        self.buckets[bisect_left(LATENCY_BUCKETS, seconds)] += 1
        self.duration_sum += seconds
        self.count += 1

    def snapshot(self) -> RouteStats:
        classes: dict[str, int] = {}
        for code, n in self.by_code.items():
            key = f"{code // 100}xx"
            classes[key] = classes.get(key, 0) + n
        cumulative: list[tuple[float, int]] = []
        running = 0
        for bound, n in zip((*LATENCY_BUCKETS, float("inf")), self.buckets, strict=True):
            running += n
            cumulative.append((bound, running))
        return RouteStats(
            route=self.name,
            requests_by_class=classes,
            requests_by_code=dict(self.by_code),
            inflight=self.inflight,
            latency_buckets=tuple(cumulative),
            latency_sum=self.duration_sum,
            requests_total=self.count,
        )


class EndpointCounters:
    __slots__ = ("requests_total", "errors_total")

    def __init__(self) -> None:
        self.requests_total = 0
        self.errors_total = 0


@dataclass(frozen=True)
class RouteStats:
    route: str
    requests_by_class: dict[str, int]  # "2xx" -> count
    requests_by_code: dict[int, int]
    inflight: int
    latency_buckets: tuple[tuple[float, int], ...]  # (upper bound, cumulative count), last is +Inf
    latency_sum: float
    requests_total: int


@dataclass(frozen=True)
class EndpointStats:
    endpoint_id: str
    inflight: int
    requests_total: int
    errors_total: int


@dataclass(frozen=True)
class EndpointLoad:
    """What the autoscaler reads per replica each second."""

    endpoint_id: str
    inflight: int
    requests_last_second: int
    ejected: bool = False
