"""A tiny HTTP/1.1 service for engine tests: answers JSON naming its replica and VERSION.

GET /healthz → 200; GET /slow?ms=N sleeps N ms; anything else echoes method, path and body size.
SIGTERM stops accepting, lets in-flight requests finish, exits 0.
"""

import json
import os
import signal
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args: object) -> None:
        pass

    def _answer(self, status: int, doc: dict) -> None:
        body = json.dumps(doc).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _handle(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        url = urlparse(self.path)
        if url.path == "/healthz":
            self._answer(200, {"ok": True})
            return
        if url.path == "/slow":
            time.sleep(int(parse_qs(url.query).get("ms", ["100"])[0]) / 1000)
        self._answer(
            200,
            {
                "replica": os.environ.get("GSE_REPLICA_ID", ""),
                "version": os.environ.get("VERSION", ""),
                "method": self.command,
                "path": self.path,
                "bodyBytes": len(body),
                "forwardedFor": self.headers.get("X-Forwarded-For"),
                "requestId": self.headers.get("X-Request-Id"),
            },
        )

    do_GET = do_POST = do_PUT = do_DELETE = _handle


def main() -> None:
    server = ThreadingHTTPServer((os.environ.get("HOST", "127.0.0.1"), int(os.environ["PORT"])), Handler)
    server.daemon_threads = False
    server.block_on_close = True
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    print(f"echo app {os.environ.get('VERSION', '')} listening on {server.server_address[1]}", flush=True)
    stop.wait()
    server.shutdown()
    server.server_close()


if __name__ == "__main__":
    main()
