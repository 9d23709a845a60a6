"""A tiny service for the zygote tests: GET /healthz, GET /info (who it is), GET /exit?code=N."""

from __future__ import annotations

import json
import os
import random
import sys
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer
from urllib.parse import parse_qs, urlparse

import warm


class Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802
        url = urlparse(self.path)
        if url.path == "/healthz":
            self._send({"ok": True})
        elif url.path == "/info":
            self._send(
                {
                    "pid": os.getpid(),
                    "pgid": os.getpgid(0),
                    "sid": os.getsid(0),
                    "warmed_by": warm.warmed_by,
                    "port": os.environ.get("PORT"),
                    "replica": os.environ.get("GSE_REPLICA_ID"),
                    "argv": sys.argv,
                    "name": __name__,
                    "random": random.random(),
                    "env": dict(os.environ),
                }
            )
        elif url.path == "/exit":
            code = int(parse_qs(url.query).get("code", ["0"])[0])
            self._send({"exiting": code})
            threading.Thread(target=os._exit, args=(code,)).start()
        else:
            self.send_error(404)

    def _send(self, doc: object) -> None:
        body = json.dumps(doc).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        pass


def main() -> None:
    server = HTTPServer((os.environ.get("HOST", "127.0.0.1"), int(os.environ["PORT"])), Handler)
    print(f"test app {os.environ.get('GSE_REPLICA_ID')} serving on {server.server_address[1]}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
