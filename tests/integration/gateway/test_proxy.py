"""The gateway on loopback with real sockets: a scripted backend behind it, raw and httpx clients."""

import hashlib
import json
import socket
import threading

import httpx
import pytest
from prometheus_client import CollectorRegistry, generate_latest

from gs_engine.errors import Conflict
from gs_engine.gateway import Endpoint, Gateway, RouteConfig, register_gateway_metrics

from .harness import Backend, GatewayRunner, LoopThread, payload, raw_exchange, wait_for

pytestmark = pytest.mark.integration


def svc(backends: list[Backend], ns: str = "default", name: str = "digits", **kw: object) -> RouteConfig:
    eps = tuple(Endpoint(f"{ns}-{name}-{b.name}", "127.0.0.1", b.port) for b in backends)
    return RouteConfig(f"{ns}/{name}", ns, name, f"/{ns}/{name}", endpoints=eps, **kw)  # type: ignore[arg-type]


def test_get_and_post_with_prefix_stripped(gateway: GatewayRunner, backend: Backend) -> None:
    gateway.set_routes([svc([backend])])
    with httpx.Client(base_url=gateway.url) as c:
        r = c.get("/default/digits/predict?k=v")
        assert r.status_code == 200
        assert r.json()["method"] == "GET" and r.json()["path"] == "/predict?k=v"
        r = c.post("/default/digits", content=b"x=1&y=2")
        assert r.json()["method"] == "POST" and r.json()["path"] == "/"
        assert r.json()["body"] == "x=1&y=2"


def test_host_routes(gateway: GatewayRunner) -> None:
    a, b = Backend("a").start(), Backend("b").start()
    try:
        gateway.set_routes(
            [
                RouteConfig(
                    "x/a", "x", "a", "/", host="a.example", endpoints=(Endpoint("a", "127.0.0.1", a.port),)
                ),
                RouteConfig("x/b", "x", "b", "/", endpoints=(Endpoint("b", "127.0.0.1", b.port),)),
            ]
        )
        with httpx.Client(base_url=gateway.url) as c:
            assert c.get("/p", headers={"host": "A.example:9999"}).json()["backend"] == "a"
            assert c.get("/p", headers={"host": "other"}).json()["backend"] == "b"
    finally:
        a.stop()
        b.stop()


def _problem(r: httpx.Response, status: int) -> dict[str, object]:
    assert r.status_code == status
    assert r.headers["content-type"] == "application/problem+json"
    assert r.headers["x-request-id"]
    doc = r.json()
    assert doc["status"] == status
    return doc


def test_no_route_is_404_naming_the_path(gateway: GatewayRunner) -> None:
    with httpx.Client(base_url=gateway.url) as c:
        doc = _problem(c.get("/nowhere/at/all"), 404)
        assert "/nowhere/at/all" in str(doc["detail"])


def test_no_ready_endpoint_is_503_with_retry_after(gateway: GatewayRunner) -> None:
    gateway.set_routes([svc([])])
    with httpx.Client(base_url=gateway.url) as c:
        r = c.get("/default/digits/x")
        doc = _problem(r, 503)
        assert r.headers["retry-after"] == "1"
        assert "default/digits" in str(doc["detail"])


def test_connect_failure_is_502_without_internal_addresses(gateway: GatewayRunner) -> None:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    dead_port = s.getsockname()[1]
    s.close()  # nothing listens there now
    gateway.set_routes(
        [
            RouteConfig(
                "default/digits",
                "default",
                "digits",
                "/default/digits",
                endpoints=(Endpoint("e1", "127.0.0.1", dead_port),),
            )
        ]
    )
    with httpx.Client(base_url=gateway.url) as c:
        r = c.get("/default/digits/x")
        doc = _problem(r, 502)
        assert "default/digits" in str(doc["detail"])
        assert str(dead_port) not in r.text and "127.0.0.1" not in r.text
    assert gateway.call(lambda: gateway.gateway.endpoint_stats()["e1"].errors_total) >= 1


def test_reset_before_response_is_502(gateway: GatewayRunner, backend: Backend) -> None:
    gateway.set_routes([svc([backend])])
    with httpx.Client(base_url=gateway.url) as c:
        _problem(c.get("/default/digits/reset"), 502)
        assert c.get("/default/digits/ok").status_code == 200  # the client connection survives


