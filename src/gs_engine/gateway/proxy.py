"""The request path: one asyncio Protocol per client connection, one Exchange per request.

A client connection parses requests with httptools and queues one Exchange per request;
only the head of the queue talks to a replica, so pipelined requests are answered in order.
Bodies stream both ways through transport writes, with reading paused on the other side
whenever a write buffer fills. Everything here runs on the event loop and keeps its counts
in plain ints; nothing on this path logs, allocates a task (except to open a new upstream
connection) or looks anything up beyond dicts built ahead of time.

Where a C compiler is at hand this module is compiled by Cython, typed by `proxy.pxd`
(extension types, typed locals for the per-request methods; see `hotpath`): keep the two in
step when adding an attribute or changing a hot method's locals.
"""

from __future__ import annotations

import asyncio
from bisect import bisect_left
from collections import deque
from collections.abc import Callable
from typing import cast

import httptools

from gs_engine.gateway.activator import Activator
from gs_engine.gateway.balancer import Balancer
from gs_engine.gateway.http1 import (
    HOP_BY_HOP,
    PLAIN_CONNECTION,
    RequestIds,
    connection_tokens,
    header_lines_pattern,
    is_chunked_final,
    join_bytes,
    problem_body,
    problem_response,
    request_id,
    response_fields,
    sane_request_id,
)
from gs_engine.gateway.limits import RetryBudget, TokenBucket, retry_after_seconds
from gs_engine.gateway.outliers import OutlierDetector
from gs_engine.gateway.routes import CompiledRoute, RouteTable
from gs_engine.gateway.stats import LATENCY_BUCKETS, RouteCounters
from gs_engine.gateway.upstream import WRITE_HIGH_WATER, WRITE_LOW_WATER, EndpointPool, UpstreamConnection

IDEMPOTENT: frozenset[bytes] = frozenset({b"GET", b"HEAD", b"OPTIONS", b"PUT", b"DELETE", b"TRACE"})
LINGER_SECONDS = 2.0  # how long a refused client may keep sending before it is cut off
REPLAY_LIMIT = 64 * 1024  # request bytes kept to retry a stale keep-alive connection
PENDING_LIMIT = 256 * 1024  # request bytes buffered before reading from the client pauses
SMALL_WRITE = 16 * 1024  # a response body this small is copied after its head into one write
# response timeouts at least this long are checked by the gateway's 1 s sweep instead of a timer
COARSE_TIMEOUT = 5.0

# why reading from a client is paused (bit flags)
_UPSTREAM_FULL = 1
_PENDING_FULL = 2

# how a response body is framed towards the client
_NO_BODY = 0
_RAW = 1  # Content-Length from upstream, bytes copied as they are
_CHUNK = 2  # re-framed as chunked
_CLOSE = 3  # close-delimited (HTTP/1.0 client), connection closed at the end
_TUNNEL = 4  # after 101 Switching Protocols


class _Reject(Exception):
    """Raised inside a parser callback to stop parsing with a given status."""


class RouteRuntime:
    """A compiled route plus what the proxy needs at request time, built by `set_routes`."""

    __slots__ = (
        "route",
        "name",
        "service",
        "counters",
        "pools",
        "ids",
        "connect_timeout",
        "response_timeout",
        "idle_timeout",
        "index_of",
        "retries",
        "retry_idempotent",
        "budget",
        "bucket",
        "max_body",
        "activate",
        "activation_timeout",
        "max_held",
        "namespace",
        "service_name",
    )

    def __init__(
        self,
        route: CompiledRoute,
        counters: RouteCounters,
        pools: tuple[EndpointPool, ...],
        bucket: TokenBucket | None = None,
        budget: RetryBudget | None = None,
    ) -> None:
        cfg = route.config
        self.route = route
        self.name = cfg.name
        self.service = f"{cfg.namespace}/{cfg.service}"
        self.counters = counters
        self.pools = pools
        self.ids = tuple(p.endpoint.id for p in pools)
        self.connect_timeout = cfg.connect_timeout
        self.response_timeout = cfg.response_timeout
        self.idle_timeout = cfg.idle_timeout
        self.index_of = {ep_id: i for i, ep_id in enumerate(self.ids)}
        self.retries = cfg.retries
        self.retry_idempotent = cfg.retry_idempotent
        self.budget = budget if budget is not None else RetryBudget(cfg.retry_budget)
        self.bucket = bucket
        self.max_body = cfg.max_body_bytes
        self.activate = cfg.activate
        self.activation_timeout = cfg.activation_timeout
        self.max_held = cfg.max_held
        self.namespace = cfg.namespace
        self.service_name = cfg.service


