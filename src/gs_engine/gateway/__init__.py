"""The gateway: GS-Engine's HTTP/1.1 data plane (routes, balancer, pooled upstreams, metrics)."""

from gs_engine.gateway import hotpath

hotpath.install()

# isort: split
from gs_engine.gateway.balancer import Balancer
from gs_engine.gateway.limits import RetryBudget, TokenBucket
from gs_engine.gateway.metrics import register_gateway_metrics
from gs_engine.gateway.outliers import OutlierDetector
from gs_engine.gateway.routes import CompiledRoute, Endpoint, RouteConfig, RouteTable
from gs_engine.gateway.server import Gateway
from gs_engine.gateway.stats import EndpointLoad, EndpointStats, RouteStats

__all__ = [
    "Balancer",
    "CompiledRoute",
    "Endpoint",
    "EndpointLoad",
    "EndpointStats",
    "Gateway",
    "OutlierDetector",
    "RetryBudget",
    "RouteConfig",
    "RouteStats",
    "RouteTable",
    "TokenBucket",
    "register_gateway_metrics",
]
