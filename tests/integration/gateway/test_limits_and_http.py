"""Loopback tests for the gateway's limits, retries, ejection and the RFC 9112 edge cases."""

import os
import socket
import threading
import time

import pytest

from gs_engine.gateway import Endpoint, RouteConfig

from .harness import (
    Backend,
    GatewayRunner,
    raw_exchange,
    wait_for,
    websocket_accept,
    websocket_frame,
)

pytestmark = pytest.mark.integration


def svc(backends: list[Backend], **kw: object) -> RouteConfig:
    eps = tuple(Endpoint(f"ep-{b.name}", "127.0.0.1", b.port) for b in backends)
    return RouteConfig("default/digits", "default", "digits", "/default/digits", endpoints=eps, **kw)  # type: ignore[arg-type]


def read_response(s: socket.socket, buf: bytes = b"") -> tuple[bytes, bytes, bytes]:
    """(head, body, rest) of one Content-Length response read from `s`."""
    while b"\r\n\r\n" not in buf:
        chunk = s.recv(65536)
        if not chunk:
            raise AssertionError(f"closed before a full head: {buf!r}")
        buf += chunk
    head, rest = buf.split(b"\r\n\r\n", 1)
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    while len(rest) < length:
        chunk = s.recv(65536)
        if not chunk:
            break
        rest += chunk
    return head, rest[:length], rest[length:]


def status_of(head: bytes) -> int:
    return int(head.split(b" ", 2)[1])


def header(head: bytes, name: bytes) -> bytes | None:
    for line in head.split(b"\r\n")[1:]:
        k, _, v = line.partition(b":")
        if k.strip().lower() == name:
            return v.strip()
    return None


def get(port: int, path: str, extra: bytes = b"") -> tuple[bytes, bytes]:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(b"GET %s HTTP/1.1\r\nhost: x\r\n%s\r\n" % (path.encode(), extra))
        head, body, _ = read_response(s)
        return head, body


# -- limits ----------------------------------------------------------------------------------------
def test_rate_limit_answers_429_with_retry_after(gateway: GatewayRunner, backend: Backend) -> None:
    gateway.set_routes([svc([backend], rate_limit=0.5, rate_burst=2)])
    codes = [status_of(get(gateway.port, "/default/digits/a")[0]) for _ in range(2)]
    head, _ = get(gateway.port, "/default/digits/a")
    assert codes == [200, 200]
    assert status_of(head) == 429
    assert int(header(head, b"retry-after") or b"0") >= 1
    assert len(backend.requests) == 2


def test_body_over_the_limit_is_413_and_never_forwarded(gateway: GatewayRunner, backend: Backend) -> None:
    gateway.set_routes([svc([backend], max_body_bytes=1000)])
    out = raw_exchange(
        gateway.port,
        b"POST /default/digits/up HTTP/1.1\r\nhost: x\r\ncontent-length: 5000\r\n\r\n" + b"a" * 5000,
    )
    assert out.startswith(b"HTTP/1.1 413 "), out[:100]
    assert b"connection: close" in out.lower()
    assert backend.raw_bytes == 0
    # within the limit it goes through
    with socket.create_connection(("127.0.0.1", gateway.port), timeout=10) as s:
        s.sendall(b"POST /default/digits/up HTTP/1.1\r\nhost: x\r\ncontent-length: 10\r\n\r\n0123456789")
        head, body, _ = read_response(s)
        assert status_of(head) == 200 and b'"body_len": 10' in body


def test_chunked_body_over_the_limit_is_cut_with_413(gateway: GatewayRunner, backend: Backend) -> None:
    gateway.set_routes([svc([backend], max_body_bytes=1000)])
    chunks = b"".join(b"200\r\n" + b"b" * 512 + b"\r\n" for _ in range(4)) + b"0\r\n\r\n"
    out = raw_exchange(
        gateway.port,
        b"POST /default/digits/up HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\n\r\n" + chunks,
    )
    assert out.startswith(b"HTTP/1.1 413 "), out[:100]
    # the backend may have seen the start of the body, never a complete request
    assert wait_for(lambda: backend.connections == backend.closed_connections, 5)
    assert all(r.get("body_len") != 2048 for r in backend.requests)