class ProxyState:
    """What every connection shares: the current table, pools, balancer and counters."""

    __slots__ = (
        "table",
        "runtimes",
        "balancer",
        "pools",
        "ids",
        "rid_header",
        "max_url",
        "max_header_bytes",
        "unmatched",
        "upstream_errors",
        "clients",
        "loop",
        "outliers",
        "max_per_client",
        "per_client",
        "header_timeout",
        "activator",
        "via_rid",
        "via_line",
        "special_request_fields",
    )

    def __init__(
        self,
        *,
        request_id_header: str,
        max_url: int,
        max_header_bytes: int,
        random: Callable[[], float] | None = None,
        outliers: OutlierDetector | None = None,
        max_per_client: int | None = None,
        header_timeout: float = 10.0,
    ) -> None:
        self.table = RouteTable.build(())
        self.runtimes: list[RouteRuntime] = []
        self.balancer = Balancer(random)
        self.pools: dict[str, EndpointPool] = {}
        self.ids = RequestIds()
        self.rid_header = request_id_header.lower().encode("ascii")
        self.via_rid = b"\r\nvia: 1.1 gse\r\n" + self.rid_header + b": "
        self.via_line = b"x-forwarded-proto: http\r\nvia: 1.1 gse\r\n" + self.rid_header + b": "
        # request headers that are not simply copied upstream
        self.special_request_fields = HOP_BY_HOP | {
            b"host",
            b"x-forwarded-for",
            b"via",
            self.rid_header,
            b"x-forwarded-proto",
            b"x-forwarded-host",
            b"expect",
        }
        self.max_url = max_url
        self.max_header_bytes = max_header_bytes
        self.unmatched = RouteCounters("-")
        self.upstream_errors = 0
        self.clients: set[ClientConnection] = set()
        self.loop: asyncio.AbstractEventLoop | None = None
        self.outliers = outliers if outliers is not None else OutlierDetector()
        self.max_per_client = max_per_client
        self.per_client: dict[bytes, int] = {}
        self.header_timeout = header_timeout
        self.activator = Activator()

    def pick(self, rt: RouteRuntime, now: float, avoid: str | None = None) -> EndpointPool:
        """A replica for `rt`: P2C over those not ejected (all of them if every one is)."""
        ids = rt.ids
        outliers = self.outliers
        if outliers.ejected or avoid is not None:
            ok = tuple(i for i in ids if i != avoid and not outliers.is_ejected(i, now))
            if not ok:
                ok = tuple(i for i in ids if i != avoid) or ids
            if len(ok) != len(ids):
                return rt.pools[rt.index_of[ok[self.balancer.pick(ok)]]]
        return rt.pools[self.balancer.pick(ids)]


