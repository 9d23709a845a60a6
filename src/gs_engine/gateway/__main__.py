"""Run the gateway alone: `python -m gs_engine.gateway --port P --routes routes.json`.

`--workers N` forks N processes that share the port through SO_REUSEPORT; `--metrics-port M`
serves Prometheus metrics. The routes file is a JSON list of objects with the RouteConfig
fields; `endpoints` is a list of {"id", "host", "port"}. Sending SIGHUP reloads the file.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import sys
from pathlib import Path
from typing import Any

from gs_engine.errors import GseError, InvalidInput
from gs_engine.gateway import hotpath
from gs_engine.gateway.routes import Endpoint, RouteConfig
from gs_engine.gateway.server import Gateway

_FIELDS = set(RouteConfig.__dataclass_fields__)


def load_routes(path: Path) -> list[RouteConfig]:
    try:
        raw = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise InvalidInput(
            f"cannot read routes file {path}: {exc}", fix="give a JSON list of routes"
        ) from exc
    if not isinstance(raw, list):
        raise InvalidInput(f"routes file {path} is not a JSON list", fix="write [{...}, ...]")
    return [_route(item, i) for i, item in enumerate(raw)]


def _route(item: Any, i: int) -> RouteConfig:
    if not isinstance(item, dict):
        raise InvalidInput(f"route #{i} is not an object", field=f"[{i}]")
    unknown = set(item) - _FIELDS
    if unknown:
        raise InvalidInput(
            f"route #{i} has unknown fields {sorted(unknown)}",
            fix=f"use only {sorted(_FIELDS)}",
            field=f"[{i}]",
        )
    data = dict(item)
    try:
        data["endpoints"] = tuple(
            Endpoint(str(e["id"]), str(e["host"]), int(e["port"])) for e in data.get("endpoints", ())
        )
        if "name" not in data:
            data["name"] = f"{data['namespace']}/{data['service']}"
        if "path_prefix" not in data:
            data["path_prefix"] = f"/{data['namespace']}/{data['service']}"
        return RouteConfig(**data)
    except (KeyError, TypeError, ValueError) as exc:
        raise InvalidInput(
            f"route #{i} is incomplete: {exc}",
            fix="give namespace, service and endpoints [{id, host, port}]",
            field=f"[{i}]",
        ) from exc


async def _serve(
    host: str, port: int, routes_file: Path | None, *, reuse_port: bool, metrics_port: int | None
) -> None:
    gateway = Gateway(host, port, reuse_port=reuse_port)
    if routes_file is not None:
        gateway.set_routes(load_routes(routes_file))
    await gateway.start()
    if metrics_port is not None:
        _serve_metrics(gateway, host, metrics_port)
    print(
        f"gateway listening on http://{host}:{gateway.port}"
        f" (pid {os.getpid()}, hot path {hotpath.describe()})",
        file=sys.stderr,
        flush=True,
    )
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    if routes_file is not None:

        def reload() -> None:
            try:
                gateway.set_routes(load_routes(routes_file))
            except GseError as exc:
                print(f"routes not reloaded: {exc}", file=sys.stderr, flush=True)

        loop.add_signal_handler(signal.SIGHUP, reload)
    await stop.wait()
    await gateway.close()


def _serve_metrics(gateway: Gateway, host: str, port: int) -> None:
    """Prometheus text on http://host:port/metrics, served from a thread (scrapes only)."""
    from prometheus_client import CollectorRegistry, start_http_server

    from gs_engine.gateway.metrics import register_gateway_metrics

    registry = CollectorRegistry()
    register_gateway_metrics(gateway, registry)
    start_http_server(port, addr=host, registry=registry)


def _run_one(args: argparse.Namespace, *, reuse_port: bool, metrics_port: int | None) -> int:
    try:
        import uvloop

        uvloop.run(
            _serve(args.host, args.port, args.routes, reuse_port=reuse_port, metrics_port=metrics_port)
        )
    except GseError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 0
    return 0


def _run_workers(args: argparse.Namespace) -> int:
    """Fork `args.workers` processes that each bind the port with SO_REUSEPORT.

    The kernel spreads new connections over them. The parent forwards SIGTERM, SIGINT and
    SIGHUP to every worker and exits once all have; worker i serves metrics on
    metrics_port + i when a metrics port is given.
    """
    if args.port == 0:
        raise InvalidInput(
            "--workers above 1 needs a fixed --port", fix="give --port a number, not 0", field="port"
        )
    children: list[int] = []
    for i in range(args.workers):
        pid = os.fork()
        if pid == 0:
            metrics = args.metrics_port + i if args.metrics_port is not None else None
            code = _run_one(args, reuse_port=True, metrics_port=metrics)
            os._exit(code)
        children.append(pid)

    def forward(signum: int, _frame: object) -> None:
        for child in children:
            try:
                os.kill(child, signal.SIGTERM if signum == signal.SIGINT else signum)
            except ProcessLookupError:
                pass

    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, forward)
    worst = 0
    for child in children:
        while True:
            try:
                _, status = os.waitpid(child, 0)
                break
            except InterruptedError:
                continue
        worst = max(worst, os.waitstatus_to_exitcode(status) if status else 0)
    return 0 if worst < 0 else worst


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m gs_engine.gateway", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument("--routes", type=Path, default=None, help="JSON file with a list of routes")
    parser.add_argument(
        "--workers", type=int, default=1, help="worker processes sharing the port (SO_REUSEPORT)"
    )
    parser.add_argument(
        "--metrics-port", type=int, default=None, help="serve Prometheus metrics on this port"
    )
    args = parser.parse_args(argv)
    if args.workers < 1:
        print("error: --workers must be at least 1", file=sys.stderr)
        return 2
    if args.workers == 1:
        return _run_one(args, reuse_port=False, metrics_port=args.metrics_port)
    try:
        return _run_workers(args)
    except GseError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