def test_expect_100_continue(gateway: GatewayRunner, backend: Backend) -> None:
    gateway.set_routes([svc([backend], max_body_bytes=100)])
    with socket.create_connection(("127.0.0.1", gateway.port), timeout=10) as s:
        s.sendall(
            b"POST /default/digits/e HTTP/1.1\r\nhost: x\r\nexpect: 100-continue\r\ncontent-length: 4\r\n\r\n"
        )
        got = b""
        while b"\r\n\r\n" not in got:
            got += s.recv(4096)
        assert got.startswith(b"HTTP/1.1 100 Continue\r\n\r\n")
        s.sendall(b"ping")
        head, body, _ = read_response(s, got.split(b"\r\n\r\n", 1)[1])
        assert status_of(head) == 200 and b'"body": "ping"' in body
    sent = dict(backend.requests[-1]["headers"])
    assert "expect" not in sent  # met by the gateway
    # too large: the final answer comes at once, with no 100 and no body read
    with socket.create_connection(("127.0.0.1", gateway.port), timeout=10) as s:
        s.sendall(
            b"POST /default/digits/e HTTP/1.1\r\nhost: x\r\nexpect: 100-continue\r\n"
            b"content-length: 500\r\n\r\n"
        )
        head, _, _ = read_response(s)
        assert status_of(head) == 413
    assert len(backend.requests) == 1


def test_slow_request_head_is_cut_off_with_408(backend: Backend) -> None:
    g = GatewayRunner(header_timeout=0.4)
    try:
        g.set_routes([svc([backend])])
        with socket.create_connection(("127.0.0.1", g.port), timeout=10) as s:
            t0 = time.monotonic()
            s.sendall(b"GET /default/digits/ HTTP/1.1\r\nho")
            out = b""
            while chunk := s.recv(4096):
                out += chunk
            assert out.startswith(b"HTTP/1.1 408 ")
            assert time.monotonic() - t0 < 5
        assert backend.raw_bytes == 0
        # a client that sends its head in time is served on the same gateway
        assert status_of(get(g.port, "/default/digits/ok")[0]) == 200
    finally:
        g.stop()


def test_connections_per_client_address_are_capped(backend: Backend) -> None:
    g = GatewayRunner(max_connections_per_client=2)
    try:
        g.set_routes([svc([backend])])
        held = [socket.create_connection(("127.0.0.1", g.port), timeout=10) for _ in range(2)]
        try:
            for s in held:  # both are served
                s.sendall(b"GET /default/digits/ HTTP/1.1\r\nhost: x\r\n\r\n")
                assert status_of(read_response(s)[0]) == 200
            out = raw_exchange(g.port, b"GET /default/digits/ HTTP/1.1\r\nhost: x\r\n\r\n")
            assert out.startswith(b"HTTP/1.1 429 "), out[:80]
        finally:
            for s in held:
                s.close()
        # once they are closed, a new connection is accepted again
        assert wait_for(lambda: status_of(get(g.port, "/default/digits/")[0]) == 200, 5)
    finally:
        g.stop()


# -- retries and ejection --------------------------------------------------------------------------
def test_idempotent_requests_are_retried_when_the_route_asks() -> None:
    bad, good = Backend("bad", reset_all=True).start(), Backend("good").start()
    g = GatewayRunner(eject_after=1000)  # keep the bad replica in play
    try:
        g.set_routes([svc([bad, good], retry_idempotent=True, retries=2, retry_budget=1.0)])
        codes = [status_of(get(g.port, f"/default/digits/r{i}")[0]) for i in range(20)]
        assert codes == [200] * 20
        assert bad.requests, "the resetting replica was never tried"
        # a POST is not idempotent: when it lands on the bad replica it fails
        post_codes = []
        for i in range(20):
            with socket.create_connection(("127.0.0.1", g.port), timeout=10) as s:
                s.sendall(b"POST /default/digits/p%d HTTP/1.1\r\nhost: x\r\ncontent-length: 1\r\n\r\nx" % i)
                post_codes.append(status_of(read_response(s)[0]))
        assert 502 in post_codes and 200 in post_codes
    finally:
        g.stop()
        bad.stop()
        good.stop()


