"""Malformed requests over a real socket: the gateway answers or closes, never crashes, and
never forwards to a replica anything that replica could not parse as HTTP/1.1."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Iterator
from typing import cast

import httptools
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gs_engine.gateway import Endpoint, RouteConfig
from tests.integration.gateway.harness import GatewayRunner, LoopThread

pytestmark = pytest.mark.integration


class StrictBackend(asyncio.Protocol):
    """Parses what the gateway sends with httptools and answers 200 to each request."""

    errors: list[str]
    requests: list[bytes]

    def __init__(self, errors: list[str], requests: list[bytes]) -> None:
        self.errors = errors
        self.requests = requests
        self.parser = httptools.HttpRequestParser(self)
        self.transport: asyncio.Transport | None = None
        self.url = b""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            pass
        except httptools.HttpParserError as exc:
            self.errors.append(f"{exc}: {data[:300]!r}")
            if self.transport is not None:
                self.transport.close()

    def on_url(self, url: bytes) -> None:
        self.url += url

    def on_message_complete(self) -> None:
        self.requests.append(self.url)
        self.url = b""
        if self.transport is not None:
            self.transport.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")


class Rig:
    def __init__(self) -> None:
        self.errors: list[str] = []
        self.requests: list[bytes] = []
        self.lt = LoopThread()

        async def serve() -> asyncio.AbstractServer:
            return await asyncio.get_running_loop().create_server(
                lambda: StrictBackend(self.errors, self.requests), "127.0.0.1", 0
            )

        self.server = self.lt.run(serve())
        port = self.server.sockets[0].getsockname()[1]
        self.gateway = GatewayRunner(header_timeout=2.0)
        eps = (Endpoint("fz", "127.0.0.1", port),)
        self.gateway.set_routes([RouteConfig("f/z", "f", "z", "/f/z", endpoints=eps, max_body_bytes=4096)])

    def stop(self) -> None:
        self.gateway.stop()
        self.server.close()
        self.lt.stop()


@pytest.fixture(scope="module")
def rig() -> Iterator[Rig]:
    r = Rig()
    yield r
    r.stop()


def exchange(port: int, data: bytes) -> bytes:
    """Send, half-close, read to the end; a gateway that neither answers nor closes fails."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        try:
            s.sendall(data)
            s.shutdown(socket.SHUT_WR)
        except OSError:
            pass  # the gateway may close early on garbage
        out = b""
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            try:
                chunk = s.recv(65536)
            except ConnectionResetError:
                break
            if not chunk:
                return out
            out += chunk
        raise AssertionError(f"the gateway neither answered nor closed for {data[:200]!r}")


TOKENS = [
    b"GET",
    b"POST",
    b"PUT",
    b" ",
    b"  ",
    b"\r\n",
    b"\n",
    b"\r",
    b"\t",
    b":",
    b" :",
    b"/f/z/",
    b"/other",
    b"http://h/f/z",
    b"HTTP/1.1",
    b"HTTP/1.0",
    b"HTTP/2.0",
    b"host: x",
    b"content-length: 5",
    b"content-length: -1",
    b"content-length: 99999",
    b"content-length: 2, 3",
    b"transfer-encoding: chunked",
    b"transfer-encoding: identity",
    b"transfer-encoding: gzip, chunked",
    b"connection: close",
    b"connection: upgrade",
    b"upgrade: websocket",
    b"expect: 100-continue",
    b"x-a: b",
    b" folded",
    b"5",
    b"ffffffffffffffff",
    b"0",
    b"hello",
    b";ext=1",
    b"\x00",
    b"\xff",
]

VALID = [
    b"GET /f/z/a HTTP/1.1\r\nhost: x\r\n\r\n",
    b"POST /f/z/b HTTP/1.1\r\nhost: x\r\ncontent-length: 5\r\n\r\nhello",
    b"POST /f/z/c HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
]


@st.composite
def requests(draw: st.DrawFn) -> bytes:
    kind = draw(st.integers(0, 2))
    if kind == 0:  # a stream of protocol-looking tokens
        return b"".join(draw(st.lists(st.sampled_from(TOKENS), min_size=1, max_size=30)))
    base = bytearray(draw(st.sampled_from(VALID)))
    if kind == 1:  # a valid request, mutated in a few places
        for _ in range(draw(st.integers(1, 4))):
            op = draw(st.integers(0, 2))
            at = draw(st.integers(0, len(base)))
            if op == 0 and base:
                del base[min(at, len(base) - 1)]
            elif op == 1:
                base[at:at] = draw(st.sampled_from(TOKENS))
            else:
                base[at:at] = draw(st.binary(min_size=1, max_size=4))
        return bytes(base)
    # a valid request followed by a second, arbitrary one (pipelining / smuggling shapes)
    return bytes(base) + b"".join(draw(st.lists(st.sampled_from(TOKENS), min_size=1, max_size=12)))


@settings(
    max_examples=120,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=requests())
def test_malformed_requests_are_answered_or_closed_and_never_forwarded_unparsed(
    rig: Rig, data: bytes
) -> None:
    out = exchange(rig.gateway.port, data)
    if out:
        assert out.startswith(b"HTTP/1.1 "), out[:100]
        assert out[9:12].isdigit(), out[:100]
    assert not rig.errors, rig.errors
    # and it is still serving
    ok = exchange(rig.gateway.port, b"GET /f/z/alive HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
    assert ok.startswith(b"HTTP/1.1 200 "), ok[:100]
