"""The digits example: model, request parsing, the HTTP server as a real process, and the load test."""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

pytest.importorskip("sklearn", reason="the digits example needs scikit-learn (pip install -e '.[examples]')")

DIGITS_DIR = Path(__file__).resolve().parents[3] / "examples" / "digits"
sys.path.insert(0, str(DIGITS_DIR))

import loadtest  # noqa: E402
import model as digits_model  # noqa: E402
import payload  # noqa: E402
import server as digits_server  # noqa: E402
from rich.console import Console  # noqa: E402

from gs_engine.errors import InvalidInput  # noqa: E402

READY_DEADLINE_S = 60.0
REPLICA_ID = "default.digits.test1"


# ---------------------------------------------------------------- model


@pytest.fixture(scope="module")
def split() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    return digits_model.load_split()


@pytest.fixture(scope="module")
def trained(split: tuple[np.ndarray, ...]) -> Any:
    x_train, _, y_train, _ = split
    return digits_model.train_model(x_train, y_train)


def test_model_reaches_095_on_held_out_split(trained: Any, split: tuple[np.ndarray, ...]) -> None:
    _, x_test, _, y_test = split
    assert trained.score(x_test, y_test) >= 0.95


def test_train_and_evaluate_reports_held_out_accuracy(split: tuple[np.ndarray, ...]) -> None:
    result = digits_model.train_and_evaluate()
    assert result.accuracy >= 0.95
    assert (result.train_images, result.test_images) == (1347, 450)
    # The served prediction path gives the pipeline's own answers.
    _, x_test, _, y_test = split
    probabilities = result.predict_proba(x_test[:50])
    np.testing.assert_allclose(probabilities, result.pipeline.predict_proba(x_test[:50]))
    np.testing.assert_array_equal(result.classes_, np.arange(10))


def test_split_is_fixed_and_stratified(split: tuple[np.ndarray, ...]) -> None:
    again = digits_model.load_split()
    for first, second in zip(split, again, strict=True):
        np.testing.assert_array_equal(first, second)
    x_train, x_test, y_train, y_test = split
    assert x_test.shape == (450, 64) and x_train.shape == (1347, 64)
    # Stratified: each digit's share of the test set is within one image of its share overall.
    labels = np.concatenate([y_train, y_test])
    for digit in range(10):
        expected = np.mean(labels == digit) * len(y_test)
        assert abs(np.sum(y_test == digit) - expected) <= 1


def test_training_is_deterministic(trained: Any, split: tuple[np.ndarray, ...]) -> None:
    _, x_test, _, _ = split
    again = digits_model.train_model()
    np.testing.assert_allclose(again.predict_proba(x_test), trained.predict_proba(x_test), atol=1e-9)


# ---------------------------------------------------------------- request parsing


def _image(value: float = 3.0) -> list[float]:
    return [value] * 64


def test_parse_accepts_one_flat_image() -> None:
    pixels = list(range(16)) * 4
    array = payload.parse_images({"image": pixels})
    assert array.shape == (1, 64)
    np.testing.assert_array_equal(array[0], pixels)


def test_parse_accepts_8x8_rows_in_row_order() -> None:
    flat = [float(i % 17) for i in range(64)]
    rows = [flat[r * 8 : (r + 1) * 8] for r in range(8)]
    np.testing.assert_array_equal(payload.parse_images({"images": [rows, flat]}), [flat, flat])