class ClientConnection:
    __slots__ = (
        "state",
        "loop",
        "transport",
        "parser",
        "peer",
        "xff_line",
        "queue",
        "cur",
        "url",
        "headers",
        "header_bytes",
        "reject",
        "read_paused",
        "write_paused",
        "write_resumed",
        "pending_bytes",
        "closed",
        "eof",
        "broken",
        "advancing",
        "last_active",
        "tunnel",
        "wbuf",
        "in_head",
        "head_started",
        "peer_counted",
    )

    def __init__(self, state: ProxyState, loop: asyncio.AbstractEventLoop) -> None:
        self.state = state
        self.loop = loop
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpRequestParser(self)
        self.peer = b""
        self.xff_line = b"x-forwarded-for: \r\n"  # for a request without X-Forwarded-For
        self.queue: deque[Exchange] = deque()
        self.cur: Exchange | None = None
        self.url = b""
        self.headers: list[tuple[bytes, bytes]] = []
        self.header_bytes = 0
        self.reject: tuple[int, str] | None = None
        self.read_paused = 0
        self.write_paused = False
        self.write_resumed = 0.0  # when writing last resumed after a pause (loop time)
        self.pending_bytes = 0
        self.closed = False
        self.eof = False
        self.broken = False  # a malformed request was seen: parse nothing more
        self.advancing = False
        self.last_active = loop.time()
        self.tunnel: Exchange | None = None
        self.wbuf: list[bytes] | None = None  # writes held while one upstream read is handled
        self.in_head = False  # a request head has begun and is not complete
        self.head_started = 0.0
        self.peer_counted = False

    # -- asyncio.Protocol -------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport = cast(asyncio.Transport, transport)
        transport.set_write_buffer_limits(WRITE_HIGH_WATER, WRITE_LOW_WATER)
        peer = transport.get_extra_info("peername")
        if peer:
            self.peer = str(peer[0]).encode("ascii", "replace")
            self.xff_line = b"x-forwarded-for: " + self.peer + b"\r\n"
        state = self.state
        state.clients.add(self)
        cap = state.max_per_client
        if cap is not None:
            n = state.per_client.get(self.peer, 0)
            if n >= cap:
                self.broken = True
                body = problem_body(
                    429, f"this client address already has {n} connections open (the limit is {cap})"
                )
                transport.write(
                    problem_response(429, body, state.rid_header, state.ids.new(), close=True, retry_after=1)
                )
                self.close()
                return
            state.per_client[self.peer] = n + 1
            self.peer_counted = True

    def data_received(self, data: bytes) -> None:
        tunnel = self.tunnel
        if tunnel is not None:
            tunnel.tunnel_from_client(data)
            return
        if self.broken:
            return
        self.last_active = now = self.loop.time()
        if self.cur is None and not self.in_head:
            # not inside a request: these bytes begin a head (the header timeout runs from here)
            self.in_head = True
            self.head_started = now
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade as exc:
            offset = int(exc.args[0]) if exc.args else len(data)
            self._upgraded(data[offset:])
        except httptools.HttpParserError as exc:
            self._malformed(exc)
        queue = self.queue
        if queue and not queue[0].started:
            self._advance()

    def eof_received(self) -> bool | None:
        self.eof = True
        ex = self.cur
        if ex is not None and not ex.request_done and self.tunnel is None:
            # the client stopped sending in the middle of a request body: it cannot complete
            self.cur = None
            self.broken = True
            ex.fail_request(400, "the client closed its side before the request body was complete")
        if self.queue or self.tunnel is not None:
            return True  # keep the write side open to answer what was asked
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        state = self.state
        state.clients.discard(self)
        if self.peer_counted:
            self.peer_counted = False
            left = state.per_client.get(self.peer, 1) - 1
            if left > 0:
                state.per_client[self.peer] = left
            else:
                state.per_client.pop(self.peer, None)
        queue = self.queue
        while queue:
            queue.popleft().abort_client_gone()
        if self.cur is not None:
            self.cur.abort_client_gone()
            self.cur = None

    def pause_writing(self) -> None:
        self.write_paused = True
        if self.queue:
            up = self.queue[0].up
            if up is not None and up.transport is not None:
                up.transport.pause_reading()

    def resume_writing(self) -> None:
        self.write_paused = False
        self.write_resumed = self.loop.time()
        if self.queue:
            up = self.queue[0].up
            if up is not None and up.transport is not None:
                up.transport.resume_reading()

    # -- flow control helpers ----------------------------------------------------------------
    def pause_reading(self, why: int) -> None:
        if not self.read_paused and self.transport is not None and not self.closed:
            self.transport.pause_reading()
        self.read_paused |= why

    def resume_reading(self, why: int) -> None:
        if not self.read_paused & why:
            return
        self.read_paused &= ~why
        if not self.read_paused and self.transport is not None and not self.closed:
            self.last_active = self.loop.time()  # the client's idle time counts from here
            self.transport.resume_reading()

    def add_pending(self, n: int) -> None:
        self.pending_bytes += n
        if self.pending_bytes > PENDING_LIMIT:
            self.pause_reading(_PENDING_FULL)
        elif n < 0 and self.pending_bytes <= PENDING_LIMIT // 2:
            self.resume_reading(_PENDING_FULL)

    def write(self, data: bytes) -> None:
        if not self.closed and self.transport is not None:
            wbuf = self.wbuf
            if wbuf is not None:
                wbuf.append(data)
            else:
                self.transport.write(data)

    def flush(self) -> None:
        wbuf = self.wbuf
        self.wbuf = None
        if wbuf and not self.closed and self.transport is not None:
            if len(wbuf) == 1:
                self.transport.write(wbuf[0])
            elif len(wbuf) == 2 and len(wbuf[1]) <= SMALL_WRITE:
                self.transport.write(join_bytes(wbuf))  # one write(2), not writev(2) of two
            else:
                self.transport.writelines(wbuf)

    def close(self) -> None:
        if self.wbuf is not None:
            self.flush()
        transport = self.transport
        if not self.closed and transport is not None:
            self.closed = True
            self.state.clients.discard(self)
            if self.broken and self.tunnel is None and not self.eof and transport.can_write_eof():
                # Unread request bytes would make the kernel reset the connection and could
                # destroy the answer in flight: shut the write side, drain, then close.
                transport.write_eof()
                transport.resume_reading()
                self.loop.call_later(LINGER_SECONDS, transport.close)
                return
            transport.close()

    # -- httptools callbacks ---------------------------------------------------------------
    # (no on_message_begin: data_received marks a head's start, on_headers_complete resets)
    def on_url(self, url: bytes) -> None:
        self.url += url
        if len(self.url) > self.state.max_url:
            self.reject = (414, f"the request target is longer than {self.state.max_url} bytes")
            raise _Reject

    def on_header(self, name: bytes, value: bytes) -> None:
        self.header_bytes += len(name) + len(value) + 4
        if self.header_bytes > self.state.max_header_bytes:
            self.reject = (431, f"the request headers exceed {self.state.max_header_bytes} bytes")
            raise _Reject
        self.headers.append((name, value))

    def on_headers_complete(self) -> None:
        self.in_head = False
        ex = _build_exchange(self)
        self.url = b""
        self.headers = []
        self.header_bytes = 0
        self.cur = ex
        self.queue.append(ex)
        if self.broken:
            # refused at the head: read nothing more (not even its body) and close after answering
            ex.request_done = True
            self.cur = None
            self.reject = (0, "")
            raise _Reject

    def on_body(self, body: bytes) -> None:
        if self.cur is not None:
            self.cur.on_request_body(body)

    def on_message_complete(self) -> None:
        ex = self.cur
        self.cur = None
        if ex is not None:
            if not ex.started:  # still queued: nothing to send yet, it starts complete
                ex.request_done = True
            else:
                ex.on_request_complete()

    # -- queue ------------------------------------------------------------------------------
    def _advance(self) -> None:
        if self.advancing:
            return
        self.advancing = True
        try:
            queue = self.queue
            while queue and not self.closed:
                head = queue[0]
                if head.started:
                    break
                head.start()
        finally:
            self.advancing = False

    def finish(self, ex: Exchange, now: float | None = None) -> None:
        """Called once an exchange has both read its request and written its response."""
        queue = self.queue
        if queue and queue[0] is ex:
            queue.popleft()
        self.last_active = now if now is not None else self.loop.time()
        if ex.close_after or (self.eof and not queue):
            self.close()
            return
        if queue and not queue[0].started:
            self._advance()

    def head_timed_out(self) -> None:
        """The client took longer than the header timeout to send a request head: 408, close."""
        state = self.state
        self.broken = True
        self.in_head = False
        if not self.queue and self.transport is not None and not self.closed:
            detail = f"the request head did not arrive within {state.header_timeout:g} s"
            body = problem_body(408, detail)
            self.write(problem_response(408, body, state.rid_header, state.ids.new(), close=True))
            self.close()
        else:
            # answer what is already queued, then close
            if self.queue:
                self.queue[-1].close_after = True

    def _malformed(self, exc: Exception) -> None:
        if self.reject is not None and self.reject[0] == 0:
            self.reject = None
            return  # parsing was stopped on purpose; the refusal is already queued
        status, detail = self.reject or (400, f"malformed HTTP request: {exc}")
        self.broken = True
        self.pause_reading(_PENDING_FULL)
        ex = self.cur
        self.cur = None
        if ex is not None and not ex.request_done:
            if ex.started:
                ex.fail_request(status, detail)
                return
            try:
                self.queue.remove(ex)
            except ValueError:
                pass
            ex.abort_client_gone()
        err = Exchange(self, None, b"GET", False, True, self.state.ids.new())
        err.set_local(status, detail)
        err.close_after = True
        err.request_done = True
        self.queue.append(err)

    def _upgraded(self, rest: bytes) -> None:
        ex = self.queue[-1] if self.queue else None
        self.broken = True  # no more HTTP/1 on this connection from the client side
        if ex is None:
            self.close()
            return
        self.cur = None
        if ex.method == b"CONNECT":
            ex.set_local(405, "CONNECT is not supported by this gateway")
        ex.close_after = True
        ex.client_tunnel_data = [rest] if rest else []
        if not ex.request_done:
            ex.on_request_complete()


