"""The upstream side alone: a response parsed into a raw head, body and completion for a sink."""

from __future__ import annotations

from gs_engine.gateway.routes import Endpoint
from gs_engine.gateway.upstream import MAX_RESPONSE_HEAD, EndpointPool, UpstreamConnection


class Client:
    def __init__(self) -> None:
        self.wbuf: list[bytes] | None = None
        self.flushes = 0

    def flush(self) -> None:
        self.wbuf = None
        self.flushes += 1


class Sink:
    def __init__(self) -> None:
        self.conn = Client()
        self.heads: list[tuple[int, bytes]] = []
        self.body = b""
        self.completed: list[bool] = []
        self.lost: list[Exception | None] = []

    def on_upstream_head(self, status: int, head: bytes) -> None:
        self.heads.append((status, head))

    def on_upstream_body(self, data: bytes) -> None:
        self.body += data

    def on_upstream_complete(self, keep_alive: bool) -> None:
        self.completed.append(keep_alive)

    def on_upstream_lost(self, exc: Exception | None) -> None:
        self.lost.append(exc)

    def on_upstream_upgrade(self, rest: bytes) -> None:
        raise AssertionError("no upgrade expected")

    def on_upstream_pause_writing(self) -> None: ...
    def on_upstream_resume_writing(self) -> None: ...


def connection(head_only: bool = False) -> tuple[UpstreamConnection, Sink]:
    up = UpstreamConnection(EndpointPool(Endpoint("e1", "127.0.0.1", 1)))
    sink = Sink()
    up.attach(sink, head_only)
    return up, sink


OK = b"HTTP/1.1 200 OK\r\nServer: t\r\nContent-Length: 5\r\n\r\n"


def test_head_in_one_read_is_passed_raw_and_body_follows() -> None:
    up, sink = connection()
    up.data_received(OK + b"hello")
    assert sink.heads == [(200, OK)]
    assert sink.body == b"hello"
    assert sink.completed == [True]
    assert sink.conn.flushes == 1 and sink.conn.wbuf is None


def test_head_split_over_reads_is_joined() -> None:
    up, sink = connection()
    data = OK + b"hello"
    for i in range(len(data)):
        up.data_received(data[i : i + 1])
    assert sink.heads == [(200, OK)]
    assert sink.body == b"hello"
    assert sink.completed == [True]


def test_interim_then_final_response_in_one_read() -> None:
    up, sink = connection()
    interim = b"HTTP/1.1 100 Continue\r\nX-A: 1\r\n\r\n"
    up.data_received(interim + OK + b"hello")
    assert sink.heads == [(100, interim), (200, OK)]
    assert sink.completed == [True]


def test_empty_lines_before_the_status_line_are_not_part_of_the_head() -> None:
    up, sink = connection()
    up.data_received(b"\r\n\r\n" + OK + b"hello")
    assert sink.heads == [(200, OK)]
    assert sink.body == b"hello"


def test_second_response_on_a_reused_connection_gets_its_own_head() -> None:
    up, sink = connection()
    up.data_received(OK + b"hello")
    second = b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n"
    sink2 = Sink()
    up.attach(sink2, False)
    up.data_received(second)
    assert sink2.heads == [(404, second)]
    assert sink2.completed == [True]


def test_head_response_completes_after_its_head() -> None:
    up, sink = connection(head_only=True)
    head = b"HTTP/1.1 200 OK\r\nContent-Length: 99\r\nConnection: close\r\n\r\n"
    up.data_received(head)
    assert sink.heads == [(200, head)]
    assert sink.completed == [False]  # the replica said it closes


def test_endless_head_is_refused() -> None:
    up, sink = connection()
    up.data_received(b"HTTP/1.1 200 OK\r\n")
    chunk = b"X-Pad: " + b"a" * 1000 + b"\r\n"
    for _ in range(MAX_RESPONSE_HEAD // len(chunk) + 2):
        if sink.lost:
            break
        up.data_received(chunk)
    assert sink.heads == []
    assert len(sink.lost) == 1
    assert up.closed