def test_the_retry_budget_caps_retries() -> None:
    bad, good = Backend("bad", reset_all=True).start(), Backend("good").start()
    g = GatewayRunner(eject_after=1000)
    try:
        g.set_routes([svc([bad, good], retry_idempotent=True, retries=2, retry_budget=0.0)])
        t0 = time.monotonic()
        codes = [status_of(get(g.port, f"/default/digits/r{i}")[0]) for i in range(60)]
        windows = int(time.monotonic() - t0) + 2  # one-second windows the run can touch
        # a first try on the bad replica is either retried on the good one (200) or a 502
        retries = len(bad.requests) - codes.count(502)
        assert len(good.requests) == codes.count(200)
        assert codes.count(502) >= 1
        assert retries <= 3 * windows  # with no share of requests, only the floor of 3 per second
    finally:
        g.stop()
        bad.stop()
        good.stop()


def test_without_retry_idempotent_a_reset_is_a_502() -> None:
    bad = Backend("bad", reset_all=True).start()
    g = GatewayRunner()
    try:
        g.set_routes([svc([bad])])
        assert status_of(get(g.port, "/default/digits/x")[0]) == 502
        assert len(bad.requests) == 1
    finally:
        g.stop()
        bad.stop()


def test_failing_replica_is_ejected_for_a_while() -> None:
    bad, good = Backend("bad", fail_status=503).start(), Backend("good").start()
    g = GatewayRunner(eject_after=3, eject_seconds=30)
    try:
        g.set_routes([svc([bad, good])])
        codes = [status_of(get(g.port, f"/default/digits/{i}")[0]) for i in range(40)]
        assert codes.count(503) == 3  # three failures in a row, then it is out
        assert len(bad.requests) == 3
        report = g.call(g.gateway.load_report)
        assert report["ep-bad"].ejected and not report["ep-good"].ejected
    finally:
        g.stop()
        bad.stop()
        good.stop()


def test_load_report_gives_inflight_and_last_second_rate(gateway: GatewayRunner, backend: Backend) -> None:
    gateway.set_routes([svc([backend])])
    done = threading.Event()

    def slow() -> None:
        get(gateway.port, "/default/digits/slow?s=1.5")
        done.set()

    t = threading.Thread(target=slow)
    t.start()
    for _ in range(5):
        get(gateway.port, "/default/digits/fast")
    assert wait_for(lambda: gateway.call(gateway.gateway.load_report)["ep-b1"].inflight == 1, 5)
    assert wait_for(lambda: gateway.call(gateway.gateway.load_report)["ep-b1"].requests_last_second > 0, 5)
    t.join(10)
    assert done.is_set()
    report = gateway.call(gateway.gateway.load_report)["ep-b1"]
    assert report.inflight == 0
    # a quiet second later the rate is back to zero
    assert wait_for(lambda: gateway.call(gateway.gateway.load_report)["ep-b1"].requests_last_second == 0, 5)


# -- RFC 9112 framing -------------------------------------------------------------------------------
@pytest.mark.parametrize("code", [204, 304])
def test_204_and_304_have_no_body(gateway: GatewayRunner, backend: Backend, code: int) -> None:
    gateway.set_routes([svc([backend])])
    with socket.create_connection(("127.0.0.1", gateway.port), timeout=10) as s:
        # two on one connection: the second is only read right if the first had no body
        s.sendall(b"GET /default/digits/status?code=%d HTTP/1.1\r\nhost: x\r\n\r\n" % code)
        s.sendall(b"GET /default/digits/after HTTP/1.1\r\nhost: x\r\n\r\n")
        buf = b""
        while buf.count(b"\r\n\r\n") < 2:
            buf += s.recv(65536)
        first, rest = buf.split(b"\r\n\r\n", 1)
        assert status_of(first) == code
        assert header(first, b"transfer-encoding") is None and header(first, b"content-length") is None
        head, body, _ = read_response(s, rest)
        assert status_of(head) == 200 and b"/after" in body


