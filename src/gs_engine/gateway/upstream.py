"""Connections to replicas: an asyncio Protocol per connection and a bounded idle pool per endpoint."""

from __future__ import annotations

import asyncio
import re
from typing import TYPE_CHECKING, Protocol, cast

import httptools

from gs_engine.gateway.stats import EndpointCounters

if TYPE_CHECKING:
    from gs_engine.gateway.routes import Endpoint

WRITE_HIGH_WATER = 256 * 1024
WRITE_LOW_WATER = 64 * 1024
MAX_RESPONSE_HEAD = 256 * 1024  # a replica's response head may not grow past this


_CONNECTION_CLOSE = re.compile(rb"\r\nconnection[ \t]*:[^\r\n]*close", re.IGNORECASE)


class WriteHolder(Protocol):
    """The client side of an exchange: writes can be held while one upstream read is handled.

    While `wbuf` is a list, writes are appended to it; `flush` sends them and sets it to None.
    """

    wbuf: list[bytes] | None

    def flush(self) -> None: ...


class ResponseSink(Protocol):
    """What an upstream connection reports to: the exchange it currently carries.

    `on_upstream_head` gets the status code and the raw response head, status line to the
    blank line included, exactly as the replica sent it (the parser has already checked it).
    """

    @property
    def conn(self) -> WriteHolder: ...
    def on_upstream_head(self, status: int, head: bytes) -> None: ...
    def on_upstream_body(self, data: bytes) -> None: ...
    def on_upstream_complete(self, keep_alive: bool) -> None: ...
    def on_upstream_lost(self, exc: Exception | None) -> None: ...
    def on_upstream_upgrade(self, rest: bytes) -> None: ...
    def on_upstream_pause_writing(self) -> None: ...
    def on_upstream_resume_writing(self) -> None: ...


class UpstreamConnection:
    __slots__ = (
        "pool",
        "transport",
        "parser",
        "sink",
        "idle_since",
        "closed",
        "got_bytes",
        "reads",
        "tunnel",
        "_head",
        "_head_only",
    )

    def __init__(self, pool: EndpointPool) -> None:
        self.pool = pool
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.sink: ResponseSink | None = None
        self.idle_since = 0.0
        self.closed = False
        self.got_bytes = False  # any response byte since the current request was sent
        self.reads = 0  # data_received calls so far: the once-a-second sweep spots a stalled response
        self.tunnel = False
        self._head: bytes | None = b""  # the response head so far (None once it is complete)
        self._head_only = False

    # -- asyncio.Protocol -------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport = cast(asyncio.Transport, transport)
        transport.set_write_buffer_limits(WRITE_HIGH_WATER, WRITE_LOW_WATER)

    def data_received(self, data: bytes) -> None:
        sink = self.sink
        if sink is None:  # bytes on an idle connection: the replica is confused; drop it
            self.close()
            return
        self.got_bytes = True
        self.reads += 1
        if self.tunnel:
            sink.on_upstream_body(data)
            return
        client = sink.conn
        # collect the client's writes until flush: a response head and body leave in one call
        held = client.wbuf is None
        if held:
            client.wbuf = []
        if self._head is not None:
            self._head += data
            if len(self._head) > MAX_RESPONSE_HEAD:
                self.sink = None
                self.close()
                sink.on_upstream_lost(ValueError("the response head is too large"))
                if held:
                    client.flush()
                return
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade as exc:
            offset = int(exc.args[0]) if exc.args else len(data)
            self.tunnel = True
            sink.on_upstream_upgrade(data[offset:])
        except httptools.HttpParserError as exc:
            self.sink = None
            self.close()
            sink.on_upstream_lost(exc)
        finally:
            if held:
                client.flush()

    def eof_received(self) -> bool | None:
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.pool.forget(self)
        sink = self.sink
        if sink is not None:
            self.sink = None
            sink.on_upstream_lost(exc)

    def pause_writing(self) -> None:
        if self.sink is not None:
            self.sink.on_upstream_pause_writing()

    def resume_writing(self) -> None:
        if self.sink is not None:
            self.sink.on_upstream_resume_writing()

    # -- httptools callbacks --------------------------------------------------------------
    # No per-header callbacks: the parser checks the head and frames the body, and the head
    # is handed on as the raw bytes collected in `_head` (one slice instead of a call per header).
    def on_headers_complete(self) -> None:
        sink = self.sink
        raw = self._head or b""
        if raw[:1] != b"H":  # the parser lets empty lines precede a status line
            raw = raw.lstrip(b"\r\n")
        end = raw.find(b"\r\n\r\n") + 4
        head = raw[:end]
        status = self.parser.get_status_code()
        if 100 <= status < 200 and status != 101:
            self._head = raw[end:]  # an interim response: the final head follows it
        else:
            self._head = None
        if sink is None:
            return
        sink.on_upstream_head(status, head)
        if self._head_only and status >= 200 and status != 101:
            # A HEAD response has no body whatever its Content-Length says; the parser
            # cannot be told, so finish here and parse the next response with a new one.
            self.parser = httptools.HttpResponseParser(self)
            self._head = b""
            self.sink = None
            sink.on_upstream_complete(_CONNECTION_CLOSE.search(head) is None)

    def on_body(self, body: bytes) -> None:
        if self.sink is not None:
            self.sink.on_upstream_body(body)

    def on_message_complete(self) -> None:
        sink = self.sink
        if sink is None:
            return
        if self.parser.get_status_code() < 200:
            return  # an interim response (100 Continue); the final one follows
        self.sink = None
        self._head = b""
        sink.on_upstream_complete(self.parser.should_keep_alive())

    # -- used by the exchange ---------------------------------------------------------------
    def attach(self, sink: ResponseSink, head_only: bool) -> None:
        self.sink = sink
        self.got_bytes = False
        self._head = b""
        self._head_only = head_only

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()

    def abort(self) -> None:
        self.closed = True
        self.sink = None
        if self.transport is not None:
            self.transport.abort()