def test_slow_replica_is_504(gateway: GatewayRunner, backend: Backend) -> None:
    gateway.set_routes([svc([backend], response_timeout=0.3)])
    with httpx.Client(base_url=gateway.url, timeout=10) as c:
        doc = _problem(c.get("/default/digits/slow?s=3"), 504)
        assert "default/digits" in str(doc["detail"])


def test_long_response_timeout_is_kept_by_the_sweep(gateway: GatewayRunner, backend: Backend) -> None:
    # Timeouts of COARSE_TIMEOUT or more have no timer of their own: the gateway's sweep
    # answers 504 once the deadline has passed. Bring the deadline forward instead of waiting.
    from gs_engine.gateway.proxy import COARSE_TIMEOUT

    gateway.set_routes([svc([backend], response_timeout=COARSE_TIMEOUT * 4)])
    state = gateway.gateway._state
    result: dict[str, httpx.Response] = {}

    def slow() -> None:
        with httpx.Client(base_url=gateway.url, timeout=30) as c:
            result["r"] = c.get("/default/digits/slow?s=20")

    t = threading.Thread(target=slow)
    t.start()

    def waiting() -> list[object]:
        return [c.queue[0] for c in state.clients if c.queue and c.queue[0].deadline]

    assert wait_for(lambda: bool(gateway.call(waiting)))
    left = gateway.call(lambda: [ex.deadline - state.loop.time() for ex in waiting()])  # type: ignore[attr-defined]
    assert COARSE_TIMEOUT * 3 < left[0] <= COARSE_TIMEOUT * 4
    gateway.call(lambda: [setattr(ex, "deadline", state.loop.time()) for ex in waiting()])  # type: ignore[union-attr]
    t.join(timeout=10)
    assert not t.is_alive(), "the sweep did not answer the overdue request"
    doc = _problem(result["r"], 504)
    assert "default/digits" in str(doc["detail"])


def test_keep_alive_reuses_the_upstream_connection(gateway: GatewayRunner, backend: Backend) -> None:
    gateway.set_routes([svc([backend])])
    with httpx.Client(base_url=gateway.url) as c:
        ports = {c.get(f"/default/digits/{i}").json()["peer_port"] for i in range(10)}
    assert len(ports) == 1
    assert backend.connections == 1


def test_pipelined_requests_are_answered_in_order(gateway: GatewayRunner, backend: Backend) -> None:
    gateway.set_routes([svc([backend])])
    reqs = b"".join(
        b"POST /default/digits/%d HTTP/1.1\r\nhost: x\r\ncontent-length: 3\r\n\r\nab%d" % (i, i % 10)
        for i in range(20)
    )
    reqs += b"GET /default/digits/last HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n"
    out = raw_exchange(gateway.port, reqs)
    bodies = [json.loads(part.split(b"\r\n\r\n", 1)[1]) for part in out.split(b"HTTP/1.1 ")[1:]]
    assert [b["path"] for b in bodies] == [f"/{i}" for i in range(20)] + ["/last"]
    assert [b["body"] for b in bodies[:20]] == [f"ab{i % 10}" for i in range(20)]


def test_chunked_upload_streams_byte_exact(gateway: GatewayRunner, backend: Backend) -> None:
    gateway.set_routes([svc([backend])])
    data = payload(3_000_000)

    def parts():
        for i in range(0, len(data), 100_003):
            yield data[i : i + 100_003]

    with httpx.Client(base_url=gateway.url, timeout=30) as c:
        r = c.post("/default/digits/up", content=parts())  # no length: httpx sends chunked
        assert r.status_code == 200
        got = r.json()
    assert got["body_len"] == len(data)
    assert got["body_sha"] == hashlib.sha256(data).hexdigest()
    headers = dict(got["headers"])
    assert headers["transfer-encoding"] == "chunked"


@pytest.mark.parametrize("kind", ["chunked", "close"])
def test_streamed_downloads_byte_exact(gateway: GatewayRunner, backend: Backend, kind: str) -> None:
    gateway.set_routes([svc([backend])])
    n = 4_000_000
    with httpx.Client(base_url=gateway.url, timeout=30) as c:
        with c.stream("GET", f"/default/digits/{kind}?n={n}") as r:
            assert r.status_code == 200
            assert r.headers["transfer-encoding"] == "chunked"  # re-framed for an HTTP/1.1 client
            digest = hashlib.sha256()
            for chunk in r.iter_bytes():
                digest.update(chunk)
        assert digest.hexdigest() == hashlib.sha256(payload(n)).hexdigest()
        assert c.get("/default/digits/after").status_code == 200  # the client connection is still good


