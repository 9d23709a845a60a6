"""The digits inference service: a standard-library HTTP/1.1 server in front of the digits model.

Run it from this folder as ``python server.py``. The environment says where to listen:

    PORT               port to listen on (default 8000; 0 picks a free one)
    HOST               address to bind (default 127.0.0.1)
    GSE_REPLICA_ID     this replica's id, echoed in every prediction (default "standalone")
    DIGITS_ACCESS_LOG  set to 1 to log one line per request to stderr (off by default)

Endpoints:

    GET  /          a short JSON description of the service
    GET  /healthz   200 once the model is trained, 503 before (the readiness probe)
    POST /predict   {"images": [[64 pixels], ...]} or {"image": [...]} ->
                    {"predictions": [...], "probabilities": [[10 floats], ...], "replica": "..."}

Under a zygote (`service-zygote.yaml`), a warm parent imports this module and calls `warmup()`
once, which trains the model and keeps it here; each replica forked from that parent runs this file
as ``__main__`` and `main()` serves the kept model at once instead of training again.

The socket is bound before the model trains, so a probe sees "not ready yet" (503) rather than
"connection refused" during the second or so that training takes. Errors are RFC 9457 problem
documents. SIGTERM or SIGINT stops accepting, lets requests in flight finish, closes idle
keep-alive connections and exits 0.
"""

from __future__ import annotations

import os

if __name__ == "__main__":
    # One replica is given about one CPU: keep the numeric libraries to one thread each, so two
    # replicas on a node do not fight over cores. Set before numpy is imported; left alone when
    # this module is imported by another program.
    for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(_var, "1")

import json  # noqa: E402
import signal  # noqa: E402
import socket  # noqa: E402
import sys  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer  # noqa: E402
from types import FrameType  # noqa: E402
from typing import Any, Protocol  # noqa: E402

import numpy as np  # noqa: E402
from numpy.typing import NDArray  # noqa: E402
from payload import MAX_BODY_BYTES, MAX_IMAGES, decode_json, parse_images  # noqa: E402

from gs_engine.errors import GseError, InvalidInput, NotFound, TemporaryBackendError  # noqa: E402

JSON = "application/json"
PROBLEM_JSON = "application/problem+json"
DEFAULT_PORT = 8000
PROBABILITY_DIGITS = 6


class Classifier(Protocol):
    """What the server needs from a model: class labels and a probability per class."""

    @property
    def classes_(self) -> NDArray[Any]: ...

    def predict_proba(self, x: NDArray[np.float64]) -> NDArray[np.float64]: ...


class MethodNotAllowed(GseError):
    http_status = 405
    title = "Method not allowed"


class DigitsServer(ThreadingHTTPServer):
    """A threaded HTTP server that knows which connections are mid-request, to drain them on stop."""

    daemon_threads = False  # server_close() joins the handler threads: in-flight requests finish
    block_on_close = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], replica_id: str) -> None:
        self.replica_id = replica_id
        self.model: Classifier | None = None
        self.accuracy: float | None = None
        self.stopping = False
        self._lock = threading.Lock()
        self._connections: dict[socket.socket, bool] = {}  # socket -> busy with a request
        self._serving: threading.Thread | None = None
        super().__init__(address, DigitsHandler)

    @property
    def port(self) -> int:
        return int(self.server_address[1])

    @property
    def host(self) -> str:
        return str(self.server_address[0])

    def set_model(self, model: Classifier, accuracy: float | None = None) -> None:
        """Make the service ready: /healthz answers 200 and /predict uses this model from now on."""
        self.accuracy = accuracy
        self.model = model

    def start(self) -> None:
        """Serve in a background thread (the caller keeps the main thread for signals)."""
        self._serving = threading.Thread(
            target=self.serve_forever, kwargs={"poll_interval": 0.1}, name="digits-accept", daemon=True
        )
        self._serving.start()

    def stop(self) -> None:
        """Graceful stop: no new connections, in-flight requests finish, idle connections close."""
        with self._lock:
            self.stopping = True
        if self._serving is not None:
            self.shutdown()  # returns once the accept loop has exited
        with self._lock:
            for conn, busy in self._connections.items():
                if not busy:
                    _wake_reader(conn)
        self.server_close()  # closes the listening socket, then joins the handler threads

    # connection bookkeeping, called by the handler
    def track(self, conn: socket.socket) -> None:
        with self._lock:
            self._connections[conn] = False
            if self.stopping:
                _wake_reader(conn)

    def untrack(self, conn: socket.socket) -> None:
        with self._lock:
            self._connections.pop(conn, None)

    def mark_busy(self, conn: socket.socket, busy: bool) -> bool:
        """Record whether a connection is mid-request; returns whether the server is stopping."""
        with self._lock:
            if conn in self._connections:
                self._connections[conn] = busy
            return self.stopping


