"""The gateway's per-request work without sockets: the compiled hot path against the Python one.

    .venv/bin/python bench/hotpath.py                 # 200 000 requests per copy, best of 3
    .venv/bin/python bench/hotpath.py --requests 50000

One process per copy (the Python one with GSE_GATEWAY_PURE=1) builds a gateway with 120
routes of two endpoints each, connects a client and pooled upstream connections to in-memory
transports, and pushes a request (the one wrk sends in bench/gateway.py) and nginx's answer
through them: parsing, routing, balancing, header rewriting and counting, no system calls.
It prints CPU microseconds per request for each copy and their ratio. Under valgrind
(`valgrind --tool=callgrind python bench/hotpath.py --one --requests N`, two values of N)
the difference gives instructions per request, which do not depend on a noisy machine.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time

REQUEST = b"GET /ns1/svc57/ HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n\r\n"
RESPONSE = (
    b"HTTP/1.1 200 OK\r\nServer: nginx/1.22.1\r\nDate: Thu, 03 Dec 2026 12:00:00 GMT\r\n"
    b"Content-Type: application/octet-stream\r\nContent-Length: 64\r\n"
    b"Last-Modified: Thu, 03 Dec 2026 11:00:00 GMT\r\nConnection: keep-alive\r\n"
    b'ETag: "692f9a30-40"\r\nAccept-Ranges: bytes\r\n\r\n' + b"x" * 63 + b"\n"
)


class MemoryTransport:
    """Just enough of an asyncio transport; writes land in a list (C-level methods only)."""

    def __init__(self) -> None:
        self.out: list[bytes] = []
        self.write = self.out.append
        self.writelines = self.out.extend
        self.is_closing = False.__bool__

    def get_extra_info(self, key: str, default: object = None) -> object:
        return ("127.0.0.1", 40000) if key == "peername" else default

    def set_write_buffer_limits(self, high: int, low: int) -> None: ...
    def pause_reading(self) -> None: ...
    def resume_reading(self) -> None: ...
    def close(self) -> None: ...
    def abort(self) -> None: ...
    def can_write_eof(self) -> bool:
        return True


def measure(requests: int) -> float:
    import uvloop

    from gs_engine.gateway import hotpath
    from gs_engine.gateway.proxy import ClientConnection
    from gs_engine.gateway.routes import Endpoint, RouteConfig
    from gs_engine.gateway.server import Gateway
    from gs_engine.gateway.upstream import UpstreamConnection

    loop = uvloop.new_event_loop()
    gateway = Gateway("127.0.0.1", 0)
    gateway.set_routes(
        [
            RouteConfig(
                name=f"ns{i % 7}/svc{i}",
                namespace=f"ns{i % 7}",
                service=f"svc{i}",
                path_prefix=f"/ns{i % 7}/svc{i}",
                endpoints=(
                    Endpoint(f"svc{i}-0", "127.0.0.1", 40001),
                    Endpoint(f"svc{i}-1", "127.0.0.1", 40002),
                ),
            )
            for i in range(120)
        ]
    )
    state = gateway._state  # the proxy's shared state, driven here without a server socket
    state.loop = loop
    for pool in state.pools.values():
        for _ in range(2):
            up = UpstreamConnection(pool)
            up.connection_made(MemoryTransport())  # type: ignore[arg-type]
            up.idle_since = loop.time()
            pool.idle.append(up)
    client = ClientConnection(state, loop)
    client_transport = MemoryTransport()
    client.connection_made(client_transport)  # type: ignore[arg-type]

    def one() -> None:
        client.data_received(REQUEST)
        client.queue[0].up.data_received(RESPONSE)

    for _ in range(2000):
        one()
    answer = b"".join(client_transport.out[-2:])
    if not answer.startswith(b"HTTP/1.1 200 OK") or not answer.endswith(b"x" * 63 + b"\n"):
        sys.exit(f"unexpected answer through the gateway: {answer[:200]!r}")
    best = float("inf")
    for _ in range(3):
        client_transport.out.clear()
        start = time.process_time()
        for _ in range(requests):
            one()
        best = min(best, (time.process_time() - start) / requests * 1e6)
    print(f"{hotpath.describe()}: {best:.2f} us per request (best of 3 x {requests})", flush=True)
    return best


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--requests", type=int, default=200_000)
    parser.add_argument("--one", action="store_true", help="measure only the copy this process imports")
    args = parser.parse_args()
    if args.one:
        measure(args.requests)
        return 0
    figures = []
    for pure in ("", "1"):
        env = {**os.environ, "GSE_GATEWAY_PURE": pure}
        out = subprocess.run(
            [sys.executable, __file__, "--one", "--requests", str(args.requests)],
            env=env,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        print(out)
        figures.append(float(out.split(": ")[1].split()[0]))
    compiled, python = figures
    print(f"compiled / python: {compiled / python:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
