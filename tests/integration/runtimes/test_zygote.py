"""Replicas forked from a zygote, against real processes (tmp_path state dirs, Linux /proc).

The test app (zygote_app/app.py) imports `warm`, which the parent preloads and warms: a replica
that reports `warmed_by` = its parent's pid was forked from the warm parent, not started afresh.
"""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest

from gs_engine.runtimes.base import ReplicaObservation, ReplicaRequest, ReplicaState
from gs_engine.runtimes.process import ProcessRuntime
from tests.integration.runtimes.helpers import observed
from tests.integration.runtimes.helpers import wait_until as wait_for_observed

pytestmark = [
    pytest.mark.integration,
    pytest.mark.anyio,
    pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="needs Linux /proc"),
]

APP_DIR = Path(__file__).resolve().parent / "zygote_app"
DIGITS_DIR = Path(__file__).resolve().parents[3] / "examples" / "digits"
DEADLINE = 30.0


def app_spec(
    command: list[str] | None = None, *, warmup: str | None = "warm:warmup", preload: list[str] | None = None
) -> dict[str, Any]:
    zygote: dict[str, Any] = {"preload": preload if preload is not None else ["json"]}
    if warmup:
        zygote["warmup"] = warmup
    return {
        "service": {
            "name": "zapp",
            "namespace": "default",
            "replicas": 1,
            "labels": {},
            "containers": [
                {
                    "name": "app",
                    "image": None,
                    "command": command or ["python", "app.py"],
                    "args": [],
                    "env": [{"name": "GREETING", "value": "hello"}],
                    "workingDir": str(APP_DIR),
                    "ports": [],
                    "resources": {},
                }
            ],
            "readinessProbe": {"httpGet": {"path": "/healthz"}, "periodSeconds": 0.2},
            "prewarm": {"minWarm": 0, "schedule": [], "zygote": zygote},
        }
    }


def request(replica_id: str, doc: dict[str, Any], revision: str = "rev1") -> ReplicaRequest:
    return ReplicaRequest(replica_id, "default", "zapp", revision, doc)


async def wait_until(condition: Callable[[], Any], what: str, timeout: float = DEADLINE) -> Any:
    return await wait_for_observed(condition, what, timeout, poll=0.02)


def ready(rt: ProcessRuntime, replica_id: str) -> ReplicaObservation | None:
    obs = observed(rt, replica_id)
    return obs if obs is not None and obs.ready else None


def exited(rt: ProcessRuntime, replica_id: str) -> ReplicaObservation | None:
    obs = observed(rt, replica_id)
    return obs if obs is not None and obs.state is ReplicaState.EXITED else None


def alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def parent_of(pid: int) -> int:
    return psutil.Process(pid).ppid()


async def start_ready(
    rt: ProcessRuntime, replica_id: str, doc: dict[str, Any], **kw: Any
) -> ReplicaObservation:
    await rt.run_replica(request(replica_id, doc, **kw))
    obs: ReplicaObservation = await wait_until(lambda: ready(rt, replica_id), f"{replica_id} to be ready")
    return obs


async def info(obs: ReplicaObservation) -> dict[str, Any]:
    async with httpx.AsyncClient() as client:
        response = await client.get(f"http://{obs.host}:{obs.port}/info", timeout=10)
    response.raise_for_status()
    doc: dict[str, Any] = response.json()
    return doc


def socket_inodes(pid: int) -> set[str]:
    found = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        with_target = os.readlink(f"/proc/{pid}/fd/{fd}")
        if with_target.startswith("socket:"):
            found.add(with_target)
    return found


# -- a forked replica is a replica of its own ------------------------------------------------------


