"""The FastAPI application: /api/v1 (token required), /healthz, /readyz, /metrics."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response

from gs_engine import __version__
from gs_engine.api import services
from gs_engine.api.problems import install_problem_handlers
from gs_engine.gateway.metrics import register_gateway_metrics
from gs_engine.observability.metrics import engine_registry, render_metrics


def create_app(engine: Any) -> FastAPI:
    app = FastAPI(
        title="GS-Engine API",
        version=__version__,
        description=(
            "Deploy AI services on this edge node: services, replicas, routes, nodes and events. "
            "Every /api/v1 route needs `Authorization: Bearer TOKEN` "
            "(the admin token is in GSE_HOME/admin.token)."
        ),
        openapi_url="/openapi.json",
        docs_url="/docs",
        redoc_url=None,
    )
    app.state.engine = engine
    app.state.registry = engine_registry(engine)
    register_gateway_metrics(engine.gateway, app.state.registry)
    install_problem_handlers(app)
    app.include_router(services.router)
    try:
        from gs_engine.api import autoscaling
    except ImportError:  # the simulator ships with the autoscaling package
        pass
    else:
        app.include_router(autoscaling.router)

    @app.get("/healthz", tags=["health"], summary="The process is alive")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz", tags=["health"], summary="The engine has started and its store answers")
    async def readyz(request: Request) -> JSONResponse:
        eng = request.app.state.engine
        ok = bool(eng.ready)
        return JSONResponse({"status": "ready" if ok else "starting"}, status_code=200 if ok else 503)

    @app.get("/metrics", tags=["health"], summary="Prometheus metrics", response_class=Response)
    async def metrics(request: Request) -> Response:
        body, content_type = render_metrics(request.app.state.registry)
        return Response(body, media_type=content_type)

    return app
