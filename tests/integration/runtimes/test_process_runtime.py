"""The process runtime against real processes on this machine (tmp_path state dirs).

Every test closes its runtime, which stops every replica; `assert_gone` checks pids directly.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest

from gs_engine.errors import NotFound, TemporaryBackendError
from gs_engine.runtimes.base import ReplicaObservation, ReplicaRequest, ReplicaState, Runtime
from gs_engine.runtimes.process import STATE_FILE, ProcessRuntime
from tests.integration.runtimes.helpers import observed
from tests.integration.runtimes.helpers import wait_until as wait_for_observed

pytestmark = [pytest.mark.integration, pytest.mark.anyio]

HTTP_SERVER = (
    "import http.server, os\n"
    "http.server.ThreadingHTTPServer((os.environ['HOST'], int(os.environ['PORT'])),"
    " http.server.SimpleHTTPRequestHandler).serve_forever()\n"
)
SLEEP_FOREVER = "import time\nwhile True: time.sleep(1)\n"


def spec(*containers: dict[str, Any], probe: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "service": {
            "name": "svc",
            "namespace": "default",
            "replicas": 1,
            "labels": {},
            "containers": list(containers),
            "readinessProbe": probe,
        }
    }


def python(
    code: str, *, name: str = "main", env: dict[str, str] | None = None, **extra: Any
) -> dict[str, Any]:
    return {
        "name": name,
        "image": None,
        "command": ["python", "-c", code],
        "args": [],
        "env": [{"name": k, "value": v} for k, v in (env or {}).items()],
        "workingDir": None,
        "ports": [],
        "resources": {},
        **extra,
    }


def probe(kind: str, action: dict[str, Any], **timing: Any) -> dict[str, Any]:
    return {
        kind: action,
        "initialDelaySeconds": 0,
        "periodSeconds": timing.get("period", 0.2),
        "timeoutSeconds": 1,
        "successThreshold": timing.get("success", 1),
        "failureThreshold": timing.get("failure", 3),
    }


def request(replica_id: str, doc: dict[str, Any], port: int | None = None) -> ReplicaRequest:
    return ReplicaRequest(replica_id, "default", "svc", "rev1", doc, port=port)


async def wait_until(condition: Callable[[], Any], what: str, timeout: float = 15.0) -> Any:
    return await wait_for_observed(condition, what, timeout, poll=0.05)


def ready(rt: ProcessRuntime, replica_id: str) -> bool:
    obs = observed(rt, replica_id)
    return obs is not None and obs.ready


def exited(rt: ProcessRuntime, replica_id: str) -> ReplicaObservation | None:
    obs = observed(rt, replica_id)
    return obs if obs is not None and obs.state is ReplicaState.EXITED else None


def alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


async def test_is_a_runtime(runtime: ProcessRuntime) -> None:
    assert isinstance(runtime, Runtime)
    assert runtime.name == "process"


async def test_http_probe_makes_it_ready_and_stop_removes_it(runtime: ProcessRuntime) -> None:
    doc = spec(python(HTTP_SERVER), probe=probe("httpGet", {"path": "/", "port": None}))
    first = await runtime.run_replica(request("r-http", doc))
    assert first.state is ReplicaState.STARTING
    assert not first.ready
    assert first.pid is not None and first.port > 0
    await wait_until(lambda: ready(runtime, "r-http"), "the http probe to pass")
    obs = observed(runtime, "r-http")
    assert obs is not None and obs.state is ReplicaState.RUNNING
    async with httpx.AsyncClient() as client:
        response = await client.get(f"http://{obs.host}:{obs.port}/")
    assert response.status_code == 200

    await runtime.stop_replica("r-http", grace_seconds=5)
    assert observed(runtime, "r-http") is None
    assert not alive(first.pid)
    assert not (runtime.state_dir / "r-http").exists()
    await runtime.stop_replica("r-http")  # idempotent
    await runtime.stop_replica("never-existed")


async def test_http_probe_on_a_missing_path_stays_not_ready(runtime: ProcessRuntime) -> None:
    doc = spec(python(HTTP_SERVER), probe=probe("httpGet", {"path": "/missing", "port": None}))
    await runtime.run_replica(request("r-404", doc))
    obs = await wait_until(
        lambda: (o := observed(runtime, "r-404")) is not None and "404" in o.message and o, "a 404 message"
    )
    assert obs.state is ReplicaState.STARTING
    assert not obs.ready


async def test_default_probe_is_tcp_on_the_replica_port(runtime: ProcessRuntime) -> None:
    await runtime.run_replica(request("r-tcp", spec(python(HTTP_SERVER))))
    await wait_until(lambda: ready(runtime, "r-tcp"), "the tcp probe to pass")


async def test_explicit_tcp_probe(runtime: ProcessRuntime) -> None:
    doc = spec(python(HTTP_SERVER), probe=probe("tcpSocket", {"port": None}))
    await runtime.run_replica(request("r-tcp2", doc))
    await wait_until(lambda: ready(runtime, "r-tcp2"), "the tcp probe to pass")


async def test_exec_probe_follows_its_exit_code(runtime: ProcessRuntime, tmp_path: Path) -> None:
    flag = tmp_path / "ready.flag"
    check = ["python", "-c", "import os, sys; sys.exit(0 if os.path.exists(os.environ['FLAG']) else 1)"]
    doc = spec(
        python(SLEEP_FOREVER, env={"FLAG": str(flag)}),
        probe=probe("exec", {"command": check}, period=0.1, failure=1),
    )
    await runtime.run_replica(request("r-exec", doc))
    await wait_until(
        lambda: (o := observed(runtime, "r-exec")) is not None and "code 1" in o.message,
        "a failed exec probe",
    )
    assert not ready(runtime, "r-exec")
    flag.touch()
    await wait_until(lambda: ready(runtime, "r-exec"), "the exec probe to pass")
    flag.unlink()
    await wait_until(lambda: not ready(runtime, "r-exec"), "readiness to be lost")
    obs = observed(runtime, "r-exec")
    assert obs is not None and obs.state is ReplicaState.RUNNING and "not ready" in obs.message


async def test_crash_is_reported_with_code_and_last_line(runtime: ProcessRuntime) -> None:
    code = "import sys\nprint('loading model', flush=True)\nsys.exit('ValueError: weights missing')"
    await runtime.run_replica(request("r-crash", spec(python(code))))
    obs = await wait_until(lambda: exited(runtime, "r-crash"), "the replica to exit")
    assert obs.exit_code == 1
    assert obs.exited_at is not None
    assert not obs.ready
    assert "exited with code 1" in obs.message
    assert "weights missing" in obs.message
    # it stays EXITED until forgotten
    assert exited(runtime, "r-crash") is not None
    runtime.forget("r-crash")
    assert observed(runtime, "r-crash") is None


async def test_killed_by_signal(runtime: ProcessRuntime) -> None:
    code = "import os, signal\nos.kill(os.getpid(), signal.SIGKILL)"
    await runtime.run_replica(request("r-sig", spec(python(code))))
    obs = await wait_until(lambda: exited(runtime, "r-sig"), "the replica to die")
    assert obs.exit_code == -9
    assert "killed by signal 9" in obs.message


async def test_stop_kills_the_whole_process_group(runtime: ProcessRuntime, tmp_path: Path) -> None:
    pidfile = tmp_path / "grandchild.pid"
    code = (
        "import subprocess, sys, time, os\n"
        "child = subprocess.Popen([sys.executable, '-c', 'import time\\nwhile True: time.sleep(1)'])\n"
        "open(os.environ['PIDFILE'], 'w').write(str(child.pid))\n"
        "while True: time.sleep(1)\n"
    )
    first = await runtime.run_replica(request("r-group", spec(python(code, env={"PIDFILE": str(pidfile)}))))
    grandchild = int(await wait_until(lambda: pidfile.exists() and pidfile.read_text(), "the grandchild pid"))
    assert first.pid is not None and alive(first.pid) and alive(grandchild)
    await runtime.stop_replica("r-group", grace_seconds=5)
    assert not alive(first.pid)
    await wait_until(lambda: not alive(grandchild), "the grandchild to be gone", timeout=5)


async def test_stop_escalates_to_sigkill_after_grace(runtime: ProcessRuntime) -> None:
    code = (
        "import signal, time\nsignal.signal(signal.SIGTERM, signal.SIG_IGN)\nprint('armed', flush=True)\n"
        + (SLEEP_FOREVER)
    )
    first = await runtime.run_replica(request("r-stubborn", spec(python(code))))
    await wait_until(lambda: (runtime.state_dir / "r-stubborn" / "main.log").read_text().strip(), "armed")
    await runtime.stop_replica("r-stubborn", grace_seconds=0.3)
    assert first.pid is not None and not alive(first.pid)


async def test_environment_of_main_and_sidecar(
    runtime: ProcessRuntime, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GSE_TOKEN", "must-not-leak")
    dump = (
        "import json, os, sys\n"
        "doc = {'env': dict(os.environ), 'argv': sys.argv, 'exe': sys.executable}\n"
        "json.dump(doc, open(os.environ['OUT'], 'w'))\n"
    )
    main = python(dump + SLEEP_FOREVER, env={"OUT": str(tmp_path / "main.json"), "GREETING": "hi $(PORT)"})
    main["args"] = ["--port=$(PORT)", "$$(PORT)"]
    side = python(dump + SLEEP_FOREVER, name="side", env={"OUT": str(tmp_path / "side.json")})
    first = await runtime.run_replica(request("r-env", spec(main, side)))
    await wait_until(lambda: (tmp_path / "main.json").exists() and (tmp_path / "side.json").exists(), "dumps")
    main_doc = json.loads(await wait_until(lambda: _complete(tmp_path / "main.json"), "main dump"))
    side_doc = json.loads(await wait_until(lambda: _complete(tmp_path / "side.json"), "side dump"))
    env = main_doc["env"]
    assert env["PORT"] == str(first.port)
    assert env["HOST"] == "127.0.0.1"
    assert env["GSE_REPLICA_ID"] == "r-env"
    assert env["GSE_SERVICE"] == "svc" and env["GSE_NAMESPACE"] == "default"
    assert "GSE_TOKEN" not in env
    assert env["GREETING"] == f"hi {first.port}"
    assert main_doc["argv"][1:] == [f"--port={first.port}", "$(PORT)"]
    assert Path(main_doc["exe"]).parent == Path(sys.executable).parent
    side_env = side_doc["env"]
    assert "PORT" not in side_env
    assert side_env["GSE_MAIN_PORT"] == str(first.port)
    assert "GSE_TOKEN" not in side_env


def _complete(path: Path) -> str | None:
    text = path.read_text()
    try:
        json.loads(text)
    except ValueError:
        return None
    return text


async def test_working_dir_is_the_cwd(runtime: ProcessRuntime, tmp_path: Path) -> None:
    work = tmp_path / "work"
    work.mkdir()
    code = "import os\nopen('cwd.txt', 'w').write(os.getcwd())\n" + SLEEP_FOREVER
    await runtime.run_replica(request("r-cwd", spec(python(code, workingDir=str(work)))))
    text = await wait_until(lambda: (work / "cwd.txt").exists() and (work / "cwd.txt").read_text(), "cwd.txt")
    assert Path(text).resolve() == work.resolve()


async def test_a_busy_port_is_refused_naming_it(runtime: ProcessRuntime) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        with pytest.raises(TemporaryBackendError) as info:
            await runtime.run_replica(request("r-busy", spec(python(HTTP_SERVER)), port=port))
    assert str(port) in info.value.message
    assert info.value.field == "port"
    assert observed(runtime, "r-busy") is None


async def test_a_given_free_port_is_used(runtime: ProcessRuntime) -> None:
    with socket.socket() as probe_sock:
        probe_sock.bind(("127.0.0.1", 0))
        port = probe_sock.getsockname()[1]
    obs = await runtime.run_replica(request("r-port", spec(python(HTTP_SERVER)), port=port))
    assert obs.port == port
    await wait_until(lambda: ready(runtime, "r-port"), "readiness on the given port")


# The old runtime leaves its children running on purpose; its abandoned Popen objects warn when
# collected, which in a real restart never happens (the old engine process is gone).
LEFT_RUNNING = pytest.mark.filterwarnings("ignore:subprocess .* is still running:ResourceWarning")


@LEFT_RUNNING
async def test_adoption_by_a_new_runtime(tmp_path: Path) -> None:
    state = tmp_path / "state"
    old = ProcessRuntime(state)
    await old.start()
    doc = spec(python(HTTP_SERVER), probe=probe("httpGet", {"path": "/", "port": None}))
    try:
        first = await old.run_replica(request("r-adopt", doc))
        await wait_until(lambda: ready(old, "r-adopt"), "readiness before the restart")
    finally:
        await old.close(stop_replicas=False)
    assert first.pid is not None and alive(first.pid)
    assert old.replicas() == []

    # a stale state file: its pid is ours now, but with another create_time
    stale = state / "r-stale"
    stale.mkdir()
    record = json.loads((state / "r-adopt" / STATE_FILE).read_text())
    record["request"]["replica_id"] = "r-stale"
    record["processes"][0].update(pid=os.getpid(), create_time=1.0)
    (stale / STATE_FILE).write_text(json.dumps(record))

    new = ProcessRuntime(state)
    await new.start()
    try:
        obs = observed(new, "r-adopt")
        assert obs is not None
        assert (obs.pid, obs.port, obs.started_at) == (first.pid, first.port, first.started_at)
        await wait_until(lambda: ready(new, "r-adopt"), "readiness after adoption")
        assert observed(new, "r-stale") is None
        assert not (stale / STATE_FILE).exists()
        assert alive(os.getpid())
    finally:
        await new.close()
    assert not alive(first.pid)
    assert not (state / "r-adopt").exists()


@LEFT_RUNNING
async def test_adopted_replica_exit_is_noticed(tmp_path: Path) -> None:
    state = tmp_path / "state"
    old = ProcessRuntime(state)
    await old.start()
    flag = tmp_path / "quit"
    code = "import os, time\nwhile not os.path.exists(os.environ['FLAG']): time.sleep(0.05)\n"
    first = await old.run_replica(request("r-adopt-exit", spec(python(code, env={"FLAG": str(flag)}))))
    await old.close(stop_replicas=False)
    new = ProcessRuntime(state)
    await new.start()
    try:
        assert observed(new, "r-adopt-exit") is not None
        flag.touch()
        obs = await wait_until(lambda: exited(new, "r-adopt-exit"), "the adopted replica to exit")
        assert obs.exited_at is not None
        assert first.pid is not None and not alive(first.pid)
    finally:
        await new.close()


async def test_logs_rotate_and_stay_bounded(tmp_path: Path) -> None:
    rt = ProcessRuntime(tmp_path / "state", log_max_bytes=2000, log_check_seconds=0.05)
    await rt.start()
    code = (
        "import time\n"
        "for i in range(300):\n"
        "    print(f'line {i:04d} ' + 'x' * 40, flush=True)\n"
        "    time.sleep(0.003)\n"
        "while True:\n"
        "    print('idle', flush=True)\n"
        "    time.sleep(0.05)\n"
    )
    written = 300 * len("line 0000 " + "x" * 40 + "\n")
    try:
        await rt.run_replica(request("r-logs", spec(python(code))))
        log = rt.state_dir / "r-logs" / "main.log"
        rotated = rt.state_dir / "r-logs" / "main.log.1"
        await wait_until(lambda: rotated.exists() and "idle" in log.read_text(), "rotation and idle lines")
        text = await rt.logs("r-logs")
        assert "idle" in text
        assert "line 0000" not in text  # the oldest output was dropped
        assert log.stat().st_size + rotated.stat().st_size < written
        tail = await rt.logs("r-logs", tail_lines=2)
        assert len(tail.splitlines()) == 2
        assert tail.splitlines()[-1] == "idle"
    finally:
        await rt.close()


async def test_logs_of_unknown_replica(runtime: ProcessRuntime) -> None:
    with pytest.raises(NotFound):
        await runtime.logs("nope")
    with pytest.raises(NotFound):
        await runtime.logs("../etc")
    with pytest.raises(NotFound):
        async for _ in runtime.follow_logs("nope"):
            pass


async def test_follow_logs_yields_new_lines_and_ends_on_exit(runtime: ProcessRuntime, tmp_path: Path) -> None:
    flag = tmp_path / "stop"
    code = (
        "import os, time\n"
        "i = 0\n"
        "while not os.path.exists(os.environ['FLAG']):\n"
        "    print(f'tick {i}', flush=True); i += 1; time.sleep(0.05)\n"
        "print('bye', flush=True)\n"
    )
    await runtime.run_replica(request("r-follow", spec(python(code, env={"FLAG": str(flag)}))))
    await wait_until(lambda: "tick 2" in (runtime.state_dir / "r-follow" / "main.log").read_text(), "ticks")
    lines: list[str] = []

    async def collect() -> None:
        async for line in runtime.follow_logs("r-follow"):
            lines.append(line)

    task = asyncio.create_task(collect())
    await wait_until(lambda: len(lines) >= 3, "three followed lines")
    flag.touch()
    await asyncio.wait_for(task, 10)
    assert lines[-1] == "bye"
    ticks = [int(line.split()[1]) for line in lines[:-1]]
    assert ticks == list(range(ticks[0], ticks[0] + len(ticks)))


async def test_stats_and_nodes(runtime: ProcessRuntime) -> None:
    busy = "import time\nt = time.time()\nwhile True: t = t * 1.0000001 + 1\n"
    await runtime.run_replica(request("r-stats", spec(python(busy))))
    first = await runtime.stats("r-stats")
    assert first is not None and first.memory_bytes > 0 and first.cpu_cores >= 0
    stats_seen: list[float] = []

    async def sample() -> None:
        s = await runtime.stats("r-stats")
        assert s is not None
        stats_seen.append(s.cpu_cores)

    loop = asyncio.get_running_loop()
    deadline = loop.time() + 15
    while not any(c > 0 for c in stats_seen) and loop.time() < deadline:
        await asyncio.sleep(0.2)
        await sample()
    assert any(c > 0 for c in stats_seen)
    with pytest.raises(NotFound):
        await runtime.stats("nope")

    nodes = await runtime.nodes()
    assert len(nodes) == 1
    node = nodes[0]
    assert node.runtime == "process"
    assert node.name == socket.gethostname()
    assert node.cpu_cores >= 1
    assert node.memory_bytes > 0 and 0 < node.memory_available_bytes <= node.memory_bytes
    assert node.numa_nodes >= 1


async def test_close_leaves_no_process_behind(tmp_path: Path) -> None:
    rt = ProcessRuntime(tmp_path / "state")
    await rt.start()
    pids = []
    for i in range(3):
        obs = await rt.run_replica(request(f"r-close-{i}", spec(python(SLEEP_FOREVER))))
        assert obs.pid is not None
        pids.append(obs.pid)
    await rt.close()
    assert rt.replicas() == []
    assert not any(alive(pid) for pid in pids)


async def test_running_id_cannot_be_started_twice(runtime: ProcessRuntime) -> None:
    from gs_engine.errors import Conflict

    await runtime.run_replica(request("r-twice", spec(python(SLEEP_FOREVER))))
    with pytest.raises(Conflict):
        await runtime.run_replica(request("r-twice", spec(python(SLEEP_FOREVER))))


async def test_restart_after_crash_keeps_the_crash_output(runtime: ProcessRuntime) -> None:
    crash = "import sys\nsys.exit('first attempt failed')"
    await runtime.run_replica(request("r-again", spec(python(crash))))
    await wait_until(lambda: exited(runtime, "r-again"), "the first attempt to exit")
    await runtime.stop_replica("r-again", grace_seconds=0)  # what the controller does before a restart
    assert observed(runtime, "r-again") is None
    await runtime.run_replica(request("r-again", spec(python("print('second attempt')\n" + SLEEP_FOREVER))))
    await wait_until(
        lambda: "second attempt" in (runtime.state_dir / "r-again" / "main.log").read_text(), "second output"
    )
    logs = await runtime.logs("r-again")
    assert logs.index("first attempt failed") < logs.index("second attempt")


async def test_a_document_from_the_service_schema_runs(runtime: ProcessRuntime) -> None:
    from gs_engine.spec import load_service

    service = load_service(
        """
service:
  name: files
  containers:
    - name: web
      command: [python, -m, http.server, $(PORT), --bind, $(HOST)]
      ports: [{containerPort: 8080}]
  readinessProbe:
    httpGet: {path: /, port: 8080}
    periodSeconds: 0.2
"""
    )
    doc = service.to_document()
    runtime.check_spec(doc)
    obs = await runtime.run_replica(ReplicaRequest("default.files.a1", "default", "files", "r1", doc))
    await wait_until(lambda: ready(runtime, "default.files.a1"), "the schema-built replica to be ready")
    async with httpx.AsyncClient() as client:
        assert (await client.get(f"http://{obs.host}:{obs.port}/")).status_code == 200
