"""The activator: at zero endpoints a route with `activate` holds requests until a replica is ready."""

import socket
import struct
import threading

import httpx
import pytest

from gs_engine.gateway import Endpoint, RouteConfig

from .harness import Backend, GatewayRunner, wait_for

pytestmark = pytest.mark.integration


def route(backends: list[Backend], **kw: object) -> RouteConfig:
    eps = tuple(Endpoint(f"default-cold-{b.name}", "127.0.0.1", b.port) for b in backends)
    return RouteConfig("default/cold", "default", "cold", "/default/cold", endpoints=eps, activate=True, **kw)  # type: ignore[arg-type]


def test_held_requests_go_on_when_a_replica_is_ready(gateway: GatewayRunner, backend: Backend) -> None:
    woken: list[tuple[str, str]] = []
    gateway.call(lambda: gateway.gateway.set_activation_handler(lambda ns, svc: woken.append((ns, svc))))
    gateway.set_routes([route([])])
    answers: list[tuple[int, str]] = []

    def call(i: int) -> None:
        r = httpx.post(f"{gateway.url}/default/cold/item/{i}", content=b"body-%d" % i, timeout=20)
        answers.append((r.status_code, r.json()["body"]))

    threads = [threading.Thread(target=call, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    assert wait_for(lambda: gateway.call(lambda: gateway.gateway.held("default/cold")) == 6)
    assert woken and woken[0] == ("default", "cold")  # the autoscaler is woken at once
    assert answers == []  # held, not refused
    gateway.set_routes([route([backend])])
    for t in threads:
        t.join()
    assert sorted(answers) == sorted((200, f"body-{i}") for i in range(6))
    assert gateway.call(lambda: gateway.gateway.held("default/cold")) == 0


def test_a_held_request_times_out_with_503(gateway: GatewayRunner) -> None:
    gateway.set_routes([route([], activation_timeout=0.3)])
    r = httpx.get(f"{gateway.url}/default/cold/", timeout=10)
    assert r.status_code == 503
    assert r.headers["retry-after"] == "1"
    assert "became ready within 0.3 s" in r.json()["detail"]


def test_the_hold_queue_is_bounded(gateway: GatewayRunner) -> None:
    gateway.set_routes([route([], max_held=1, activation_timeout=5)])
    first: list[int] = []
    t = threading.Thread(
        target=lambda: first.append(httpx.get(f"{gateway.url}/default/cold/", timeout=10).status_code)
    )
    t.start()
    assert wait_for(lambda: gateway.call(lambda: gateway.gateway.held("default/cold")) == 1)
    second = httpx.get(f"{gateway.url}/default/cold/", timeout=10)
    assert second.status_code == 503 and "waiting already" in second.json()["detail"]
    t.join()
    assert first == [503]


def test_a_client_that_leaves_is_forgotten(gateway: GatewayRunner, backend: Backend) -> None:
    gateway.set_routes([route([])])
    with socket.create_connection(("127.0.0.1", gateway.port)) as client:
        client.sendall(b"GET /default/cold/ HTTP/1.1\r\nHost: x\r\n\r\n")
        assert wait_for(lambda: gateway.call(lambda: gateway.gateway.held("default/cold")) == 1)
        client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # reset, not FIN
    assert wait_for(lambda: gateway.call(lambda: gateway.gateway.held("default/cold")) == 0)
    gateway.set_routes([route([backend])])
    assert httpx.get(f"{gateway.url}/default/cold/x", timeout=5).status_code == 200


def test_without_activate_zero_endpoints_is_503_at_once(gateway: GatewayRunner) -> None:
    gateway.set_routes([RouteConfig("default/cold", "default", "cold", "/default/cold")])
    r = httpx.get(f"{gateway.url}/default/cold/", timeout=5)
    assert r.status_code == 503