class _SpecialFields:
    """What the request headers other than plain ones and a single Host said (rarely needed)."""

    __slots__ = ("content_length", "te", "conn_values", "xff", "via", "rid", "upgrade", "expect", "bad")

    def __init__(self, fields: list[tuple[bytes, bytes]], rid_header: bytes) -> None:
        content_length: bytes | None = None
        te: list[bytes] = []
        conn_values: list[bytes] = []
        xff: bytes | None = None
        via: bytes | None = None
        rid: bytes | None = None
        upgrade: bytes | None = None
        expect = False
        bad = ""
        for lname, value in fields:
            if lname == b"content-length":
                value = value.strip()
                if content_length is not None and content_length != value:
                    bad = "the request has differing Content-Length headers"
                content_length = value
            elif lname == b"transfer-encoding":
                te.append(value)
            elif lname == b"connection":
                conn_values.append(value)
            elif lname == b"upgrade":
                upgrade = value
            elif lname == b"host":  # only a second one comes here
                bad = "the request has more than one Host header"
            elif lname == b"x-forwarded-for":
                xff = value if xff is None else xff + b", " + value
            elif lname == b"via":
                via = value if via is None else via + b", " + value
            elif lname == rid_header:
                rid = value.strip()
            elif lname == b"expect":
                if value.strip().lower() == b"100-continue":
                    expect = True  # answered here, once the request is admitted
                else:
                    bad = "the only expectation this gateway meets is 100-continue"
            # other hop-by-hop fields, X-Forwarded-Proto and X-Forwarded-Host are dropped
        self.content_length = content_length
        self.te = te
        self.conn_values = conn_values
        self.xff = xff
        self.via = via
        self.rid = rid
        self.upgrade = upgrade
        self.expect = expect
        self.bad = bad


def _build_exchange(conn: ClientConnection) -> Exchange:
    """Turn the parsed request head into an Exchange: validate, route, build the upstream head."""
    state = conn.state
    parser = conn.parser
    method = parser.get_method()
    rid_header = state.rid_header
    host: bytes | None = None
    # the upstream head as pieces for one join: the request line as [method, " ", target,
    # " HTTP/1.1\r\n"], then [name, ": ", value, "\r\n"] per header
    fwd: list[bytes] = [method, b" ", b"", b" HTTP/1.1\r\n"]
    special = state.special_request_fields
    others: list[tuple[bytes, bytes]] | None = None
    for name, value in conn.headers:
        lname = name.lower()
        if lname not in special:
            fwd += (name, b": ", value, b"\r\n")
        elif lname == b"host" and host is None:
            host = value.strip()
            fwd += (name, b": ", value, b"\r\n")
        elif others is None:
            others = [(lname, value)]
        else:
            others.append((lname, value))
    keep_alive = parser.should_keep_alive()
    # llhttp takes 0.9, 1.0, 1.1 and 2.0 request lines and keeps all but 1.1 alive only when a
    # Connection header asks: kept alive without one means HTTP/1.1, no version string needed
    http11 = (keep_alive and others is None) or parser.get_http_version() == "1.1"
    if others is None:
        content_length: bytes | None = None
        te: list[bytes] | None = None
        conn_values: list[bytes] | None = None
        xff = via = rid = upgrade = None
        expect_continue = False
        bad = ""
    else:
        fields = _SpecialFields(others, rid_header)
        content_length = fields.content_length
        te = fields.te
        conn_values = fields.conn_values
        xff = fields.xff
        via = fields.via
        rid = fields.rid
        upgrade = fields.upgrade
        expect_continue = fields.expect
        bad = fields.bad

    if rid is None or not sane_request_id(rid):
        ids = state.ids  # RequestIds.new, inlined
        rid = request_id(ids.prefix, ids.next())
    head_only = method == b"HEAD"
    ex = Exchange(conn, None, method, head_only, http11, rid)
    if not keep_alive:
        ex.keep_alive = False
    ex.expect_continue = expect_continue and http11

    if not bad:
        if te and content_length is not None:
            bad = "the request has both Content-Length and Transfer-Encoding"
        elif te and not is_chunked_final(te):
            bad = "Transfer-Encoding must be exactly 'chunked'"
        elif content_length is not None and not content_length.isdigit():
            bad = "Content-Length is not a number"
        elif http11 and host is None:
            bad = "an HTTP/1.1 request needs a Host header"
    if bad:
        ex.set_local(400, bad)
        ex.close_after = True
        conn.broken = True
        return ex

    target = conn.url
    if target[:1] != b"/":
        lower = target[:8].lower()
        if lower.startswith(b"http://") or lower.startswith(b"https://"):
            rest = target.split(b"//", 1)[1]
            slash = rest.find(b"/")
            authority, target = (rest, b"/") if slash < 0 else (rest[:slash], rest[slash:])
            host = authority
        elif method == b"CONNECT":
            ex.set_local(405, "CONNECT is not supported by this gateway")
            ex.close_after = True
            return ex
    matched = state.table.match(host, target)
    if matched is None:
        path = target.split(b"?", 1)[0].decode("latin-1")[:200]
        ex.set_local(404, f"no route for path {path!r}")
        return ex
    route, upstream_target = matched
    rt = state.runtimes[route.index]
    ex.rt = rt
    if not rt.pools and not rt.activate:
        ex.set_local(503, f"service {rt.service} has no ready replica", retry_after=1)
        return ex
    max_body = rt.max_body
    if max_body is not None:
        if content_length is not None and int(content_length) > max_body:
            ex.set_local(413, f"the request body of {int(content_length)} bytes exceeds {max_body} bytes")
            ex.close_after = True
            conn.broken = True  # the body is not read: nothing after it can be parsed
            return ex
        ex.body_left = max_body

    if conn_values:
        tokens = connection_tokens(conn_values) - PLAIN_CONNECTION
        if tokens:  # headers named in Connection are hop-by-hop too: drop them
            kept = fwd[:4]
            for i in range(4, len(fwd), 4):
                if fwd[i].lower() not in tokens:
                    kept += fwd[i : i + 4]
            fwd = kept
    fwd[2] = upstream_target
    fwd.append(conn.xff_line if not xff else b"x-forwarded-for: %s, %s\r\n" % (xff, conn.peer))
    if host is not None:
        fwd += (b"x-forwarded-host: ", host, b"\r\n")
    # "x-forwarded-proto: http\r\nvia: ...\r\n<request id header>: "
    fwd.append(
        state.via_line
        if not via
        else b"x-forwarded-proto: http\r\nvia: %s, 1.1 gse\r\n%s: " % (via, rid_header)
    )
    fwd.append(rid)
    if te:
        ex.chunked = True
        fwd.append(b"\r\ntransfer-encoding: chunked")
    elif content_length is not None:
        fwd += (b"\r\ncontent-length: ", content_length)
    if upgrade is not None and parser.should_upgrade():
        ex.upgrade = True
        fwd += (b"\r\nconnection: upgrade\r\nupgrade: ", upgrade)
    fwd.append(b"\r\n\r\n")
    ex.head = join_bytes(fwd)
    return ex