async def test_forked_replica_is_its_own_process(
    runtime: ProcessRuntime, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GSE_TEST_SECRET", "engine-only")
    obs = await start_ready(runtime, "default.zapp.a", app_spec())
    assert obs.pid is not None and "without the zygote" not in obs.message
    me = await info(obs)
    zygote_pid = parent_of(obs.pid)
    assert zygote_pid != os.getpid(), "the replica was spawned by the engine, not forked"
    assert me["warmed_by"] == zygote_pid  # the module was warmed in the parent and inherited
    assert me["pid"] == obs.pid
    assert me["pgid"] == obs.pid and me["sid"] == obs.pid  # its own session and process group
    assert os.getpgid(zygote_pid) != obs.pid
    assert me["port"] == str(obs.port) and me["replica"] == "default.zapp.a"
    assert me["name"] == "__main__" and me["argv"][0].endswith("app.py")
    # the environment is the replica's: its own PORT and id, the container's env, no engine secrets
    assert me["env"]["GREETING"] == "hello" and me["env"]["GSE_MAIN_PORT"] == str(obs.port)
    assert "GSE_TEST_SECRET" not in me["env"]
    assert "PORT" not in psutil.Process(zygote_pid).environ()
    # its output is in its own log
    log = await wait_until(
        lambda: (
            "serving on" in (p := tmp_path / "state/default.zapp.a/app.log").read_text() and p.read_text()
        ),
        "the app's start line in its log",
    )
    assert "test app default.zapp.a serving on" in log
    assert "zygote[" not in await runtime.logs("default.zapp.a")


async def test_nothing_of_the_parent_leaks_into_the_child(runtime: ProcessRuntime, tmp_path: Path) -> None:
    obs = await start_ready(runtime, "default.zapp.fds", app_spec())
    assert obs.pid is not None
    zygote_pid = parent_of(obs.pid)
    fds = {int(fd): os.readlink(f"/proc/{obs.pid}/fd/{fd}") for fd in os.listdir(f"/proc/{obs.pid}/fd")}
    assert fds[0] == os.devnull
    log_path = str(tmp_path / "state" / "default.zapp.fds" / "app.log")
    assert fds[1] == log_path and fds[2] == log_path
    others = {fd: target for fd, target in fds.items() if fd > 2}
    assert all(target.startswith("socket:") for target in others.values()), others
    assert not socket_inodes(obs.pid) & socket_inodes(zygote_pid), "a parent socket leaked into the child"
    # the only sockets are the app's own: its listening socket (and a probe's connection, if one is open)
    listening = [
        c for c in psutil.Process(obs.pid).net_connections(kind="inet") if c.status == psutil.CONN_LISTEN
    ]
    assert [c.laddr.port for c in listening] == [obs.port]
    assert psutil.Process(obs.pid).num_threads() == 1  # no thread of the parent came along


async def test_two_children_draw_different_random_numbers(runtime: ProcessRuntime) -> None:
    first = await start_ready(runtime, "default.zapp.r1", app_spec())
    second = await start_ready(runtime, "default.zapp.r2", app_spec())
    assert first.pid is not None and second.pid is not None
    assert parent_of(first.pid) == parent_of(second.pid)  # one zygote for one revision
    assert (await info(first))["random"] != (await info(second))["random"]


async def test_module_entry_runs_as_main(runtime: ProcessRuntime) -> None:
    obs = await start_ready(runtime, "default.zapp.m", app_spec(["python", "-m", "app"]))
    me = await info(obs)
    assert obs.pid is not None and me["warmed_by"] == parent_of(obs.pid)
    assert me["name"] == "__main__" and me["argv"][0].endswith("app.py")


# -- exits, stops, restarts ------------------------------------------------------------------------


async def test_exit_code_is_reported(runtime: ProcessRuntime) -> None:
    obs = await start_ready(runtime, "default.zapp.x", app_spec())
    async with httpx.AsyncClient() as client:
        await client.get(f"http://{obs.host}:{obs.port}/exit?code=7", timeout=10)
    gone = await wait_until(lambda: exited(runtime, "default.zapp.x"), "the replica to exit")
    assert gone.exit_code == 7
    assert "exited with code 7" in gone.message


async def test_a_signal_is_reported_as_a_negative_code(runtime: ProcessRuntime) -> None:
    obs = await start_ready(runtime, "default.zapp.k", app_spec())
    assert obs.pid is not None
    os.kill(obs.pid, signal.SIGKILL)
    gone = await wait_until(lambda: exited(runtime, "default.zapp.k"), "the replica to exit")
    assert gone.exit_code == -signal.SIGKILL and "SIGKILL" in gone.message


async def test_stop_kills_the_child_group_and_spares_the_zygote(runtime: ProcessRuntime) -> None:
    obs = await start_ready(runtime, "default.zapp.s", app_spec())
    assert obs.pid is not None
    zygote_pid = parent_of(obs.pid)
    await runtime.stop_replica("default.zapp.s", grace_seconds=5)
    await wait_until(lambda: not alive(obs.pid or 0), "the child to be gone")
    assert alive(zygote_pid)
    assert observed(runtime, "default.zapp.s") is None
    stats_after = await start_ready(runtime, "default.zapp.s2", app_spec())
    assert stats_after.pid is not None and parent_of(stats_after.pid) == zygote_pid  # still forking
    stats = await runtime.stats("default.zapp.s2")
    assert stats is not None and stats.memory_bytes > 0


async def test_crash_restart_forks_again_and_keeps_the_log(runtime: ProcessRuntime) -> None:
    obs = await start_ready(runtime, "default.zapp.c", app_spec())
    assert obs.pid is not None
    zygote_pid = parent_of(obs.pid)
    os.kill(obs.pid, signal.SIGKILL)
    await wait_until(lambda: exited(runtime, "default.zapp.c"), "the crash to be seen")
    await runtime.stop_replica("default.zapp.c")  # what the controller does before restarting
    again = await start_ready(runtime, "default.zapp.c", app_spec())
    assert again.pid is not None and again.pid != obs.pid
    assert parent_of(again.pid) == zygote_pid
    assert (await runtime.logs("default.zapp.c")).count("test app default.zapp.c serving on") == 2


async def test_close_leaves_no_process(tmp_path: Path) -> None:
    rt = ProcessRuntime(tmp_path / "state")
    await rt.start()
    first = await start_ready(rt, "default.zapp.p1", app_spec())
    second = await start_ready(rt, "default.zapp.p2", app_spec())
    assert first.pid is not None and second.pid is not None
    zygote_pid = parent_of(first.pid)
    await rt.close()
    for pid in (first.pid, second.pid, zygote_pid):
        assert not alive(pid), pid


async def test_a_crashed_zygote_is_replaced_on_the_next_start(runtime: ProcessRuntime) -> None:
    obs = await start_ready(runtime, "default.zapp.z1", app_spec())
    assert obs.pid is not None
    zygote_pid = parent_of(obs.pid)
    os.kill(zygote_pid, signal.SIGKILL)
    await wait_until(lambda: not alive(zygote_pid), "the zygote to die")
    again = await start_ready(runtime, "default.zapp.z2", app_spec())
    assert again.pid is not None and "without the zygote" not in again.message
    new_zygote = parent_of(again.pid)
    assert new_zygote not in (zygote_pid, os.getpid())
    assert (await info(again))["warmed_by"] == new_zygote
    assert alive(obs.pid)  # the first replica runs on without its parent


async def test_idle_zygote_stops_and_a_new_revision_retires_the_old(tmp_path: Path) -> None:
    rt = ProcessRuntime(tmp_path / "state", zygote_idle_seconds=0.3)
    await rt.start()
    try:
        obs = await start_ready(rt, "default.zapp.i", app_spec())
        assert obs.pid is not None
        zygote_pid = parent_of(obs.pid)
        await rt.stop_replica("default.zapp.i")
        await wait_until(lambda: not alive(zygote_pid), "the idle zygote to stop", timeout=10)
        # a new revision: the old revision's zygote goes once the new one is up and the old is unused
        old = await start_ready(rt, "default.zapp.v1", app_spec(), revision="rev1")
        assert old.pid is not None
        old_zygote = parent_of(old.pid)
        await rt.stop_replica("default.zapp.v1")
        new = await start_ready(rt, "default.zapp.v2", app_spec(), revision="rev2")
        assert new.pid is not None and parent_of(new.pid) != old_zygote
        await wait_until(lambda: not alive(old_zygote), "the old revision's zygote to stop", timeout=10)
    finally:
        await rt.close()


async def test_warm_zygote_starts_the_parent_ahead(runtime: ProcessRuntime) -> None:
    before = {p.pid for p in psutil.Process().children()}
    await runtime.warm_zygote(app_spec(), "rev1")
    started = [p for p in psutil.Process().children() if p.pid not in before]
    assert len(started) == 1 and "gs_engine.runtimes.zygote_main" in " ".join(started[0].cmdline())
    obs = await start_ready(runtime, "default.zapp.w", app_spec())
    assert obs.pid is not None and parent_of(obs.pid) == started[0].pid


async def test_adoption_after_an_engine_restart(tmp_path: Path) -> None:
    state = tmp_path / "state"
    old = ProcessRuntime(state)
    await old.start()
    obs = await start_ready(old, "default.zapp.adopt", app_spec())
    assert obs.pid is not None
    zygote_pid = parent_of(obs.pid)
    await old.close(stop_replicas=False)
    await wait_until(lambda: not alive(zygote_pid), "the old engine's zygote to stop")
    assert alive(obs.pid)
    new = ProcessRuntime(state)
    await new.start()
    try:
        adopted = await wait_until(
            lambda: ready(new, "default.zapp.adopt"), "the adopted replica to be ready"
        )
        assert adopted.pid == obs.pid
        await new.stop_replica("default.zapp.adopt", grace_seconds=5)
        await wait_until(lambda: not alive(obs.pid or 0), "the adopted replica to stop")
    finally:
        await new.close()


# -- falling back to a plain start -----------------------------------------------------------------


async def test_a_failing_warmup_falls_back_to_a_plain_start(runtime: ProcessRuntime) -> None:
    obs = await start_ready(runtime, "default.zapp.f", app_spec(warmup="warm:warmup_fails"))
    assert "started without the zygote" in obs.message and "before it was ready" in obs.message
    assert obs.pid is not None and parent_of(obs.pid) == os.getpid()
    assert (await info(obs))["warmed_by"] is None


async def test_threads_in_the_parent_refuse_the_fork(runtime: ProcessRuntime) -> None:
    obs = await start_ready(runtime, "default.zapp.t", app_spec(warmup="warm:warmup_with_thread"))
    assert "started without the zygote" in obs.message and "left-running" in obs.message
    assert obs.pid is not None and parent_of(obs.pid) == os.getpid()


# -- the digits example ----------------------------------------------------------------------------


async def test_digits_example_forks_with_the_model_loaded(runtime: ProcessRuntime) -> None:
    pytest.importorskip("sklearn", reason="the digits example needs scikit-learn")
    from gs_engine.spec.loader import load_service
    from gs_engine.spec.service import template_revision

    spec = load_service((DIGITS_DIR / "service-zygote.yaml").read_text())
    doc = spec.to_document()
    doc["service"]["containers"][0]["workingDir"] = str(DIGITS_DIR)
    revision = template_revision(spec)
    await runtime.warm_zygote(doc, revision)
    replica = ReplicaRequest("default.digits.z1", "default", "digits", revision, doc)
    await runtime.run_replica(replica)
    obs = await wait_until(lambda: ready(runtime, "default.digits.z1"), "digits to be ready")
    assert obs.pid is not None and parent_of(obs.pid) != os.getpid()
    sys.path.insert(0, str(DIGITS_DIR))
    try:
        import model as digits_model
    finally:
        sys.path.remove(str(DIGITS_DIR))
    _, x_test, _, y_test = digits_model.load_split()
    async with httpx.AsyncClient() as client:
        response = await client.post(
            f"http://{obs.host}:{obs.port}/predict", json={"images": x_test[:20].tolist()}, timeout=10
        )
    assert response.status_code == 200
    body = response.json()
    assert body["replica"] == "default.digits.z1"
    assert sum(int(p == y) for p, y in zip(body["predictions"], y_test[:20], strict=True)) >= 18
    log = await runtime.logs("default.digits.z1")
    assert "digits model ready" in log