@pytest.mark.parametrize(
    ("document", "field", "words"),
    [
        ([1, 2], "body", "JSON object"),
        ({}, "images", 'no "images"'),
        ({"image": _image(), "images": [_image()]}, "body", "not both"),
        ({"images": []}, "images", "empty"),
        ({"images": _image()}, "images[0]", "not a number"),
        ({"image": [1.0] * 63}, "image", "63 values"),
        ({"images": [_image(), [0] * 65]}, "images[1]", "65 values"),
        ({"image": [[0] * 8] * 7 + [[0] * 9]}, "image[7]", "9 values"),
        ({"image": [0] * 10 + [17] + [0] * 53}, "image[10]", "outside 0..16"),
        ({"image": [0] * 5 + [-1] + [0] * 58}, "image[5]", "outside 0..16"),
        ({"image": [0] * 3 + ["4"] + [0] * 60}, "image[3]", "a string"),
        ({"image": [True] + [0] * 63}, "image[0]", "a boolean"),
        ({"image": [None] + [0] * 63}, "image[0]", "null"),
        ({"image": [float("inf")] + [0] * 63}, "image[0]", "outside 0..16"),
        ({"image": [10**400] + [0] * 63}, "image[0]", "outside 0..16"),
        ({"image": "pixels"}, "image", "a string"),
    ],
)
def test_parse_names_the_field_at_fault(document: Any, field: str, words: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        payload.parse_images(document)
    assert caught.value.field == field
    assert words in caught.value.message
    assert caught.value.fix


def test_parse_caps_images_per_request() -> None:
    payload.parse_images({"images": [_image()] * 5}, max_images=5)
    with pytest.raises(InvalidInput, match="6 images") as caught:
        payload.parse_images({"images": [_image()] * 6}, max_images=5)
    assert "at most 5" in caught.value.fix


@pytest.mark.parametrize("body", [b"", b"{not json", b"\xff\xfe", b'{"image": [NaN]}'])
def test_decode_refuses_bodies_that_are_not_json(body: bytes) -> None:
    with pytest.raises(InvalidInput) as caught:
        payload.decode_json(body)
    assert caught.value.field == "body"


# ---------------------------------------------------------------- percentiles


def test_percentile_known_values() -> None:
    values = [4.0, 1.0, 3.0, 2.0]
    assert loadtest.percentile(values, 0) == 1.0
    assert loadtest.percentile(values, 100) == 4.0
    assert loadtest.percentile(values, 50) == pytest.approx(2.5)
    assert loadtest.percentile([7.0], 99) == 7.0


def test_percentile_refuses_empty_and_out_of_range() -> None:
    with pytest.raises(ValueError, match="no values"):
        loadtest.percentile([], 50)
    with pytest.raises(ValueError, match="outside"):
        loadtest.percentile([1.0], 101)


@given(
    st.lists(st.floats(min_value=0, max_value=1e6, allow_nan=False), min_size=1, max_size=200),
    st.floats(min_value=0, max_value=100),
)
def test_percentile_matches_numpy_linear(values: list[float], q: float) -> None:
    expected = float(np.percentile(values, q))
    assert loadtest.percentile(values, q) == pytest.approx(expected, rel=1e-9, abs=1e-9)
    assert min(values) <= loadtest.percentile(values, q) <= max(values)


# ---------------------------------------------------------------- the server as a real process


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _start_server(replica_id: str = REPLICA_ID) -> tuple[subprocess.Popen[str], int]:
    port = _free_port()
    env = {**os.environ, "PORT": str(port), "HOST": "127.0.0.1", "GSE_REPLICA_ID": replica_id}
    process = subprocess.Popen(
        [sys.executable, "server.py"],
        cwd=DIGITS_DIR,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + READY_DEADLINE_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            out, err = process.communicate()
            pytest.fail(f"server.py exited with {process.returncode} before ready:\n{out}\n{err}")
        try:
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            connection.request("GET", "/healthz")
            if connection.getresponse().status == 200:
                connection.close()
                return process, port
            connection.close()
        except OSError:
            pass
        time.sleep(0.05)  # poll interval between readiness checks; the deadline bounds the wait
    _stop(process)
    pytest.fail(f"server.py was not ready within {READY_DEADLINE_S} s")


def _stop(process: subprocess.Popen[str]) -> None:
    if process.poll() is None:
        process.kill()
    process.communicate(timeout=10)


@pytest.fixture(scope="module")
def running() -> Iterator[int]:
    process, port = _start_server()
    try:
        yield port
    finally:
        _stop(process)


@pytest.fixture()
def connection(running: int) -> Iterator[http.client.HTTPConnection]:
    conn = http.client.HTTPConnection("127.0.0.1", running, timeout=10)
    yield conn
    conn.close()


def _post(
    conn: http.client.HTTPConnection, document: Any, path: str = "/predict"
) -> tuple[http.client.HTTPResponse, Any]:
    body = document if isinstance(document, bytes) else json.dumps(document).encode()
    conn.request("POST", path, body=body, headers={"Content-Type": "application/json"})
    response = conn.getresponse()
    return response, json.loads(response.read())


def test_healthz_is_ready(connection: http.client.HTTPConnection) -> None:
    connection.request("GET", "/healthz")
    response = connection.getresponse()
    assert response.status == 200
    assert json.loads(response.read())["replica"] == REPLICA_ID


def test_root_describes_the_service(connection: http.client.HTTPConnection) -> None:
    connection.request("GET", "/")
    response = connection.getresponse()
    document = json.loads(response.read())
    assert response.status == 200
    assert document["service"] == "digits" and document["ready"] is True
    assert "POST /predict" in document["endpoints"]


def test_predict_one_image_is_right(connection: http.client.HTTPConnection, split: Any) -> None:
    _, x_test, _, y_test = split
    response, document = _post(connection, {"image": x_test[0].tolist()})
    assert response.status == 200
    assert response.getheader("Content-Type") == "application/json"
    assert document["predictions"] == [int(y_test[0])]
    assert document["replica"] == REPLICA_ID
    (probabilities,) = document["probabilities"]
    assert len(probabilities) == 10
    assert sum(probabilities) == pytest.approx(1.0, abs=1e-4)
    assert int(np.argmax(probabilities)) == int(y_test[0])


def test_predict_accepts_8x8_nested_image(connection: http.client.HTTPConnection, split: Any) -> None:
    _, x_test, _, y_test = split
    response, document = _post(connection, {"image": x_test[1].reshape(8, 8).tolist()})
    assert response.status == 200
    assert document["predictions"] == [int(y_test[1])]


def test_predict_many_images(connection: http.client.HTTPConnection, split: Any) -> None:
    _, x_test, _, y_test = split
    response, document = _post(connection, {"images": x_test[:40].tolist()})
    assert response.status == 200
    assert len(document["predictions"]) == 40
    assert np.array(document["probabilities"]).shape == (40, 10)
    assert np.mean(np.array(document["predictions"]) == y_test[:40]) >= 0.9


BAD_BODIES: list[tuple[str, bytes, str]] = [
    ("not json", b"this is not json", "body"),
    ("wrong length", json.dumps({"image": [0] * 63}).encode(), "image"),
    ("value above 16", json.dumps({"image": [0] * 63 + [17]}).encode(), "image[63]"),
    ("negative value", json.dumps({"images": [[0] * 64, [-3] + [0] * 63]}).encode(), "images[1][0]"),
    ("too many images", json.dumps({"images": [[0] * 64] * 1001}).encode(), "images"),
    ("no images field", json.dumps({"pixels": [0] * 64}).encode(), "images"),
    ("empty body", b"", "body"),
]


@pytest.mark.parametrize(("case", "body", "field"), BAD_BODIES, ids=[case for case, _, _ in BAD_BODIES])
def test_bad_input_is_400_problem_and_connection_survives(
    connection: http.client.HTTPConnection, case: str, body: bytes, field: str, split: Any
) -> None:
    response, problem = _post(connection, body)
    assert response.status == 400
    assert response.getheader("Content-Type") == "application/problem+json"
    assert problem["status"] == 400
    assert problem["title"] and problem["type"] and problem["detail"]
    assert problem["field"] == field
    # The same connection serves the next request.
    _, x_test, _, y_test = split
    response, document = _post(connection, {"image": x_test[2].tolist()})
    assert response.status == 200
    assert document["predictions"] == [int(y_test[2])]


def test_body_too_large_is_refused_unread(running: int, connection: http.client.HTTPConnection) -> None:
    with socket.create_connection(("127.0.0.1", running), timeout=10) as raw:
        raw.sendall(
            b"POST /predict HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
            b'Content-Length: 50000000\r\n\r\n{"images": ['
        )
        reply = b""
        while chunk := raw.recv(65536):  # the server answers, then closes
            reply += chunk
    head, _, body = reply.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 400")
    assert b"content-type: application/problem+json" in head.lower()
    problem = json.loads(body)
    assert problem["status"] == 400 and "50000000 bytes" in problem["detail"]
    # The server is still fine for everyone else.
    connection.request("GET", "/healthz")
    assert connection.getresponse().status == 200


def test_unknown_path_is_404_problem(connection: http.client.HTTPConnection) -> None:
    connection.request("GET", "/nowhere")
    response = connection.getresponse()
    problem = json.loads(response.read())
    assert response.status == 404
    assert response.getheader("Content-Type") == "application/problem+json"
    assert problem["status"] == 404 and "/nowhere" in problem["detail"]


def test_get_on_predict_is_405_with_allow(connection: http.client.HTTPConnection) -> None:
    connection.request("GET", "/predict")
    response = connection.getresponse()
    response.read()
    assert response.status == 405
    assert response.getheader("Allow") == "POST"


def test_keep_alive_serves_two_requests_on_one_connection(
    connection: http.client.HTTPConnection, split: Any
) -> None:
    _, x_test, _, _ = split
    first, _ = _post(connection, {"image": x_test[3].tolist()})
    assert first.status == 200 and not first.will_close
    assert first.getheader("Content-Length") is not None
    sock = connection.sock
    assert sock is not None
    second, _ = _post(connection, {"image": x_test[4].tolist()})
    assert second.status == 200
    assert connection.sock is sock  # no reconnect happened


def test_run_test_set_against_one_replica(running: int) -> None:
    report = loadtest.run_test_set(f"http://127.0.0.1:{running}", progress=False)
    assert report.requests == 450 and report.images == 450
    assert report.failures == 0
    assert report.accuracy >= 0.95
    assert report.per_replica == {REPLICA_ID: 450}
    assert report.latency_p50_ms is not None and report.latency_p99_ms is not None
    assert 0 < report.latency_p50_ms <= report.latency_p99_ms <= (report.latency_max_ms or 0)

    console = Console(record=True, width=120)
    loadtest.print_report(report, console)
    text = console.export_text()
    assert REPLICA_ID in text and "100%" in text
    assert f"{report.accuracy:.4f}" in text


def test_run_test_set_in_batches(running: int) -> None:
    report = loadtest.run_test_set(f"http://127.0.0.1:{running}/", batch=100, progress=False)
    assert report.requests == 5  # 100, 100, 100, 100, 50
    assert report.failures == 0 and report.accuracy >= 0.95


def test_run_test_set_counts_failures() -> None:
    report = loadtest.run_test_set(f"http://127.0.0.1:{_free_port()}", batch=150, progress=False, timeout=2)
    assert report.requests == 3 and report.failures == 3
    assert report.accuracy == 0.0 and report.latency_p50_ms is None
    assert report.errors


def test_sigterm_exits_zero_with_idle_keep_alive_connection() -> None:
    process, port = _start_server("default.digits.sigterm")
    try:
        idle = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        idle.request("GET", "/healthz")
        assert idle.getresponse().read()
        process.send_signal(signal.SIGTERM)
        out, err = process.communicate(timeout=20)
        assert process.returncode == 0, err
        assert f"listening on 127.0.0.1:{port}" in out
        assert "digits model ready: accuracy on held-out split 0.9" in out
        assert out.count("\n") == 1  # one line at start-up, nothing per request
        idle.close()
    finally:
        _stop(process)


# ---------------------------------------------------------------- graceful drain, in-process


class _HeldModel:
    """A model whose prediction waits until the test lets it go, to hold a request in flight."""

    classes_ = np.arange(10)

    def __init__(self) -> None:
        self.entered = threading.Event()
        self.release = threading.Event()

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        self.entered.set()
        assert self.release.wait(30)
        out = np.zeros((len(x), 10))
        out[:, 7] = 1.0
        return out


def test_stop_lets_in_flight_request_finish() -> None:
    server = digits_server.make_server("127.0.0.1", 0, "drain")
    held = _HeldModel()
    server.set_model(held)
    server.start()
    answers: list[tuple[int, Any, str | None]] = []

    def ask() -> None:
        conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
        conn.request("POST", "/predict", body=json.dumps({"image": [0] * 64}))
        response = conn.getresponse()
        answers.append((response.status, json.loads(response.read()), response.getheader("Connection")))
        conn.close()

    client = threading.Thread(target=ask)
    client.start()
    assert held.entered.wait(10)
    stopper = threading.Thread(target=server.stop)
    stopper.start()
    stopper.join(timeout=1.0)
    assert stopper.is_alive(), "stop() returned while a request was still in flight"
    held.release.set()
    stopper.join(timeout=10)
    client.join(timeout=10)
    assert not stopper.is_alive()
    assert answers == [
        (
            200,
            {"predictions": [7], "probabilities": [[0, 0, 0, 0, 0, 0, 0, 1.0, 0, 0]], "replica": "drain"},
            "close",
        )
    ]
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", server.port), timeout=2).close()


def test_not_ready_until_model_is_set() -> None:
    server = digits_server.make_server("127.0.0.1", 0, "cold")
    server.start()
    try:
        conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
        conn.request("GET", "/healthz")
        response = conn.getresponse()
        problem = json.loads(response.read())
        assert response.status == 503 and response.getheader("Retry-After") == "1"
        assert problem["status"] == 503
        server.set_model(_ReadyModel())
        conn.request("GET", "/healthz")
        assert conn.getresponse().status == 200
        conn.close()
    finally:
        server.stop()


class _ReadyModel:
    classes_ = np.arange(10)

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        return np.full((len(x), 10), 0.1)


# ---------------------------------------------------------------- the service document


def test_service_yaml_is_a_valid_service_document() -> None:
    loader = pytest.importorskip("gs_engine.spec.loader")
    spec = loader.load_service((DIGITS_DIR / "service.yaml").read_text())
    assert (spec.name, spec.namespace, spec.replicas) == ("digits", "default", 2)
    assert spec.route is None  # the default prefix /default/digits
    (container,) = spec.containers
    assert container.name == "digits"
    assert container.command == ["python", "server.py"]
    assert container.working_dir == "."
    assert (DIGITS_DIR / container.working_dir / container.command[1]).is_file()
    assert (container.resources.requests.cpu, container.resources.requests.memory) == ("250m", "256Mi")
    assert (container.resources.limits.cpu, container.resources.limits.memory) == ("1", "512Mi")
    assert container.readiness_probe is not None and container.readiness_probe.http_get is not None
    assert container.readiness_probe.http_get.path == "/healthz"
    assert container.readiness_probe.period_seconds == 1