def test_interim_1xx_is_passed_before_the_final_answer(gateway: GatewayRunner, backend: Backend) -> None:
    gateway.set_routes([svc([backend])])
    with socket.create_connection(("127.0.0.1", gateway.port), timeout=10) as s:
        s.sendall(b"GET /default/digits/hints HTTP/1.1\r\nhost: x\r\n\r\n")
        buf = b""
        while buf.count(b"\r\n\r\n") < 2:
            buf += s.recv(65536)
        interim, rest = buf.split(b"\r\n\r\n", 1)
        assert interim.startswith(b"HTTP/1.1 103 ") and b"rel=preload" in interim
        head, body, _ = read_response(s, rest)
        assert status_of(head) == 200 and body == b"final"


def test_response_without_length_is_chunked_to_http11_clients(
    gateway: GatewayRunner, backend: Backend
) -> None:
    gateway.set_routes([svc([backend])])
    out = raw_exchange(
        gateway.port, b"GET /default/digits/nolength HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n"
    )
    head, body = out.split(b"\r\n\r\n", 1)
    assert header(head, b"transfer-encoding") == b"chunked"
    assert body == b"d\r\nuntil the end\r\n0\r\n\r\n"


@pytest.mark.parametrize(
    "attack",
    [
        b"GET /default/digits/s HTTP/1.1\r\nhost: x\r\nx-a : 1\r\n\r\n",  # space before colon
        b"GET /default/digits/s HTTP/1.1\r\nhost: x\r\nx-a: 1\r\n folded\r\n\r\n",  # obs-fold
        b"GET /default/digits/s HTTP/1.1\r\nhost: x\nx-a: 1\r\n\r\n",  # bare LF in a header
        b"GET /default/digits/s HTTP/1.1\nhost: x\r\n\r\n",  # bare LF after the request line
        b"POST /default/digits/s HTTP/1.1\r\nhost: x\r\ncontent-length: 1, 2\r\n\r\nab",
        b"POST /default/digits/s HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\n\r\n"
        b"5\nhello\r\n0\r\n\r\n",
        b"POST /default/digits/s HTTP/1.1\r\nhost: x\r\ntransfer-encoding: gzip, chunked\r\n\r\n0\r\n\r\n",
        b"POST /default/digits/s HTTP/1.1\r\nhost: x\r\ncontent-length: 3\r\n"
        b"transfer-encoding: chunked\r\n\r\n0\r\n\r\n",
        b"GET /default/digits/s HTTP/1.1\r\nhost: x\r\nexpect: something-else\r\n\r\n",
    ],
)
def test_more_smuggling_shapes_are_400(gateway: GatewayRunner, backend: Backend, attack: bytes) -> None:
    gateway.set_routes([svc([backend])])
    out = raw_exchange(gateway.port, attack)
    assert out.startswith(b"HTTP/1.1 400 "), out[:200]
    assert b"connection: close" in out.lower()
    assert out.count(b"HTTP/1.1 ") == 1
    assert backend.raw_bytes == 0


# -- upgrades and big bodies ------------------------------------------------------------------------
def test_websocket_echo_through_the_gateway(gateway: GatewayRunner, backend: Backend) -> None:
    gateway.set_routes([svc([backend])])
    key = b"dGhlIHNhbXBsZSBub25jZQ=="
    with socket.create_connection(("127.0.0.1", gateway.port), timeout=10) as s:
        s.sendall(
            b"GET /default/digits/ws HTTP/1.1\r\nhost: x\r\nupgrade: websocket\r\nconnection: Upgrade\r\n"
            b"sec-websocket-key: %s\r\nsec-websocket-version: 13\r\n\r\n" % key
        )
        buf = b""
        while b"\r\n\r\n" not in buf:
            buf += s.recv(4096)
        head, rest = buf.split(b"\r\n\r\n", 1)
        assert status_of(head) == 101
        assert header(head, b"sec-websocket-accept") == websocket_accept(key)
        for text in (b"hello", b"x" * 70000):
            s.sendall(websocket_frame(text, mask=os.urandom(4)))
            want = websocket_frame(text)
            while len(rest) < len(want):
                rest += s.recv(65536)
            assert rest[: len(want)] == want
            rest = rest[len(want) :]
        s.sendall(websocket_frame(b"\x03\xe8", opcode=8, mask=b"abcd"))
        while len(rest) < 4:
            chunk = s.recv(4096)
            if not chunk:
                break
            rest += chunk
        assert rest[:1] == b"\x88"