def test_close_delimited_download_to_http10_client(gateway: GatewayRunner, backend: Backend) -> None:
    gateway.set_routes([svc([backend])])
    out = raw_exchange(gateway.port, b"GET /default/digits/close?n=200000 HTTP/1.0\r\n\r\n")
    head, body = out.split(b"\r\n\r\n", 1)
    assert b"transfer-encoding" not in head.lower()
    assert body == payload(200_000)


def test_forwarding_headers_and_request_id(gateway: GatewayRunner, backend: Backend) -> None:
    gateway.set_routes([svc([backend])])
    with httpx.Client(base_url=gateway.url) as c:
        r = c.get(
            "/default/digits/h",
            headers={
                "x-forwarded-for": "10.1.2.3",
                "x-request-id": "abc-123",
                "x-forwarded-proto": "https",
                "via": "1.0 edge",
            },
        )
        h = dict(r.json()["headers"])
        assert h["x-forwarded-for"] == "10.1.2.3, 127.0.0.1"
        assert h["x-forwarded-proto"] == "http"
        assert h["x-forwarded-host"] == f"127.0.0.1:{gateway.port}"
        assert h["via"] == "1.0 edge, 1.1 gse"
        assert h["x-request-id"] == "abc-123"
        assert r.headers["x-request-id"] == "abc-123"
        r1 = c.get("/default/digits/h")
        r2 = c.get("/default/digits/h", headers={"x-request-id": "bad id\twith space" * 20})
        ids = {r1.headers["x-request-id"], r2.headers["x-request-id"]}
        assert len(ids) == 2 and all(0 < len(i) <= 32 for i in ids)
        assert dict(r1.json()["headers"])["x-request-id"] == r1.headers["x-request-id"]


def test_hop_by_hop_headers_are_removed(gateway: GatewayRunner, backend: Backend) -> None:
    gateway.set_routes([svc([backend])])
    req = (
        b"GET /default/digits/echo HTTP/1.1\r\nhost: x\r\nconnection: keep-alive, x-private\r\n"
        b"x-private: secret\r\nkeep-alive: 300\r\nte: trailers\r\nproxy-connection: keep-alive\r\n"
        b"trailer: x-t\r\nupgrade: h2c\r\nx-public: fine\r\n\r\n"
        b"GET /default/digits/hop HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n"
    )
    out = raw_exchange(gateway.port, req)
    first, second = out.split(b"HTTP/1.1 ")[1:]
    sent = {k for k, _ in json.loads(first.split(b"\r\n\r\n", 1)[1])["headers"]}
    for hop in ("connection", "x-private", "keep-alive", "te", "proxy-connection", "trailer", "upgrade"):
        assert hop not in sent
    assert "x-public" in sent
    head = second.split(b"\r\n\r\n", 1)[0].lower()
    assert b"x-secret" not in head and b"keep-alive:" not in head
    assert b"x-kept: yes" in head


@pytest.mark.parametrize(
    "attack",
    [
        b"POST /default/digits/s HTTP/1.1\r\nhost: x\r\ncontent-length: 4\r\n"
        b"transfer-encoding: chunked\r\n\r\n"
        b"0\r\n\r\nGET /default/digits/smuggled HTTP/1.1\r\nhost: x\r\n\r\n",
        b"POST /default/digits/s HTTP/1.1\r\nhost: x\r\ncontent-length: 4\r\ncontent-length: 30\r\n\r\nabcd",
        b"POST /default/digits/s HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked, identity\r\n\r\n"
        b"0\r\n\r\n",
        b"POST /default/digits/s HTTP/1.1\r\nhost: x\r\ntransfer-encoding: xchunked\r\n\r\n0\r\n\r\n",
        b"POST /default/digits/s HTTP/1.1\r\nhost: x\r\ntransfer-encoding : chunked\r\n\r\n0\r\n\r\n",
        b"POST /default/digits/s HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\n\r\n"
        b"zz\r\nabc\r\n0\r\n\r\n",
        b"GET /default/digits/s HTTP/1.1\r\n\r\n",
        b"GET /default/digits/s HTTP/1.1\r\nhost: x\r\nbad header\r\n\r\n",
    ],
)
def test_smuggling_attempts_get_400_and_reach_nothing(
    gateway: GatewayRunner, backend: Backend, attack: bytes
) -> None:
    gateway.set_routes([svc([backend])])
    out = raw_exchange(gateway.port, attack)
    assert out.startswith(b"HTTP/1.1 400 "), out[:200]
    head, body = out.split(b"\r\n\r\n", 1)
    length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
    assert len(body) == length  # one answer, nothing after it
    assert b"connection: close" in out.lower()
    assert backend.raw_bytes == 0


