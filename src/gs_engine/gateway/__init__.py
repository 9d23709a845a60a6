"""The gateway: GS-Engine's HTTP/1.1 data plane (routes, balancer, pooled upstreams, metrics)."""

from gs_engine.gateway.balancer import Balancer
from gs_engine.gateway.metrics import register_gateway_metrics
from gs_engine.gateway.routes import CompiledRoute, Endpoint, RouteConfig, RouteTable
from gs_engine.gateway.server import Gateway
from gs_engine.gateway.stats import EndpointStats, RouteStats

__all__ = [
    "Balancer",
    "CompiledRoute",
    "Endpoint",
    "EndpointStats",
    "Gateway",
    "RouteConfig",
    "RouteStats",
    "RouteTable",
    "register_gateway_metrics",
]
