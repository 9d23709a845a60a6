"""Loopback test kit: a scriptable HTTP/1.1 backend and a gateway, each on its own loop thread."""

from __future__ import annotations

import asyncio
import hashlib
import json
import socket
import threading
import time
from collections.abc import Callable, Coroutine
from concurrent.futures import Future
from typing import Any, TypeVar

import uvloop

from gs_engine.gateway import Gateway, RouteConfig

T = TypeVar("T")


def payload(n: int) -> bytes:
    """Deterministic, non-repeating-looking bytes for byte-exact checks."""
    out = bytearray()
    block = 0
    while len(out) < n:
        out += hashlib.sha256(block.to_bytes(8, "big")).digest()
        block += 1
    return bytes(out[:n])


class LoopThread:
    def __init__(self) -> None:
        self.loop = uvloop.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def run(self, coro: Coroutine[Any, Any, T], timeout: float = 30) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def call(self, fn: Callable[[], T], timeout: float = 10) -> T:
        fut: Future[T] = Future()

        def go() -> None:
            try:
                fut.set_result(fn())
            except BaseException as exc:  # noqa: BLE001
                fut.set_exception(exc)

        self.loop.call_soon_threadsafe(go)
        return fut.result(timeout)

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)


class Backend:
    """An echo server with a few scripted paths (see `_respond`)."""

    def __init__(
        self,
        name: str = "b1",
        *,
        drop_reused: bool = False,
        idle_close: float | None = None,
        fail_status: int | None = None,
        reset_all: bool = False,
    ):
        self.name = name
        self.fail_status = fail_status  # answer every request with this status
        self.reset_all = reset_all  # reset every connection after reading a request head
        self.drop_reused = drop_reused  # close without answering a 2nd request on a connection
        self.idle_close = idle_close  # close a keep-alive connection after this many idle seconds
        self.requests: list[dict[str, Any]] = []
        self.raw_bytes = 0
        self.connections = 0
        self.closed_connections = 0
        self.port = 0
        self._lt = LoopThread()
        self._server: asyncio.AbstractServer | None = None
        self._readers: dict[asyncio.StreamWriter, asyncio.StreamReader] = {}

    def start(self) -> Backend:
        async def go() -> None:
            self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
            self.port = self._server.sockets[0].getsockname()[1]

        self._lt.run(go())
        return self

    def stop(self) -> None:
        async def go() -> None:
            if self._server is not None:
                self._server.close()

        self._lt.run(go())
        self._lt.stop()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        peer_port = writer.get_extra_info("peername")[1]
        self._readers[writer] = reader
        served = 0
        try:
            while True:
                try:
                    if self.idle_close is not None and served:
                        line = await asyncio.wait_for(reader.readline(), self.idle_close)
                    else:
                        line = await reader.readline()
                except TimeoutError:
                    break
                if not line:
                    break
                self.raw_bytes += len(line)
                if served and self.drop_reused:
                    break
                method, target, _ = line.decode("latin-1").split(" ", 2)
                headers: list[tuple[str, str]] = []
                while True:
                    h = await reader.readline()
                    self.raw_bytes += len(h)
                    if h in (b"\r\n", b"\n", b""):
                        break
                    k, v = h.decode("latin-1").split(":", 1)
                    headers.append((k.strip().lower(), v.strip()))
                hd = dict(headers)
                body = b""
                if self.reset_all:
                    self.requests.append({"backend": self.name, "method": method, "path": target})
                    writer.transport.abort()
                    break
                if target.startswith("/sink"):
                    n = await _discard_body(reader, hd)
                    self.raw_bytes += n
                    self.requests.append(
                        {"backend": self.name, "method": method, "path": target, "body_len": n}
                    )
                    served += 1
                    answer = b"%d" % n
                    writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\n\r\n%s" % (len(answer), answer))
                    await writer.drain()
                    continue
                if hd.get("transfer-encoding", "").lower() == "chunked":
                    while True:
                        size = int((await reader.readline()).split(b";")[0], 16)
                        if size == 0:
                            await reader.readline()
                            break
                        body += await reader.readexactly(size)
                        await reader.readexactly(2)
                elif "content-length" in hd:
                    body = await reader.readexactly(int(hd["content-length"]))
                self.raw_bytes += len(body)
                req = {
                    "backend": self.name,
                    "method": method,
                    "path": target,
                    "headers": headers,
                    "body_len": len(body),
                    "body_sha": hashlib.sha256(body).hexdigest(),
                    "body": body[:200].decode("latin-1"),
                    "peer_port": peer_port,
                }
                self.requests.append(req)
                served += 1
                keep = await self._respond(req, hd, writer)
                if not keep:
                    break
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            self.closed_connections += 1
            writer.close()

    async def _respond(self, req: dict[str, Any], hd: dict[str, str], w: asyncio.StreamWriter) -> bool:
        path = req["path"]
        if self.fail_status is not None:
            w.write(b"HTTP/1.1 %d Failing\r\ncontent-length: 4\r\n\r\nfail" % self.fail_status)
            await w.drain()
            return True
        q = dict(p.split("=", 1) for p in path.split("?", 1)[1].split("&")) if "?" in path else {}
        if path.startswith("/reset"):
            w.transport.abort()
            return False
        if path.startswith("/slow"):
            await asyncio.sleep(float(q.get("s", "5")))
        if path.startswith("/stall"):  # a head and part of the body, then nothing
            w.write(b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\n" + b"s" * 10)
            await w.drain()
            try:  # until the gateway gives up on this connection
                await asyncio.wait_for(self._readers[w].read(), 30)
            except (TimeoutError, ConnectionError):
                pass
            return False
        if path.startswith("/chunked"):
            data = payload(int(q["n"]))
            w.write(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\nx-kind: chunked\r\n\r\n")
            step = 65536 + 7
            for i in range(0, len(data), step):
                part = data[i : i + step]
                w.write(b"%x\r\n%s\r\n" % (len(part), part))
                await w.drain()
            w.write(b"0\r\n\r\n")
            await w.drain()
            return True
        if path.startswith("/close"):
            data = payload(int(q["n"]))
            w.write(b"HTTP/1.1 200 OK\r\nconnection: close\r\n\r\n")
            for i in range(0, len(data), 50000):
                w.write(data[i : i + 50000])
                await w.drain()
            return False
        if path.startswith("/upgrade"):
            w.write(b"HTTP/1.1 101 Switching Protocols\r\nconnection: upgrade\r\nupgrade: echo\r\n\r\n")
            await w.drain()
            reader = self._readers[w]
            while data := await reader.read(65536):
                w.write(data.upper())
                await w.drain()
            return False
        if path.startswith("/status"):
            code = int(q["code"])
            extra = b'etag: "v1"\r\n' if code == 304 else b""
            w.write(b"HTTP/1.1 %d X\r\n%s\r\n" % (code, extra))
            await w.drain()
            return True
        if path.startswith("/hints"):
            w.write(b"HTTP/1.1 103 Early Hints\r\nlink: </style.css>; rel=preload\r\n\r\n")
            await w.drain()
            w.write(b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nfinal")
            await w.drain()
            return True
        if path.startswith("/nolength"):
            w.write(b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\n\r\nuntil the end")
            await w.drain()
            return False
        if path.startswith("/ws"):
            await _websocket_echo(hd, self._readers[w], w)
            return False
        if path.startswith("/hop"):
            w.write(
                b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: x-secret\r\nx-secret: 1\r\n"
                b"keep-alive: timeout=5\r\nx-kept: yes\r\n\r\nok"
            )
            await w.drain()
            return True
        body = json.dumps(req).encode()
        w.write(
            b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: %d\r\n\r\n%s"
            % (len(body), body)
        )
        await w.drain()
        return True


async def _discard_body(reader: asyncio.StreamReader, hd: dict[str, str]) -> int:
    """Read a request body without keeping it; the number of body bytes."""
    total = 0
    if hd.get("transfer-encoding", "").lower() == "chunked":
        while True:
            size = int((await reader.readline()).split(b";")[0], 16)
            if size == 0:
                await reader.readline()
                return total
            left = size
            while left:
                left -= len(await reader.read(min(left, 1 << 20)))
            total += size
            await reader.readexactly(2)
    left = int(hd.get("content-length", "0"))
    while left:
        got = await reader.read(min(left, 1 << 20))
        if not got:
            break
        left -= len(got)
        total += len(got)
    return total


WS_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


def websocket_accept(key: bytes) -> bytes:
    import base64

    return base64.b64encode(hashlib.sha1(key + WS_GUID).digest())


def websocket_frame(payload_: bytes, *, opcode: int = 1, mask: bytes | None = None) -> bytes:
    """One final frame (RFC 6455), masked when `mask` (4 bytes) is given."""
    head = bytes([0x80 | opcode])
    n = len(payload_)
    bit = 0x80 if mask else 0
    if n < 126:
        head += bytes([bit | n])
    elif n < 65536:
        head += bytes([bit | 126]) + n.to_bytes(2, "big")
    else:
        head += bytes([bit | 127]) + n.to_bytes(8, "big")
    if mask:
        payload_ = bytes(b ^ mask[i % 4] for i, b in enumerate(payload_))
        head += mask
    return head + payload_


async def read_websocket_frame(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    b0, b1 = await reader.readexactly(2)
    n = b1 & 0x7F
    if n == 126:
        n = int.from_bytes(await reader.readexactly(2), "big")
    elif n == 127:
        n = int.from_bytes(await reader.readexactly(8), "big")
    mask = await reader.readexactly(4) if b1 & 0x80 else None
    data = await reader.readexactly(n)
    if mask:
        data = bytes(b ^ mask[i % 4] for i, b in enumerate(data))
    return b0 & 0x0F, data


async def _websocket_echo(hd: dict[str, str], reader: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
    accept = websocket_accept(hd["sec-websocket-key"].encode())
    w.write(
        b"HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\nconnection: Upgrade\r\n"
        b"sec-websocket-accept: %s\r\n\r\n" % accept
    )
    await w.drain()
    while True:
        opcode, data = await read_websocket_frame(reader)
        if opcode == 8:  # close: answer it and stop
            w.write(websocket_frame(data, opcode=8))
            await w.drain()
            return
        w.write(websocket_frame(data, opcode=opcode))
        await w.drain()


class GatewayRunner:
    def __init__(self, **kwargs: Any) -> None:
        self._lt = LoopThread()
        self.gateway = Gateway("127.0.0.1", 0, **kwargs)
        self._lt.run(self.gateway.start())
        self.port = self.gateway.port
        self.url = f"http://127.0.0.1:{self.port}"

    def set_routes(self, routes: list[RouteConfig]) -> None:
        self._lt.call(lambda: self.gateway.set_routes(routes))

    def call(self, fn: Callable[[], T]) -> T:
        return self._lt.call(fn)

    def stop(self) -> None:
        self._lt.run(self.gateway.close(grace=2))
        self._lt.stop()


def raw_exchange(port: int, data: bytes, *, until_closed: bool = True, timeout: float = 10) -> bytes:
    """Send raw bytes and read until the gateway closes (or the deadline passes)."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(data)
        out = b""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                chunk = s.recv(65536)
            except TimeoutError:
                break
            if not chunk:
                break
            out += chunk
            if not until_closed:
                break
        return out


def wait_for(cond: Callable[[], bool], timeout: float = 10) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(0.01)
    return cond()