def test_oversized_request_line_and_headers(backend: Backend) -> None:
    g = GatewayRunner(max_request_line=1000, max_header_bytes=2000)
    try:
        g.set_routes([svc([backend])])
        out = raw_exchange(g.port, b"GET /default/digits/" + b"a" * 2000 + b" HTTP/1.1\r\nhost: x\r\n\r\n")
        assert out.startswith(b"HTTP/1.1 414 ")
        out = raw_exchange(
            g.port, b"GET /default/digits/ HTTP/1.1\r\nhost: x\r\nx-big: " + b"b" * 3000 + b"\r\n\r\n"
        )
        assert out.startswith(b"HTTP/1.1 431 ")
        assert backend.raw_bytes == 0
    finally:
        g.stop()


def test_requests_spread_over_two_endpoints(gateway: GatewayRunner) -> None:
    a, b = Backend("a").start(), Backend("b").start()
    try:
        gateway.set_routes([svc([a, b])])
        errors: list[BaseException] = []

        def client() -> None:
            try:
                with httpx.Client(base_url=gateway.url) as c:
                    for _ in range(20):
                        assert c.get("/default/digits/slow?s=0.01").status_code == 200
            except BaseException as exc:  # noqa: BLE001
                errors.append(exc)

        threads = [threading.Thread(target=client) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert not errors
        assert len(a.requests) + len(b.requests) == 80
        assert len(a.requests) >= 10 and len(b.requests) >= 10
        stats = gateway.call(gateway.gateway.endpoint_stats)
        assert sum(s.requests_total for s in stats.values()) == 80
        assert all(s.inflight == 0 for s in stats.values())
    finally:
        a.stop()
        b.stop()


def test_set_routes_under_steady_traffic_loses_nothing(gateway: GatewayRunner) -> None:
    old, new = Backend("old").start(), Backend("new").start()
    try:
        gateway.set_routes([svc([old])])
        stop = threading.Event()
        failures: list[str] = []
        done = [0]

        def client() -> None:
            with httpx.Client(base_url=gateway.url) as c:
                while not stop.is_set():
                    try:
                        r = c.post("/default/digits/x", content=b"payload")
                        if r.status_code != 200:
                            failures.append(f"{r.status_code} {r.text}")
                        done[0] += 1
                    except httpx.HTTPError as exc:
                        failures.append(repr(exc))

        threads = [threading.Thread(target=client) for _ in range(3)]
        for t in threads:
            t.start()
        assert wait_for(lambda: done[0] > 30)
        gateway.set_routes([svc([old, new])])  # roll out: both
        assert wait_for(lambda: len(new.requests) > 20)
        gateway.set_routes([svc([new])])  # drain the old one
        mark = len(new.requests)
        assert wait_for(lambda: len(new.requests) > mark + 30)
        old_count = len(old.requests)
        old.stop()  # the old replica goes away after the swap
        mark = len(new.requests)
        assert wait_for(lambda: len(new.requests) > mark + 30)
        stop.set()
        for t in threads:
            t.join(30)
        assert not failures, failures[:5]
        assert old_count > 0
    finally:
        stop.set()
        new.stop()


def test_stale_pooled_connection_is_retried_on_a_fresh_one(gateway: GatewayRunner) -> None:
    flaky = Backend("flaky", drop_reused=True).start()  # closes instead of answering a 2nd request
    try:
        gateway.set_routes([svc([flaky])])
        with httpx.Client(base_url=gateway.url) as c:
            for i in range(5):
                r = c.post(f"/default/digits/{i}", content=b"body-%d" % i)
                assert r.status_code == 200, r.text
                assert r.json()["body"] == f"body-{i}"
        assert flaky.connections >= 5
    finally:
        flaky.stop()


def test_backend_closing_idle_keep_alive_is_not_a_502(gateway: GatewayRunner) -> None:
    b = Backend("idle", idle_close=0.1).start()
    try:
        gateway.set_routes([svc([b])])
        with httpx.Client(base_url=gateway.url) as c:
            assert c.get("/default/digits/1").status_code == 200
            assert wait_for(lambda: b.closed_connections >= 1)
            assert c.get("/default/digits/2").status_code == 200
    finally:
        b.stop()


def test_route_stats_and_metrics(gateway: GatewayRunner, backend: Backend) -> None:
    gateway.set_routes([svc([backend]), svc([], name="empty")])
    with httpx.Client(base_url=gateway.url) as c:
        for _ in range(3):
            c.get("/default/digits/x")
        c.get("/default/empty/x")
        c.get("/missing")
    stats = gateway.call(gateway.gateway.route_stats)
    assert stats["default/digits"].requests_by_class == {"2xx": 3}
    assert stats["default/digits"].inflight == 0
    assert stats["default/digits"].latency_buckets[-1][1] == 3
    assert stats["default/empty"].requests_by_code == {503: 1}
    assert stats["-"].requests_by_code == {404: 1}
    registry = CollectorRegistry()
    register_gateway_metrics(gateway.gateway, registry)
    text = gateway.call(lambda: generate_latest(registry)).decode()
    assert 'gse_gateway_requests_total{code="200",route="default/digits"} 3.0' in text
    assert 'gse_gateway_inflight_requests{route="default/digits"} 0.0' in text
    assert 'gse_gateway_request_duration_seconds_count{route="default/digits"} 3.0' in text
    assert "gse_gateway_upstream_errors_total 0.0" in text


def test_port_in_use_is_a_clear_error() -> None:
    holder = socket.socket()
    holder.bind(("127.0.0.1", 0))
    holder.listen()
    port = holder.getsockname()[1]
    lt = LoopThread()
    try:
        with pytest.raises(Conflict) as err:
            lt.run(Gateway("127.0.0.1", port).start())
        assert str(port) in str(err.value)
        assert "GSE_GATEWAY_PORT" in str(err.value) and "--gateway-port" in str(err.value)
    finally:
        holder.close()
        lt.stop()


def test_upgrade_switches_to_a_tunnel(gateway: GatewayRunner, backend: Backend) -> None:
    gateway.set_routes([svc([backend])])
    with socket.create_connection(("127.0.0.1", gateway.port), timeout=10) as s:
        s.sendall(
            b"GET /default/digits/upgrade HTTP/1.1\r\nhost: x\r\nconnection: upgrade\r\nupgrade: echo\r\n\r\n"
        )
        got = b""
        while b"\r\n\r\n" not in got:
            got += s.recv(4096)
        head, rest = got.split(b"\r\n\r\n", 1)
        assert head.startswith(b"HTTP/1.1 101 ")
        assert b"upgrade: echo" in head.lower()
        sent = dict(backend.requests[-1]["headers"])
        assert sent["upgrade"] == "echo" and sent["connection"] == "upgrade"
        s.sendall(b"hello tunnel")
        while len(rest) < len(b"hello tunnel"):
            rest += s.recv(4096)
        assert rest == b"HELLO TUNNEL"


def test_standalone_runner_serves_a_routes_file(tmp_path, backend: Backend) -> None:
    import subprocess
    import sys

    routes = tmp_path / "routes.json"
    routes.write_text(
        json.dumps(
            [
                {
                    "namespace": "default",
                    "service": "digits",
                    "endpoints": [{"id": "e1", "host": "127.0.0.1", "port": backend.port}],
                }
            ]
        )
    )
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    proc = subprocess.Popen(
        [sys.executable, "-m", "gs_engine.gateway", "--port", str(port), "--routes", str(routes)],
        stderr=subprocess.PIPE,
    )
    try:
        assert proc.stderr is not None
        line = proc.stderr.readline().decode()
        assert f":{port}" in line, line
        r = httpx.get(f"http://127.0.0.1:{port}/default/digits/hi", timeout=10)
        assert r.status_code == 200 and r.json()["path"] == "/hi"
    finally:
        proc.terminate()
        proc.wait(10)
    assert proc.returncode == 0
