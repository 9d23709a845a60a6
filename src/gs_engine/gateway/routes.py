"""The route table: pure data in, a compiled matcher out.

Routes are grouped by host (exact, lower-cased, port ignored) and indexed by path prefix in
dicts, so a match costs one dict lookup per path segment, whatever the number of routes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from gs_engine.errors import Conflict, InvalidInput


@dataclass(frozen=True)
class Endpoint:
    """One READY replica a route may send to."""

    id: str
    host: str
    port: int


@dataclass(frozen=True)
class RouteConfig:
    name: str  # "namespace/service"
    namespace: str
    service: str
    path_prefix: str  # e.g. "/default/digits"
    host: str | None = None  # exact Host match (port ignored, case-insensitive); None = any host
    strip_prefix: bool = True  # "/default/digits/predict" -> "/predict" upstream ("" -> "/")
    endpoints: tuple[Endpoint, ...] = ()  # READY replicas only; empty = answer 503
    connect_timeout: float = 2.0
    response_timeout: float = 60.0  # to the first response byte
    idle_timeout: float = 60.0  # an idle pooled connection, or a body either way that stalls this long
    retries: int = 1  # further attempts on another replica when connecting fails
    retry_idempotent: bool = False  # also retry GET/HEAD/OPTIONS/PUT/DELETE reset before any answer
    retry_budget: float = 0.2  # retries per second at most 3 + this share of the route's requests
    rate_limit: float | None = None  # requests per second (token bucket); None = unlimited
    rate_burst: float | None = None  # bucket size; None = max(1, rate_limit)
    max_body_bytes: int | None = None  # larger request bodies get 413; None = unlimited
    activate: bool = False  # at zero endpoints, hold requests (scale from zero) instead of 503
    activation_timeout: float = 30.0  # how long a held request may wait for a ready replica
    max_held: int = 1000  # held requests per route; more get 503


@dataclass(frozen=True)
class CompiledRoute:
    """A route ready for the hot path; `index` is its position in `RouteTable.routes`."""

    config: RouteConfig
    index: int
    prefix: bytes  # normalised: no trailing "/", "" for the root
    host: bytes | None
    strip: bool
    endpoint_ids: tuple[str, ...] = field(default=())


def normalise_prefix(prefix: str) -> str:
    return prefix.rstrip("/")


def host_key(host: bytes) -> bytes:
    """Lower-case a Host header value and drop its port (IPv6 literals keep their brackets)."""
    host = host.strip().lower()
    if host.startswith(b"["):
        end = host.find(b"]")
        return host[: end + 1] if end > 0 else host
    colon = host.find(b":")
    return host if colon < 0 else host[:colon]


def _validate(route: RouteConfig) -> None:
    if not route.path_prefix.startswith("/"):
        raise InvalidInput(
            f"route {route.name!r}: path_prefix {route.path_prefix!r} does not start with '/'",
            fix="write the prefix as an absolute path such as '/default/digits'",
            field="path_prefix",
        )
    if any(c in route.path_prefix for c in "?# \t\r\n"):
        raise InvalidInput(
            f"route {route.name!r}: path_prefix {route.path_prefix!r} contains a query, fragment or space",
            fix="use only the path part, e.g. '/default/digits'",
            field="path_prefix",
        )
    if route.host is not None and (not route.host or any(c in route.host for c in "/ \t\r\n")):
        raise InvalidInput(
            f"route {route.name!r}: host {route.host!r} is not a host name",
            fix="give a bare host name such as 'digits.example.com', or leave host unset",
            field="host",
        )
    for ep in route.endpoints:
        if not 0 < ep.port < 65536:
            raise InvalidInput(
                f"route {route.name!r}: endpoint {ep.id!r} has port {ep.port}",
                fix="give a TCP port between 1 and 65535",
                field="endpoints.port",
            )
    if route.retries < 0:
        raise InvalidInput(
            f"route {route.name!r}: retries is {route.retries}",
            fix="set retries to 0 (never retry) or more",
            field="retries",
        )
    if route.retry_budget < 0:
        raise InvalidInput(
            f"route {route.name!r}: retry_budget is negative",
            fix="give a share of requests such as 0.2",
            field="retry_budget",
        )
    for name in ("rate_limit", "rate_burst", "max_body_bytes"):
        value = getattr(route, name)
        if value is not None and value <= 0:
            raise InvalidInput(
                f"route {route.name!r}: {name} must be positive",
                fix=f"set {name} above 0, or leave it unset for no limit",
                field=name,
            )
    for name in ("connect_timeout", "response_timeout", "idle_timeout"):
        if getattr(route, name) <= 0:
            raise InvalidInput(
                f"route {route.name!r}: {name} must be positive",
                fix=f"set {name} to a number of seconds above 0",
                field=name,
            )


CACHE_ENTRIES = 4096  # remembered matches per table (cleared when full)
CACHE_MAX_PATH = 512  # longer paths are matched every time, not remembered
_UNSEEN: tuple[CompiledRoute, bytes] = (
    CompiledRoute(RouteConfig("-", "-", "-", "/"), -1, b"", None, False),
    b"",
)


class RouteTable:
    """An immutable, compiled set of routes. Build once per change; match per request."""

    __slots__ = ("routes", "_by_host", "_any_host", "_cache")

    def __init__(
        self,
        routes: tuple[CompiledRoute, ...],
        by_host: dict[bytes, dict[bytes, CompiledRoute]],
        any_host: dict[bytes, CompiledRoute],
    ) -> None:
        self.routes = routes
        self._by_host = by_host
        self._any_host = any_host
        # (host, path) -> match, filled as requests come: a repeat path costs one dict lookup
        self._cache: dict[bytes, tuple[CompiledRoute, bytes] | None] = {}

    @classmethod
    def build(cls, routes: Sequence[RouteConfig]) -> RouteTable:
        compiled: list[CompiledRoute] = []
        by_host: dict[bytes, dict[bytes, CompiledRoute]] = {}
        any_host: dict[bytes, CompiledRoute] = {}
        for route in routes:
            _validate(route)
            prefix = normalise_prefix(route.path_prefix).encode("ascii")
            host = host_key(route.host.encode("idna")) if route.host is not None else None
            c = CompiledRoute(
                config=route,
                index=len(compiled),
                prefix=prefix,
                host=host,
                strip=route.strip_prefix,
                endpoint_ids=tuple(ep.id for ep in route.endpoints),
            )
            bucket = any_host if host is None else by_host.setdefault(host, {})
            other = bucket.get(prefix)
            if other is not None:
                where = f"host {route.host!r}" if host is not None else "any host"
                raise Conflict(
                    f"routes {other.config.name!r} and {route.name!r} both claim prefix "
                    f"{route.path_prefix!r} on {where}",
                    fix="give one of the services another path prefix or host",
                    field="path_prefix",
                )
            bucket[prefix] = c
            compiled.append(c)
        return cls(tuple(compiled), by_host, any_host)

    def __len__(self) -> int:
        return len(self.routes)

    def match(self, host: bytes | None, path: bytes) -> tuple[CompiledRoute, bytes] | None:
        """The route for a request target, and the target to send upstream.

        `path` is the origin-form target (query included). The longest prefix ending on a
        segment boundary wins; routes for the request's host are tried before any-host routes.
        """
        q = path.find(b"?")
        if q >= 0:
            only_path, query = path[:q], path[q:]
        else:
            only_path, query = path, b""
        # host routes make the host part of the key ("\n" never occurs in a parsed header value)
        key = only_path if host is None or not self._by_host else host + b"\n" + only_path
        cache = self._cache
        hit = cache.get(key, _UNSEEN)
        if hit is _UNSEEN:
            hit = self._match_path(host, only_path)
            if len(only_path) <= CACHE_MAX_PATH:
                if len(cache) >= CACHE_ENTRIES:
                    cache.clear()
                cache[key] = hit
        if hit is None:
            return None
        found, rest = hit
        if not found.strip:
            return found, path
        return found, rest + query if query else rest

    def _match_path(self, host: bytes | None, only_path: bytes) -> tuple[CompiledRoute, bytes] | None:
        """The route for a path without its query, and that path with the prefix stripped."""
        found: CompiledRoute | None = None
        if host is not None and self._by_host:
            bucket = self._by_host.get(host_key(host))
            if bucket is not None:
                found = _longest(bucket, only_path)
        if found is None:
            found = _longest(self._any_host, only_path)
            if found is None:
                return None
        if not found.strip:
            return found, only_path
        return found, only_path[len(found.prefix) :] or b"/"


def _longest(bucket: dict[bytes, CompiledRoute], path: bytes) -> CompiledRoute | None:
    if not bucket:
        return None
    candidate = path.rstrip(b"/") if len(path) > 1 else b""
    while True:
        hit = bucket.get(candidate)
        if hit is not None:
            return hit
        if not candidate:
            return None
        cut = candidate.rfind(b"/")
        if cut < 0:
            return None
        candidate = candidate[:cut]
