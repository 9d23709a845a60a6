"""A service that takes a fixed time per request: the load shape autoscalers are tested with.

    PORT=8000 SLEEP_MS=100 python server.py

GET /healthz answers at once; every other request sleeps SLEEP_MS (or ?ms=N) and answers JSON with
the replica id. Standard library only, HTTP/1.1 keep-alive, graceful stop on SIGTERM.
"""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

SLEEP_MS = float(os.environ.get("SLEEP_MS", "100"))
REPLICA = os.environ.get("GSE_REPLICA_ID", "standalone")


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args: object) -> None:
        pass

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        url = urlparse(self.path)
        if url.path != "/healthz":
            delay = float(parse_qs(url.query).get("ms", [SLEEP_MS])[0])
            time.sleep(max(0.0, min(delay, 60_000.0)) / 1000.0)
        body = json.dumps({"replica": REPLICA, "sleptMs": 0 if url.path == "/healthz" else SLEEP_MS}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_POST = do_GET


def main() -> None:
    server = ThreadingHTTPServer(
        (os.environ.get("HOST", "127.0.0.1"), int(os.environ.get("PORT", "8000"))), Handler
    )
    server.daemon_threads = True
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    threading.Thread(target=server.serve_forever, daemon=True).start()
    print(f"sleepy service ({SLEEP_MS:g} ms per request) on port {server.server_address[1]}", flush=True)
    stop.wait()
    server.shutdown()
    server.server_close()


if __name__ == "__main__":
    main()