LINGER_SECONDS = 2.0


def _linger(conn: socket.socket) -> None:
    """Close politely after refusing a body unread: closing with unread input sends a reset, which
    can destroy the 400 answer before the client reads it. Half-close, then discard what still
    arrives for a short while."""
    try:
        conn.shutdown(socket.SHUT_WR)
        deadline = time.monotonic() + LINGER_SECONDS
        while (left := deadline - time.monotonic()) > 0:
            conn.settimeout(left)
            if not conn.recv(65536):
                break
    except OSError:
        pass  # reset or timed out: the answer has had its chance


def _wake_reader(conn: socket.socket) -> None:
    """End a handler's wait for the next request: its read returns end-of-file."""
    try:
        conn.shutdown(socket.SHUT_RD)
    except OSError:
        pass  # already closed by the peer


class DigitsHandler(BaseHTTPRequestHandler):
    server: DigitsServer
    protocol_version = "HTTP/1.1"
    server_version = "gse-digits/1"
    wbufsize = 64 * 1024  # headers and body leave in one write, flushed after each request
    timeout = 60  # an idle keep-alive connection is closed after a minute

    _unread_body = False  # a refused body is still arriving: drain it before closing

    def setup(self) -> None:
        super().setup()
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.server.track(self.connection)

    def finish(self) -> None:
        try:
            super().finish()
            if self._unread_body:
                _linger(self.connection)
        finally:
            self.server.untrack(self.connection)

    def parse_request(self) -> bool:
        # Called as soon as a request line has arrived: from here the connection is in flight.
        self.server.mark_busy(self.connection, True)
        return super().parse_request()

    def handle_one_request(self) -> None:
        try:
            super().handle_one_request()
        finally:
            if self.server.mark_busy(self.connection, False):
                self.close_connection = True

    # routes
    def do_GET(self) -> None:  # noqa: N802 (the stdlib's naming)
        path = self._path()
        if path == "/healthz":
            self._healthz()
        elif path == "/":
            self._describe()
        elif path == "/predict":
            self._problem(MethodNotAllowed("/predict takes POST", fix="POST a JSON body"), allow="POST")
        else:
            self._not_found(path)

    def do_POST(self) -> None:  # noqa: N802
        path = self._path()
        if path == "/predict":
            self._predict()
            return
        # Read (or refuse) the body either way, so the connection stays usable.
        if self._read_body() is None:
            return
        if path in ("/", "/healthz"):
            self._problem(MethodNotAllowed(f"{path} takes GET", fix=f"GET {path}"), allow="GET")
        else:
            self._not_found(path)

    def _path(self) -> str:
        return self.path.split("?", 1)[0]

    def _healthz(self) -> None:
        if self.server.model is None:
            self._problem(TemporaryBackendError("the model is still training", retry_after=1.0))
            return
        self._send_json(200, {"status": "ok", "replica": self.server.replica_id})

    def _describe(self) -> None:
        self._send_json(
            200,
            {
                "service": "digits",
                "description": "classifies 8x8 handwritten digits (scikit-learn's UCI digits data set)",
                "replica": self.server.replica_id,
                "ready": self.server.model is not None,
                "heldOutAccuracy": self.server.accuracy,
                "endpoints": {
                    "GET /healthz": "200 once the model is ready",
                    "POST /predict": '{"images": [[64 pixels 0..16], ...]} or {"image": [...]}',
                },
                "maxImagesPerRequest": MAX_IMAGES,
            },
        )

    def _predict(self) -> None:
        body = self._read_body()
        if body is None:
            return
        model = self.server.model
        if model is None:
            self._problem(TemporaryBackendError("the model is still training", retry_after=1.0))
            return
        try:
            images = parse_images(decode_json(body))
        except InvalidInput as exc:
            self._problem(exc)
            return
        probabilities = model.predict_proba(images)
        labels = model.classes_[np.argmax(probabilities, axis=1)]
        self._send_json(
            200,
            {
                "predictions": [int(label) for label in labels],
                "probabilities": np.round(probabilities, PROBABILITY_DIGITS).tolist(),
                "replica": self.server.replica_id,
            },
        )

    def _not_found(self, path: str) -> None:
        self._problem(NotFound(f"no endpoint at {path}", fix="use GET /, GET /healthz or POST /predict"))

    def _read_body(self) -> bytes | None:
        """The request body, or None after answering 400 (and closing, when it cannot be skipped)."""
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            self.close_connection = True
            self._problem(
                InvalidInput(
                    "chunked request bodies are not accepted",
                    fix="send the body with a Content-Length header",
                    field="Transfer-Encoding",
                )
            )
            return None
        raw = self.headers.get("Content-Length")
        if raw is None:
            return b""
        try:
            length = int(raw)
            if length < 0:
                raise ValueError(raw)
        except ValueError:
            self.close_connection = True
            self._problem(
                InvalidInput(
                    f"Content-Length {raw!r} is not a byte count",
                    fix="send the body's length in bytes",
                    field="Content-Length",
                )
            )
            return None
        if length > MAX_BODY_BYTES:
            self.close_connection = True  # the unread body would be taken for the next request
            self._unread_body = True
            self._problem(
                InvalidInput(
                    f"the body is {length} bytes; at most {MAX_BODY_BYTES} are accepted",
                    fix=f"send at most {MAX_IMAGES} images per request",
                    field="body",
                )
            )
            return None
        return self.rfile.read(length)

    # responses
    def _problem(self, error: GseError, allow: str = "") -> None:
        headers = {"Allow": allow} if allow else {}
        if error.retry_after is not None:
            headers["Retry-After"] = str(max(1, round(error.retry_after)))
        self._send_json(error.http_status, error.as_problem(), PROBLEM_JSON, headers)

    def _send_json(
        self, status: int, document: object, content_type: str = JSON, headers: dict[str, str] | None = None
    ) -> None:
        body = json.dumps(document, separators=(",", ":")).encode()
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        if self.close_connection or self.server.stopping:
            self.close_connection = True
            self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """The stdlib's own errors (bad request line, unsupported method) as problem documents."""
        self.close_connection = True
        title = self.responses.get(code, ("Error", ""))[0]
        document = {
            "type": "about:blank",
            "title": title,
            "status": code,
            "detail": message or explain or title,
        }
        try:
            self._send_json(code, document, PROBLEM_JSON)
        except OSError:
            pass  # the client has gone

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 (the stdlib's signature)
        if os.environ.get("DIGITS_ACCESS_LOG") == "1":
            super().log_message(format, *args)


def make_server(host: str, port: int, replica_id: str) -> DigitsServer:
    """A bound, not yet serving, not yet ready server."""
    return DigitsServer((host, port), replica_id)


def _port_from_env() -> int:
    raw = os.environ.get("PORT", str(DEFAULT_PORT))
    try:
        port = int(raw)
    except ValueError:
        port = -1
    if not 0 <= port <= 65535:
        raise SystemExit(f"digits: PORT={raw!r} is not a port number (set PORT to 0..65535)")
    return port


_warm_model: Any = None  # set by warmup(): the trained model a forked replica serves


def warmup() -> None:
    """Train the model now and keep it in this module (called once in a zygote parent)."""
    global _warm_model
    from model import train_and_evaluate

    _warm_model = train_and_evaluate()


def warm_model() -> Any:
    """The model `warmup()` trained, if it ran in this process. A forked replica runs this file as
    `__main__`, a module apart from the `server` module the parent warmed, so look in both."""
    for name in (__name__, "server"):
        found = getattr(sys.modules.get(name), "_warm_model", None)
        if found is not None:
            return found
    return None


def main() -> int:
    host = os.environ.get("HOST", "127.0.0.1")
    port = _port_from_env()
    replica_id = os.environ.get("GSE_REPLICA_ID", "standalone")
    try:
        server = make_server(host, port, replica_id)
    except OSError as exc:
        print(f"digits: cannot listen on {host}:{port}: {exc.strerror}", file=sys.stderr)
        return 1

    stop_requested = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop_requested.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    server.start()

    trained = warm_model()
    if trained is None:
        from model import train_and_evaluate  # scikit-learn loads here, after the socket is bound

        trained = train_and_evaluate()
    server.set_model(trained, trained.accuracy)
    print(
        f"digits model ready: accuracy on held-out split {trained.accuracy:.2f}, "
        f"listening on {server.host}:{server.port}",
        flush=True,
    )
    stop_requested.wait()
    server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
