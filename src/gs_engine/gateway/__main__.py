"""Run the gateway alone: `python -m gs_engine.gateway --port P --routes routes.json`.

The routes file is a JSON list of objects with the RouteConfig fields; `endpoints` is a list
of {"id", "host", "port"}. Sending SIGHUP reloads the file.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import sys
from pathlib import Path
from typing import Any

from gs_engine.errors import GseError, InvalidInput
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


async def _serve(host: str, port: int, routes_file: Path | None) -> None:
    gateway = Gateway(host, port)
    if routes_file is not None:
        gateway.set_routes(load_routes(routes_file))
    await gateway.start()
    print(f"gateway listening on http://{host}:{gateway.port}", file=sys.stderr, flush=True)
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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m gs_engine.gateway", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument("--routes", type=Path, default=None, help="JSON file with a list of routes")
    args = parser.parse_args(argv)
    try:
        import uvloop

        uvloop.run(_serve(args.host, args.port, args.routes))
    except GseError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 0
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
