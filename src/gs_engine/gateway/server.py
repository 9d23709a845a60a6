"""The Gateway: binds the listening socket, owns the route table, pools and counters.

The engine calls `set_routes` whenever READY replicas or routes change; the swap is one
attribute assignment on the event loop, so a request sees either the old table or the new.
"""

from __future__ import annotations

import asyncio
import errno
from collections.abc import Callable, Sequence
from typing import cast

from gs_engine.errors import Conflict, InvalidInput
from gs_engine.gateway.limits import RetryBudget, TokenBucket
from gs_engine.gateway.outliers import OutlierDetector
from gs_engine.gateway.proxy import ClientConnection, ProxyState, RouteRuntime
from gs_engine.gateway.routes import Endpoint, RouteConfig, RouteTable
from gs_engine.gateway.stats import EndpointLoad, EndpointStats, RouteCounters, RouteStats
from gs_engine.gateway.upstream import EndpointPool

SWEEP_INTERVAL = 1.0


class Gateway:
    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 8080,
        *,
        request_id_header: str = "x-request-id",
        max_request_line: int = 8192,
        max_header_bytes: int = 65536,
        client_idle_timeout: float = 75.0,
        max_idle_per_endpoint: int = 64,
        random: Callable[[], float] | None = None,
        reuse_port: bool = False,
        header_timeout: float = 10.0,
        max_connections_per_client: int | None = None,
        eject_after: int = 5,
        eject_seconds: float = 5.0,
        eject_max_seconds: float = 60.0,
    ) -> None:
        """Bind on `start`; `set_routes` at any time.

        `reuse_port` sets SO_REUSEPORT so several worker processes can share one port.
        `header_timeout`: a client must send a request head within this many seconds of its
        first byte (else 408 and close). `max_connections_per_client`: open connections one
        client address may hold (more are answered 429 and closed). `eject_after` failures in
        a row (connect errors, resets, 5xx) take a replica out for `eject_seconds`, doubled
        on each ejection in a row up to `eject_max_seconds`.
        """
        if header_timeout <= 0:
            raise InvalidInput(
                "header_timeout must be positive", fix="give seconds above 0", field="header_timeout"
            )
        if max_connections_per_client is not None and max_connections_per_client < 1:
            raise InvalidInput(
                "max_connections_per_client must be at least 1",
                fix="give 1 or more, or leave it unset for no cap",
                field="max_connections_per_client",
            )
        if not request_id_header or any(c in request_id_header for c in ": \t\r\n"):
            raise InvalidInput(
                f"request id header {request_id_header!r} is not a header name",
                fix="use a token such as 'x-request-id'",
                field="request_id_header",
            )
        self._host = host
        self._port = port
        self._state = ProxyState(
            request_id_header=request_id_header,
            max_url=max_request_line,
            max_header_bytes=max_header_bytes,
            random=random,
            outliers=OutlierDetector(eject_after, eject_seconds, eject_max_seconds),
            max_per_client=max_connections_per_client,
            header_timeout=header_timeout,
        )
        self._client_idle_timeout = client_idle_timeout
        self._max_idle = max_idle_per_endpoint
        self._reuse_port = reuse_port
        self._server: asyncio.Server | None = None
        self._sweeper: asyncio.Task[None] | None = None
        self._counters: dict[str, RouteCounters] = {}
        self._runtimes_by_name: dict[str, RouteRuntime] = {}
        self._load: dict[str, int] = {}  # endpoint id -> requests sent in the last full second
        self._load_marks: dict[str, int] = {}

    # -- lifecycle ----------------------------------------------------------------------------
    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        state = self._state
        state.loop = loop
        try:
            self._server = await loop.create_server(
                # a compiled ClientConnection cannot subclass asyncio.Protocol; it has its methods
                lambda: cast(asyncio.Protocol, ClientConnection(state, loop)),
                self._host,
                self._port,
                backlog=4096,
                reuse_port=self._reuse_port or None,
            )
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise Conflict(
                    f"gateway port {self._port} on {self._host} is already in use",
                    fix="stop the other process or pick another port with GSE_GATEWAY_PORT or --gateway-port",
                    field="gateway_port",
                ) from exc
            raise InvalidInput(
                f"gateway cannot listen on {self._host}:{self._port}: {exc.strerror or exc}",
                fix="set a local address with GSE_GATEWAY_HOST / --gateway-host and a free port "
                "with GSE_GATEWAY_PORT / --gateway-port",
                field="gateway_port",
            ) from exc
        self._sweeper = loop.create_task(self._sweep_forever())

    async def close(self, grace: float = 10.0) -> None:
        """Stop accepting, let in-flight requests finish (up to `grace` seconds), close pools."""
        server = self._server
        if server is None:
            return
        self._server = None
        server.close()
        if self._sweeper is not None:
            self._sweeper.cancel()
        state = self._state
        for client in list(state.clients):
            if not client.queue:
                client.close()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + grace
        while any(c.queue for c in state.clients) and loop.time() < deadline:
            await asyncio.sleep(0.01)
        for client in list(state.clients):
            if client.transport is not None:
                client.transport.abort()
        for pool in state.pools.values():
            pool.close_all()
        await server.wait_closed()

    async def __aenter__(self) -> Gateway:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    @property
    def port(self) -> int:
        if self._server is None or not self._server.sockets:
            return self._port
        return int(self._server.sockets[0].getsockname()[1])

    # -- routes -------------------------------------------------------------------------------
    def set_routes(self, routes: Sequence[RouteConfig]) -> None:
        """Compile and swap in a new table. Raises InvalidInput/Conflict and keeps the old one."""
        table = RouteTable.build(routes)
        state = self._state
        old_pools = state.pools
        pools: dict[str, EndpointPool] = {}
        counters: dict[str, RouteCounters] = {}
        runtimes: list[RouteRuntime] = []
        for compiled in table.routes:
            cfg = compiled.config
            route_pools: list[EndpointPool] = []
            for ep in cfg.endpoints:
                pool = pools.get(ep.id)
                if pool is None:
                    pool = old_pools.get(ep.id)
                    if pool is None or not _same_address(pool.endpoint, ep):
                        pool = EndpointPool(ep, self._max_idle)
                    pools[ep.id] = pool
                elif not _same_address(pool.endpoint, ep):
                    raise Conflict(
                        f"endpoint id {ep.id!r} is given two addresses in route {cfg.name!r}",
                        fix="give every replica endpoint a unique id",
                        field="endpoints.id",
                    )
                route_pools.append(pool)
            counter = counters.get(cfg.name) or self._counters.get(cfg.name) or RouteCounters(cfg.name)
            counters[cfg.name] = counter
            old = self._runtimes_by_name.get(cfg.name)
            bucket = None
            if cfg.rate_limit is not None:
                burst = cfg.rate_burst if cfg.rate_burst is not None else max(1.0, cfg.rate_limit)
                if (
                    old is not None
                    and old.bucket is not None
                    and (old.bucket.rate, old.bucket.burst)
                    == (
                        cfg.rate_limit,
                        burst,
                    )
                ):
                    bucket = old.bucket  # a route change does not refill the bucket
                else:
                    bucket = TokenBucket(cfg.rate_limit, burst, _now())
            budget = old.budget if old is not None and old.budget.ratio == cfg.retry_budget else None
            runtimes.append(
                RouteRuntime(
                    compiled, counter, tuple(route_pools), bucket, budget or RetryBudget(cfg.retry_budget)
                )
            )
        # the swap: one table and its runtimes, both read together on the loop thread
        state.table, state.runtimes, state.pools = table, runtimes, pools
        self._counters = counters
        self._runtimes_by_name = {rt.name: rt for rt in runtimes}
        state.activator.release(self._runtimes_by_name, _now())
        state.outliers.forget(set(pools))
        for ep_id, pool in old_pools.items():
            if pools.get(ep_id) is not pool:
                pool.removed = True
                pool.close_idle()

    def set_activation_handler(self, handler: Callable[[str, str], None] | None) -> None:
        """Called with (namespace, service) when a request is held for a route at zero endpoints."""
        self._state.activator.handler = handler

    def held(self, route_name: str) -> int:
        """Requests the activator holds for `route_name` ("namespace/service") right now."""
        return self._state.activator.held(route_name)

    def inflight(self, endpoint_id: str) -> int:
        return self._state.balancer.inflight(endpoint_id)

    def endpoint_stats(self) -> dict[str, EndpointStats]:
        state = self._state
        return {
            ep_id: EndpointStats(
                endpoint_id=ep_id,
                inflight=state.balancer.inflight(ep_id),
                requests_total=pool.counters.requests_total,
                errors_total=pool.counters.errors_total,
            )
            for ep_id, pool in state.pools.items()
        }

    def load_report(self) -> dict[str, EndpointLoad]:
        """Per replica: requests in flight now, and requests sent to it in the last full second.

        The gateway's ticker closes a one-second window each second; the autoscaler polls this
        (or reads it once a second) for concurrency and request rate per replica.
        """
        state = self._state
        out: dict[str, EndpointLoad] = {}
        for ep_id in state.pools:
            out[ep_id] = EndpointLoad(
                endpoint_id=ep_id,
                inflight=state.balancer.inflight(ep_id),
                requests_last_second=self._load.get(ep_id, 0),
                ejected=ep_id in state.outliers.ejected,
            )
        return out

    def _tick_load(self) -> None:
        """Close the one-second window: requests sent to each replica since the last tick."""
        marks: dict[str, int] = {}
        load: dict[str, int] = {}
        old = self._load_marks
        for ep_id, pool in self._state.pools.items():
            total = pool.counters.requests_total
            marks[ep_id] = total
            load[ep_id] = total - old.get(ep_id, 0)
        self._load_marks = marks
        self._load = load

    def route_stats(self) -> dict[str, RouteStats]:
        out = {name: c.snapshot() for name, c in self._counters.items()}
        out["-"] = self._state.unmatched.snapshot()
        return out

    @property
    def upstream_errors_total(self) -> int:
        return self._state.upstream_errors

    def idle_connections(self, endpoint_id: str) -> int:
        pool = self._state.pools.get(endpoint_id)
        return len(pool.idle) if pool is not None else 0

    # -- housekeeping ---------------------------------------------------------------------------
    async def _sweep_forever(self) -> None:
        """The gateway's one ticker: load windows each second; head, idle, stall and pool timeouts."""
        loop = asyncio.get_running_loop()
        state = self._state
        step = min(SWEEP_INTERVAL, state.header_timeout / 4)
        next_load = loop.time() + 1.0
        while True:
            await asyncio.sleep(step)
            now = loop.time()
            if now >= next_load:
                next_load = max(next_load + 1.0, now + 0.5)
                self._tick_load()
                for rt in state.runtimes:
                    for pool in rt.pools:
                        if pool.idle:
                            pool.sweep(now, rt.idle_timeout)
            head_limit = state.header_timeout
            idle_limit = self._client_idle_timeout
            for client in list(state.clients):
                queue = client.queue
                if queue:
                    if queue[0].deadline:
                        queue[0].check_deadline(now)
                    queue[0].check_idle(now)
                if client.in_head:
                    if now - client.head_started > head_limit:
                        client.head_timed_out()
                elif not client.queue and client.tunnel is None and now - client.last_active > idle_limit:
                    client.close()


def _now() -> float:
    try:
        return asyncio.get_running_loop().time()
    except RuntimeError:
        return 0.0


def _same_address(a: Endpoint, b: Endpoint) -> bool:
    return a.host == b.host and a.port == b.port