def _rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def test_a_1_gib_chunked_upload_streams_with_flat_memory(gateway: GatewayRunner, backend: Backend) -> None:
    gateway.set_routes([svc([backend])])
    total = 1024 * 1024 * 1024
    block = os.urandom(1024 * 1024)
    before = _rss_bytes()
    peak = before
    with socket.create_connection(("127.0.0.1", gateway.port), timeout=30) as s:
        s.sendall(b"POST /default/digits/sink HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\n\r\n")
        frame = b"%x\r\n%s\r\n" % (len(block), block)
        for i in range(total // len(block)):
            s.sendall(frame)
            if i % 16 == 0:
                peak = max(peak, _rss_bytes())
        s.sendall(b"0\r\n\r\n")
        head, body, _ = read_response(s)
    assert status_of(head) == 200
    assert int(body) == total
    growth = max(peak, _rss_bytes()) - before
    assert growth < 48 * 1024 * 1024, f"RSS grew by {growth / 2**20:.0f} MiB while streaming"


# -- stalls mid-stream (the route's idle timeout) ----------------------------------------------------
def _read_until_closed(s: socket.socket) -> bytes:
    got = b""
    try:
        while chunk := s.recv(65536):
            got += chunk
    except ConnectionResetError:
        pass
    return got


def test_a_response_that_stalls_mid_body_is_cut_after_the_idle_timeout(
    gateway: GatewayRunner, backend: Backend
) -> None:
    gateway.set_routes([svc([backend], idle_timeout=1.0)])
    with socket.create_connection(("127.0.0.1", gateway.port), timeout=15) as s:
        started = time.monotonic()
        s.sendall(b"GET /default/digits/stall HTTP/1.1\r\nhost: x\r\n\r\n")
        got = _read_until_closed(s)
        waited = time.monotonic() - started
    head, _, body = got.partition(b"\r\n\r\n")
    assert status_of(head) == 200
    assert body == b"s" * 10  # what the replica sent, then the cut: never a made-up end
    assert waited >= 1.0  # not before the idle timeout
    assert gateway.call(lambda: gateway.gateway.upstream_errors_total) == 1  # counted as a failed exchange


def test_a_request_body_that_stalls_gets_408(gateway: GatewayRunner, backend: Backend) -> None:
    gateway.set_routes([svc([backend], idle_timeout=1.0)])
    with socket.create_connection(("127.0.0.1", gateway.port), timeout=15) as s:
        s.sendall(b"POST /default/digits/sink HTTP/1.1\r\nhost: x\r\ncontent-length: 100\r\n\r\n0123456789")
        got = _read_until_closed(s)
    head = got.split(b"\r\n\r\n", 1)[0]
    assert status_of(head) == 408
    assert b"stalled" in got


def test_a_client_that_reads_slowly_is_not_taken_for_a_stall(
    gateway: GatewayRunner, backend: Backend
) -> None:
    gateway.set_routes([svc([backend], idle_timeout=1.0)])
    size = 8 * 1024 * 1024
    with socket.create_connection(("127.0.0.1", gateway.port), timeout=15) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
        s.sendall(b"GET /default/digits/chunked?n=%d HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n" % size)
        time.sleep(3.0)  # the client reads nothing for three idle timeouts: buffers fill, the gateway waits
        got = _read_until_closed(s)
    assert status_of(got.split(b"\r\n\r\n", 1)[0]) == 200
    assert got.endswith(b"0\r\n\r\n")
