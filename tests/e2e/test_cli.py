"""`gse` as a user runs it, against a real engine; and the demo's own code path end to end."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from gs_engine.harness import EngineProcess
from tests.integration.conftest import echo_service, ready_count, wait_for

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.integration


def gse(engine: EngineProcess, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "gs_engine.cli", *args],
        env=engine.env(),
        capture_output=True,
        text=True,
        input=stdin,
        timeout=60,
    )


def test_cli_round_trip(engine: EngineProcess, tmp_path: Path) -> None:
    doc = echo_service("cli-echo")
    doc["service"]["containers"][0]["workingDir"] = "."
    path = tmp_path / "svc.yaml"
    path.write_text(yaml.safe_dump(doc))

    applied = gse(engine, "apply", "-f", str(path), "--wait", "--timeout", "60")
    assert applied.returncode == 0, applied.stderr
    assert "service default/cli-echo created" in applied.stdout

    services = json.loads(gse(engine, "get", "services", "-o", "json").stdout)
    assert [s["name"] for s in services] == ["cli-echo"]
    # a relative workingDir is taken from the file's folder
    assert services[0]["spec"]["service"]["containers"][0]["workingDir"] == str(tmp_path)

    table = gse(engine, "get", "services")
    assert "cli-echo" in table.stdout and "1/1" in table.stdout
    as_yaml = yaml.safe_load(gse(engine, "get", "replicas", "-o", "yaml").stdout)
    assert as_yaml[0]["service"] == "cli-echo" and as_yaml[0]["ready"] is True
    assert as_yaml[0]["memoryBytes"] > 1_000_000 and as_yaml[0]["cpuCores"] >= 0  # psutil, per replica

    called = gse(engine, "call", "cli-echo", "/hello", "-d", '{"a": 1}')
    assert called.returncode == 0, called.stderr
    answer = json.loads(called.stdout)
    assert answer["path"] == "/hello" and answer["method"] == "POST" and answer["bodyBytes"] == 8

    assert gse(engine, "scale", "cli-echo", "--replicas", "2").returncode == 0
    with engine.client() as api:
        wait_for(lambda: ready_count(api, "cli-echo") == 2, what="2 ready")
    described = gse(engine, "describe", "service", "cli-echo")
    assert "2 ready / 2 desired" in described.stdout and "ScalingUp" in described.stdout

    logs = gse(engine, "logs", "cli-echo")
    assert "echo app v1 listening" in logs.stdout
    follow = subprocess.Popen(
        [sys.executable, "-m", "gs_engine.cli", "logs", "cli-echo", "-f"],
        env=engine.env(),
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert follow.stdout is not None
        assert "echo app v1 listening" in follow.stdout.readline()  # recent lines first, then it follows
        assert "echo app v1 listening" in follow.stdout.readline()  # both replicas
        assert gse(engine, "scale", "cli-echo", "--replicas", "3").returncode == 0
        assert "echo app v1 listening" in follow.stdout.readline()  # and one that started later
    finally:
        follow.kill()
        follow.wait()

    nodes = json.loads(gse(engine, "get", "nodes", "-o", "json").stdout)
    assert nodes[0]["cpu"]["cores"] >= 1
    namespaces = json.loads(gse(engine, "get", "namespaces", "-o", "json").stdout)
    assert [n["name"] for n in namespaces] == ["default"]

    deleted = gse(engine, "delete", "service", "cli-echo")
    assert deleted.returncode == 0 and "deleted" in deleted.stdout
    assert json.loads(gse(engine, "get", "services", "-o", "json").stdout) == []


@pytest.mark.parametrize(
    ("args", "stdin", "message"),
    [
        (["apply", "-f", "-"], "service: [\n", "not valid YAML at line"),
        (
            ["apply", "-f", "-"],
            "service:\n  name: Web_1\n  containers: [{command: [python]}]\n",
            "service.name",
        ),
        (
            ["apply", "-f", "-"],
            "service:\n  name: w\n  containers: [{command: [python]}]\n  colour: red\n",
            "unknown field 'colour'",
        ),
        (
            ["apply", "-f", "-"],
            "service:\n  name: w\n  containers: [{command: [not-a-real-binary]}]\n",
            "not-a-real-binary",
        ),
        (["apply", "-f", "/no/such/file.yaml"], None, "no such file"),
        (["call", "ghost", "/"], None, "service default/ghost not found"),
        (["describe", "service", "ghost"], None, "not found"),
        (["scale", "ghost", "--replicas", "2"], None, "not found"),
    ],
)
def test_cli_errors_are_one_clear_line(
    engine: EngineProcess, args: list[str], stdin: str | None, message: str
) -> None:
    result = gse(engine, *args, stdin=stdin)
    assert result.returncode != 0
    assert message in result.stderr
    assert "Traceback" not in result.stderr + result.stdout


def test_cli_without_engine_or_token(tmp_path: Path) -> None:
    engine = EngineProcess(tmp_path / "nothing")
    no_token = gse(engine, "get", "services")
    assert no_token.returncode == 1 and "no API token" in no_token.stderr
    (tmp_path / "nothing").mkdir()
    (tmp_path / "nothing" / "admin.token").write_text("gse_x\n")
    no_engine = gse(engine, "get", "services")
    assert no_engine.returncode == 1 and "cannot reach the GS-Engine API" in no_engine.stderr
    assert "Traceback" not in no_engine.stderr


def test_taken_gateway_port_is_reported(tmp_path: Path) -> None:
    import socket

    with socket.socket() as blocker:
        blocker.bind(("127.0.0.1", 0))
        blocker.listen()
        port = blocker.getsockname()[1]
        engine = EngineProcess(tmp_path / "home", gateway_port=port)
        with pytest.raises(RuntimeError) as failed:
            engine.start(timeout=30)
    assert f"port {port}" in str(failed.value) and "--gateway-port" in str(failed.value)
    assert "Traceback" not in str(failed.value)


def test_up_stops_on_sigterm_without_leftovers(engine: EngineProcess) -> None:
    with engine.client() as api:
        api.apply(echo_service("leftover", replicas=2))
        wait_for(lambda: ready_count(api, "leftover") == 2, what="2 ready")
    assert len(engine.descendants()) >= 2
    assert engine.stop() == []
    assert engine.process is not None and engine.process.returncode == 0


def test_demo_code_path(tmp_path: Path) -> None:
    sys.path.insert(0, str(ROOT / "examples" / "digits"))
    try:
        from demo import run_demo
    finally:
        sys.path.pop(0)
    assert run_demo(tmp_path / "demo-home", replicas=2, progress=False) == 0


def test_unwritable_home_is_reported(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    # the harness keeps its log in tmp_path/logs; the engine is given a home below a plain file
    engine = EngineProcess(tmp_path / "logs", extra_env={"GSE_HOME": str(blocker / "home")})
    with pytest.raises(RuntimeError) as failed:
        engine.start(timeout=30)
    assert "cannot use" in str(failed.value) and "GSE_HOME" in str(failed.value)
    assert "Traceback" not in str(failed.value)


def test_second_engine_on_one_data_directory_is_refused(engine: EngineProcess) -> None:
    with engine.client() as api:
        api.apply(echo_service("solo"))
        wait_for(lambda: ready_count(api, "solo") == 1, what="ready")
        [before] = api.replicas("default", "solo")
    second = EngineProcess(engine.home)  # same home, other ports
    with pytest.raises(RuntimeError) as refused:
        second.start(timeout=30)
    assert "another engine" in str(refused.value) and "GSE_HOME" in str(refused.value)
    with engine.client() as api:
        [after] = api.replicas("default", "solo")
    assert after["pid"] == before["pid"] and after["restarts"] == 0  # the first engine's replica is untouched


def test_api_url_pointing_at_the_gateway_says_so(engine: EngineProcess) -> None:
    env = engine.env() | {"GSE_API_URL": engine.gateway_url}
    result = subprocess.run(
        [sys.executable, "-m", "gs_engine.cli", "get", "services"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    assert "gateway, not its API" in result.stderr and "GSE_API_PORT" in result.stderr


def test_api_validation_errors_name_field_and_fix(engine: EngineProcess) -> None:
    import httpx

    with engine.client() as api:
        api.apply(echo_service("valid"))
    response = httpx.put(
        f"{engine.api_url}/api/v1/namespaces/default/services/valid/scale",
        json={"replica": 3},
        headers={"Authorization": f"Bearer {engine.token}"},
    )
    assert response.status_code == 422
    [problem] = response.json()["problems"]
    assert problem["field"] == "replicas" and problem["fix"] == "add replicas to the JSON body"