class EndpointPool:
    """Idle keep-alive connections to one endpoint (most recently used first) and its counters."""

    __slots__ = ("endpoint", "ep_id", "max_idle", "idle", "removed", "counters", "busy")

    def __init__(self, endpoint: Endpoint, max_idle: int = 64) -> None:
        self.endpoint = endpoint
        self.ep_id = endpoint.id  # read on every request
        self.max_idle = max_idle
        self.idle: list[UpstreamConnection] = []  # oldest first; taken from the end
        self.busy: set[UpstreamConnection] = set()
        self.removed = False
        self.counters = EndpointCounters()

    def take_idle(self, now: float, idle_timeout: float) -> UpstreamConnection | None:
        idle = self.idle
        while idle:
            conn = idle.pop()
            if conn.closed or conn.transport is None or conn.transport.is_closing():
                continue
            if now - conn.idle_since > idle_timeout:
                conn.close()
                continue
            self.busy.add(conn)
            return conn
        return None

    async def connect(self, timeout: float) -> UpstreamConnection:
        loop = asyncio.get_running_loop()
        ep = self.endpoint
        connecting = loop.create_connection(
            lambda: cast(asyncio.Protocol, UpstreamConnection(self)), ep.host, ep.port
        )
        _, protocol = await asyncio.wait_for(connecting, timeout)
        proto = cast(UpstreamConnection, protocol)
        if self.removed:
            proto.close()
            raise ConnectionResetError(f"endpoint {ep.id} was removed")
        self.busy.add(proto)
        return proto

    def release(self, conn: UpstreamConnection, now: float) -> None:
        """Give a connection back after a complete exchange."""
        self.busy.discard(conn)
        conn.sink = None
        if self.removed or conn.closed or len(self.idle) >= self.max_idle:
            conn.close()
            return
        conn.idle_since = now
        self.idle.append(conn)

    def forget(self, conn: UpstreamConnection) -> None:
        self.busy.discard(conn)
        try:
            self.idle.remove(conn)
        except ValueError:
            pass

    def sweep(self, now: float, idle_timeout: float) -> None:
        idle = self.idle
        stale = 0
        while stale < len(idle) and now - idle[stale].idle_since > idle_timeout:
            stale += 1
        if stale:
            expired = idle[:stale]
            del idle[:stale]
            for conn in expired:
                conn.close()

    def close_idle(self) -> None:
        idle, self.idle = self.idle, []
        for conn in idle:
            conn.close()

    def close_all(self) -> None:
        self.close_idle()
        for conn in list(self.busy):
            conn.close()