class Exchange:
    """One request/response through the gateway."""

    __slots__ = (
        "conn",
        "rt",
        "method",
        "head_only",
        "http11",
        "rid",
        "keep_alive",
        "close_after",
        "head",
        "chunked",
        "upgrade",
        "local_status",
        "local_detail",
        "retry_after",
        "started",
        "request_done",
        "response_done",
        "response_started",
        "pool",
        "up",
        "reused",
        "retried",
        "replay",
        "replay_size",
        "pending",
        "pending_size",
        "timer",
        "deadline",
        "mode",
        "up_close_delimited",
        "status",
        "t0",
        "counted",
        "client_tunnel_data",
        "body_left",
        "attempts",
        "expect_continue",
        "seen_reads",
        "quiet_since",
    )

    def __init__(
        self,
        conn: ClientConnection,
        rt: RouteRuntime | None,
        method: bytes,
        head_only: bool,
        http11: bool,
        rid: bytes,
    ) -> None:
        self.conn = conn
        self.rt = rt
        self.method = method
        self.head_only = head_only
        self.http11 = http11
        self.rid = rid
        self.keep_alive = True
        self.close_after = False
        self.head = b""
        self.chunked = False
        self.upgrade = False
        self.local_status = 0
        self.local_detail = ""
        self.retry_after = 0
        self.started = False
        self.request_done = False
        self.response_done = False
        self.response_started = False
        self.pool: EndpointPool | None = None
        self.up: UpstreamConnection | None = None
        self.reused = False
        self.retried = False
        self.replay: list[bytes] | None = []
        self.replay_size = 0
        self.pending: list[bytes] = []
        self.pending_size = 0
        self.timer: asyncio.TimerHandle | None = None
        self.deadline = 0.0  # when the first response byte is due (loop time); 0 = not armed
        self.mode = _NO_BODY
        self.up_close_delimited = False
        self.status = 0
        self.t0 = 0.0
        self.counted = False
        self.client_tunnel_data: list[bytes] | None = None
        self.body_left = -1  # request body bytes still allowed; -1 = no limit
        self.attempts = 0  # retries spent
        self.expect_continue = False  # the client waits for 100 Continue before its body
        self.seen_reads = -1  # the upstream's read count at the last sweep that saw it change
        self.quiet_since = 0.0  # when that sweep ran (loop time)

    def expire(self, detail: str) -> None:
        """The activator gave up waiting for a replica: 503, try again later."""
        self.set_local(503, detail, 1)
        self._respond_local(self.local_status, self.local_detail)

    def set_local(self, status: int, detail: str, retry_after: int = 0) -> None:
        self.local_status = status
        self.local_detail = detail
        self.retry_after = retry_after

    # -- lifecycle -----------------------------------------------------------------------------
    def start(self) -> None:
        self.started = True
        conn = self.conn
        self.t0 = conn.loop.time()
        counters = self.rt.counters if self.rt is not None else conn.state.unmatched
        counters.inflight += 1
        if self.local_status:
            self._respond_local(self.local_status, self.local_detail)
            return
        rt = self.rt
        assert rt is not None
        now = self.t0
        bucket = rt.bucket
        if bucket is not None:
            wait = bucket.take(now)
            if wait > 0.0:
                self.set_local(
                    429,
                    f"service {rt.service} allows {bucket.rate:g} requests per second",
                    retry_after_seconds(wait),
                )
                self._respond_local(self.local_status, self.local_detail)
                return
        budget = rt.budget  # RetryBudget.on_request, inlined
        if int(now) != budget.window:
            budget.roll(now)
        budget.requests += 1
        if not rt.pools:
            if not conn.state.activator.hold(self, rt, conn.loop):
                self.set_local(503, f"service {rt.service} has {rt.max_held} requests waiting already", 1)
                self._respond_local(self.local_status, self.local_detail)
            return
        self.resume(now)

    def resume(self, now: float) -> None:
        """Send the request on: at once, or when the activator releases it to a ready replica."""
        rt = self.rt
        assert rt is not None
        if self.expect_continue and not self.request_done:
            self.conn.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        state = self.conn.state
        balancer = state.balancer
        outstanding = balancer.outstanding
        ids = rt.ids
        n = len(ids)
        if n < 2 or state.outliers.ejected:
            pool = state.pick(rt, now)
        else:
            # Balancer.pick inlined: two distinct draws, fewer in flight wins (the first on a tie)
            rnd = balancer.random
            first = int(rnd() * n)
            second = int(rnd() * (n - 1))
            if second >= first:
                second += 1
            get = outstanding.get
            pool = rt.pools[second if get(ids[second], 0) < get(ids[first], 0) else first]
        self.pool = pool  # _use_pool, inlined
        ep_id = pool.ep_id
        outstanding[ep_id] = outstanding.get(ep_id, 0) + 1
        pool.counters.requests_total += 1
        idle = pool.idle
        up = idle[-1] if idle else None  # EndpointPool.take_idle's common case, inlined
        if (
            up is not None
            and not up.closed
            and up.transport is not None
            and not up.transport.is_closing()
            and now - up.idle_since <= rt.idle_timeout
        ):
            idle.pop()
            pool.busy.add(up)
        else:
            up = pool.take_idle(now, rt.idle_timeout)
        if up is not None:
            self.reused = True
            self._attach(up, now)
        else:
            self._connect()

    def _use_pool(self, pool: EndpointPool) -> None:
        self.pool = pool
        self.conn.state.balancer.start(pool.ep_id)
        pool.counters.requests_total += 1

    def _release_pool(self) -> None:
        pool = self.pool
        if pool is not None:
            self.pool = None
            outstanding = self.conn.state.balancer.outstanding  # Balancer.finish, inlined
            ep_id = pool.ep_id
            left = outstanding.get(ep_id, 0) - 1
            if left > 0:
                outstanding[ep_id] = left
            else:
                outstanding.pop(ep_id, None)

    def _connect(self) -> None:
        assert self.pool is not None and self.rt is not None
        self.reused = False
        task = self.conn.loop.create_task(self.pool.connect(self.rt.connect_timeout))
        task.add_done_callback(self._connected)

    def _connected(self, task: asyncio.Task[UpstreamConnection]) -> None:
        if task.cancelled():
            return
        exc = task.exception()
        if exc is not None:
            self._connect_failed()
            return
        up = task.result()
        if self.conn.closed or self.response_done or self.pool is None:
            # the client went away (or we answered already) while we were connecting
            up.pool.release(up, self.conn.loop.time())
            return
        self._attach(up)

    def _connect_failed(self) -> None:
        rt = self.rt
        assert rt is not None
        state = self.conn.state
        state.upstream_errors += 1
        if self.pool is not None:
            self.pool.counters.errors_total += 1
        now = self.conn.loop.time()
        failed = self.pool
        if failed is not None:
            state.outliers.failure(failed.ep_id, now)
        if self._may_retry(now) and failed is not None:
            # nothing reached the replica: try another one
            self._release_pool()
            self._use_pool(state.pick(rt, now, avoid=failed.ep_id if len(rt.pools) > 1 else None))
            self._connect()
            return
        self._release_pool()
        self._respond_local(502, f"service {rt.service}: could not connect to a replica")

    def _may_retry(self, now: float) -> bool:
        rt = self.rt
        if rt is None or self.attempts >= rt.retries or self.conn.closed:
            return False
        if not rt.budget.try_retry(now):
            return False
        self.attempts += 1
        return True

    def _attach(self, up: UpstreamConnection, now: float | None = None) -> None:
        self.up = up
        up.attach(self, self.head_only)
        transport = up.transport
        assert transport is not None
        conn = self.conn
        if conn.write_paused:
            transport.pause_reading()
        if not self.pending and not self.chunked:
            # the common case: a head alone (and maybe a body that will stream after it)
            if self.request_done:
                self._arm_timer(now)
            transport.write(self.head)
            return
        parts = [self.head]
        if self.pending:
            chunked = self.chunked
            for data in self.pending:
                if chunked:
                    parts.append(b"%x\r\n" % len(data))
                    parts.append(data)
                    parts.append(b"\r\n")
                else:
                    parts.append(data)
            conn.add_pending(-self.pending_size)
            self.pending = []
            self.pending_size = 0
        if self.request_done:
            if self.chunked:
                parts.append(b"0\r\n\r\n")
            self._arm_timer()
        if len(parts) == 1:
            transport.write(parts[0])
        else:
            transport.writelines(parts)

    def _arm_timer(self, now: float | None = None) -> None:
        rt = self.rt
        if self.timer is None and not self.deadline and rt is not None and not self.upgrade:
            timeout = rt.response_timeout
            loop = self.conn.loop
            if timeout >= COARSE_TIMEOUT:
                # checked by the gateway's once-a-second sweep: no timer handle per request
                self.deadline = (now if now is not None else loop.time()) + timeout
            else:
                self.timer = loop.call_later(timeout, self._timed_out)

    def _cancel_timer(self) -> None:
        self.deadline = 0.0
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None

    def check_deadline(self, now: float) -> None:
        """Called by the sweep: answer 504 if the first response byte is overdue."""
        if self.deadline and now >= self.deadline:
            self._timed_out()

    def check_idle(self, now: float) -> None:
        """Called by the sweep: cut a request body or a response that stalled mid-stream.

        A body that stops arriving for the route's idle timeout is answered 408 (or, once the
        response has begun, the connection is reset); a response that stops is cut off with
        the client connection reset, since its head has already gone out. Checked once a
        second, so a cut may come up to a second late, never early.
        """
        rt = self.rt
        if rt is None or self.response_done or self.mode == _TUNNEL or not self.started:
            return
        conn = self.conn
        limit = rt.idle_timeout
        # (reading paused by the gateway itself is not the client stalling)
        if not self.request_done and not conn.read_paused and now - conn.last_active > limit:
            conn.broken = True
            self.fail_request(408, f"the request body stalled for more than {limit:g} s")
            return
        up = self.up
        if up is None or not self.response_started:
            return
        # a client slow to read pauses the replica's connection: that is not a stall either
        if up.reads != self.seen_reads or conn.write_paused:
            self.seen_reads = up.reads
            self.quiet_since = now
        elif now - max(self.quiet_since, conn.write_resumed) >= limit:
            up.pool.busy.discard(up)
            up.abort()
            self.on_upstream_lost(TimeoutError(f"the response stalled for more than {limit:g} s"))

    def _timed_out(self) -> None:
        self.timer = None
        self.deadline = 0.0
        up = self.up
        if self.response_started or self.response_done:
            return
        if up is not None and up.got_bytes:
            return
        self.up = None
        if up is not None:
            up.abort()
        state = self.conn.state
        state.upstream_errors += 1
        if self.pool is not None:
            self.pool.counters.errors_total += 1
        self._release_pool()
        assert self.rt is not None
        self._respond_local(
            504, f"service {self.rt.service} did not answer within {self.rt.response_timeout:g} s"
        )

    # -- request side ----------------------------------------------------------------------------
    def on_request_body(self, data: bytes) -> None:
        if self.local_status or self.response_done or not data:
            return
        if self.body_left >= 0:
            self.body_left -= len(data)
            if self.body_left < 0:
                assert self.rt is not None
                self.conn.broken = True
                self.fail_request(413, f"the request body exceeds {self.rt.max_body} bytes")
                return
        replay = self.replay
        if replay is not None:
            self.replay_size += len(data)
            if self.replay_size > REPLAY_LIMIT:
                self.replay = None
            else:
                replay.append(data)
        up = self.up
        if up is not None and up.transport is not None:
            if self.chunked:
                up.transport.writelines((b"%x\r\n" % len(data), data, b"\r\n"))
            else:
                up.transport.write(data)
        else:
            self.pending.append(data)
            self.pending_size += len(data)
            self.conn.add_pending(len(data))

    def on_request_complete(self) -> None:
        self.request_done = True
        if self.response_done:
            self.conn.finish(self)
            return
        up = self.up
        if up is not None and up.transport is not None and not self.local_status:
            if self.chunked:
                up.transport.write(b"0\r\n\r\n")
            self._arm_timer()

    def fail_request(self, status: int, detail: str) -> None:
        """The client's request turned out malformed or cut short: never let it complete."""
        self.close_after = True
        self.request_done = True
        if not self.started:  # still queued behind another: answer in turn
            self.set_local(status, detail)
            return
        self._cancel_timer()
        up = self.up
        self.up = None
        if up is not None:
            up.abort()
        self._release_pool()
        if self.response_started:
            self._record(self.status)
            if self.conn.transport is not None:
                self.conn.closed = True
                self.conn.transport.abort()
            return
        if not self.response_done:
            self._respond_local(status, detail)
        else:
            self.conn.finish(self)

    # -- response side ---------------------------------------------------------------------------
    def on_upstream_head(self, status: int, head: bytes) -> None:
        self.deadline = 0.0
        if self.timer is not None:
            self._cancel_timer()
        self.replay = None
        conn = self.conn
        state = conn.state
        pool = self.pool
        if pool is not None and status >= 200:
            outliers = state.outliers
            if status >= 500:
                outliers.failure(pool.ep_id, conn.loop.time())
            elif outliers.fails or outliers.ejections:  # else success() has nothing to clear
                outliers.success(pool.ep_id)
        # the head minus its status line and final blank line: "\r\nName: value" lines
        line_end = head.find(b"\r\n")
        fields, content_length, chunked, conn_values, upgrade = response_fields(
            head[line_end:-4], state.rid_header
        )
        status_line = head[8:line_end]  # " 200 OK" after "HTTP/1.x"
        if 100 <= status < 200 and status != 101:
            if self.http11:
                conn.write(b"".join((b"HTTP/1.1", status_line, fields, b"\r\n\r\n")))
            return
        if conn_values:
            tokens = connection_tokens(conn_values) - PLAIN_CONNECTION
            if tokens:
                fields = header_lines_pattern(tokens).sub(b"", fields)
        if status == 101 and self.upgrade:
            self.mode = _TUNNEL
            framing = b"\r\nconnection: upgrade"
            if upgrade is not None:
                framing += b"\r\nupgrade: " + upgrade
        elif self.head_only or status == 204 or status == 304:
            self.mode = _NO_BODY
            framing = b"\r\ncontent-length: " + content_length if content_length is not None else b""
        elif chunked or content_length is None:
            self.up_close_delimited = not chunked
            framing = b""
            if self.http11:
                self.mode = _CHUNK
                framing = b"\r\ntransfer-encoding: chunked"
            else:
                self.mode = _CLOSE
                self.close_after = True
        else:
            self.mode = _RAW
            framing = b"\r\ncontent-length: " + content_length
        if self.upgrade and status != 101:
            self.close_after = True  # the client side is past its HTTP/1 framing
        if not self.keep_alive or conn.eof:
            self.close_after = True
        if self.mode != _TUNNEL:
            if self.close_after:
                framing += b"\r\nconnection: close"
            elif not self.http11:
                framing += b"\r\nconnection: keep-alive"
        self.status = status
        self.response_started = True
        conn.write(
            join_bytes((b"HTTP/1.1", status_line, fields, framing, state.via_rid, self.rid, b"\r\n\r\n"))
        )

    def on_upstream_body(self, data: bytes) -> None:
        mode = self.mode
        conn = self.conn
        if mode == _RAW:
            wbuf = conn.wbuf
            if wbuf is not None and not conn.closed:
                wbuf.append(data)
            else:
                conn.write(data)
        elif mode == _CHUNK:
            if data:
                conn.write(b"%x\r\n" % len(data))
                conn.write(data)
                conn.write(b"\r\n")
        elif mode != _NO_BODY:
            conn.write(data)

    def on_upstream_upgrade(self, rest: bytes) -> None:
        conn = self.conn
        if self.mode != _TUNNEL:
            up = self.up
            self.up = None
            if up is not None:
                up.abort()
            self._release_pool()
            if not self.response_started:
                self._respond_local(502, "the replica switched protocols without being asked")
            else:
                self._record(self.status)
                conn.close()
            return
        if rest:
            conn.write(rest)
        conn.tunnel = self
        up = self.up
        if up is not None and up.transport is not None and self.client_tunnel_data:
            up.transport.writelines(self.client_tunnel_data)
        self.client_tunnel_data = None
        if conn.transport is not None and not conn.closed:
            conn.broken = False
            conn.resume_reading(_PENDING_FULL)

    def tunnel_from_client(self, data: bytes) -> None:
        up = self.up
        if up is not None and up.transport is not None:
            up.transport.write(data)

    def on_upstream_complete(self, keep_alive: bool) -> None:
        conn = self.conn
        if self.mode == _CHUNK:
            conn.write(b"0\r\n\r\n")
        up = self.up
        self.up = None
        now = conn.loop.time()
        if up is not None:
            if conn.write_paused and up.transport is not None:
                up.transport.resume_reading()
            if conn.read_paused:
                conn.resume_reading(_UPSTREAM_FULL)
            if keep_alive and self.request_done and not self.upgrade:
                up_pool = up.pool  # EndpointPool.release, inlined
                up_pool.busy.discard(up)
                up.sink = None
                if up_pool.removed or up.closed or len(up_pool.idle) >= up_pool.max_idle:
                    up.close()
                else:
                    up.idle_since = now
                    up_pool.idle.append(up)
            else:
                up.pool.busy.discard(up)
                up.close()
        pool = self.pool
        if pool is not None:  # _release_pool, inlined
            self.pool = None
            outstanding = conn.state.balancer.outstanding
            ep_id = pool.ep_id
            left = outstanding.get(ep_id, 0) - 1
            if left > 0:
                outstanding[ep_id] = left
            else:
                outstanding.pop(ep_id, None)
        self.response_done = True
        if not self.counted and self.rt is not None:  # _record, inlined
            self.counted = True
            counters = self.rt.counters
            counters.inflight -= 1
            seconds = now - self.t0
            status = self.status
            by_code = counters.by_code
            by_code[status] = by_code.get(status, 0) + 1
            counters.buckets[bisect_left(LATENCY_BUCKETS, seconds)] += 1
            counters.duration_sum += seconds
            counters.count += 1
        if self.request_done:
            conn.finish(self, now)

    def on_upstream_lost(self, exc: Exception | None) -> None:
        up = self.up
        self.up = None
        conn = self.conn
        conn.resume_reading(_UPSTREAM_FULL)
        if self.mode == _TUNNEL:
            self._release_pool()
            self._record(self.status)
            conn.close()
            return
        if self.response_started:
            if self.up_close_delimited and exc is None:
                self.on_upstream_complete(False)
                return
            conn.state.upstream_errors += 1
            if self.pool is not None:
                self.pool.counters.errors_total += 1
            self._release_pool()
            self._record(self.status)
            if conn.transport is not None:
                conn.closed = True
                conn.transport.abort()
            return
        self._cancel_timer()
        now = conn.loop.time()
        untouched = up is not None and not up.got_bytes and self.replay is not None
        stale = untouched and self.reused and not self.retried
        again = (
            not stale
            and untouched
            and self.rt is not None
            and self.rt.retry_idempotent
            and self.method in IDEMPOTENT
            and self.request_done
            and self._may_retry(now)
        )
        if not stale and self.pool is not None:
            conn.state.outliers.failure(self.pool.ep_id, now)
        if stale or again:
            # a pooled keep-alive connection went stale (replay once on a fresh one), or the
            # route allows retrying an idempotent request the replica dropped unanswered
            self.retried = True
            if again and self.rt is not None and self.pool is not None:
                failed = self.pool.ep_id
                self._release_pool()
                self._use_pool(
                    conn.state.pick(self.rt, now, avoid=failed if len(self.rt.pools) > 1 else None)
                )
            assert self.replay is not None
            self.pending = list(self.replay)
            self.pending_size = sum(len(p) for p in self.pending)
            conn.add_pending(self.pending_size)
            self._connect()
            return
        conn.state.upstream_errors += 1
        if self.pool is not None:
            self.pool.counters.errors_total += 1
        self._release_pool()
        assert self.rt is not None
        self._respond_local(502, f"service {self.rt.service}: the replica closed the connection")

    def on_upstream_pause_writing(self) -> None:
        self.conn.pause_reading(_UPSTREAM_FULL)

    def on_upstream_resume_writing(self) -> None:
        self.conn.resume_reading(_UPSTREAM_FULL)

    # -- endings ---------------------------------------------------------------------------------
    def _respond_local(self, status: int, detail: str) -> None:
        conn = self.conn
        self.status = status
        self.response_done = True
        if self.expect_continue and not self.request_done:
            # the client has not sent its body and may never: read nothing more, close after
            self.close_after = True
            self.request_done = True
            conn.broken = True
            if conn.cur is self:
                conn.cur = None
        if not self.keep_alive or conn.eof:
            self.close_after = True
        body = problem_body(status, detail)
        conn.write(
            problem_response(
                status,
                body,
                conn.state.rid_header,
                self.rid,
                close=self.close_after,
                retry_after=self.retry_after,
                head_only=self.head_only,
            )
        )
        self._record(status)
        if self.request_done:
            conn.finish(self)

    def _record(self, status: int, now: float | None = None) -> None:
        if self.counted or not self.started:
            return
        self.counted = True
        counters = self.rt.counters if self.rt is not None else self.conn.state.unmatched
        counters.inflight -= 1
        # RouteCounters.observe, inlined (it runs once per request)
        seconds = (now if now is not None else self.conn.loop.time()) - self.t0
        by_code = counters.by_code
        by_code[status] = by_code.get(status, 0) + 1
        counters.buckets[bisect_left(LATENCY_BUCKETS, seconds)] += 1
        counters.duration_sum += seconds
        counters.count += 1

    def abort_client_gone(self) -> None:
        self.conn.state.activator.forget(self)
        self._cancel_timer()
        up = self.up
        self.up = None
        if up is not None:
            up.pool.busy.discard(up)
            up.abort()
        self._release_pool()
        if not self.response_done:
            self.response_done = True
            self._record(499)
