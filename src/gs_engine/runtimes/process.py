"""The `process` runtime: each replica is a group of plain OS processes on this machine.

Layout on disk, under `state_dir/<replica_id>/`:

    state.json         pid, create_time and the request, so a new engine adopts the replica
    <container>.log    stdout and stderr of one container (appended; copy-truncated to .log.1)

A replica's processes run in their own sessions (`start_new_session`), so stopping one signals its
whole process group, grandchildren included. They write their logs straight to files (no pipe
through the engine), which is what lets them outlive an engine restart and be adopted; the
supervisor bounds each file by copying it to `.1` and truncating it once it passes
`log_max_bytes` (checked every `log_check_seconds`, so a file holds at most the limit plus what
the replica writes in one interval; lines written during the copy itself can be lost).

Supervision is one asyncio task per replica: it waits for exit (pidfd where the kernel has one,
polling otherwise) and runs the readiness probe. An exited replica stays EXITED until
`stop_replica` or `forget`; restarting is the controller's job.

With `prewarm.zygote` in the spec, a replica whose first container runs `python SCRIPT ...` or
`python -m MODULE ...` is forked from a warm parent of its revision (`runtimes/zygote.py`) instead of
started from nothing; the parents live under `state_dir/.zygotes/`. A forked replica is an ordinary
process group from then on (stop, stats, logs and adoption are the same); its exit code comes from
the parent's report, and its readiness is probed every `zygote_probe_seconds` while it starts. If
the parent cannot start, the replica starts the plain way and its observation says why.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil

from gs_engine.errors import (
    Conflict,
    InvalidInput,
    NotFound,
    PermanentBackendError,
    Problem,
    TemporaryBackendError,
    Unsupported,
)
from gs_engine.runtimes.base import (
    GpuInfo,
    NodeInfo,
    ReplicaObservation,
    ReplicaRequest,
    ReplicaState,
    ReplicaStats,
)
from gs_engine.runtimes.environment import (
    build_environment,
    expand_vars,
    reserved_env_name,
    resolve_executable,
)
from gs_engine.runtimes.logfiles import last_line as _last_line
from gs_engine.runtimes.logfiles import read_logs as _read_logs
from gs_engine.runtimes.logfiles import rotate_if_large as _rotate_if_large
from gs_engine.runtimes.nodeinfo import detect_gpus, local_node
from gs_engine.runtimes.probes import ProbeConfig, ProbeState, probe_config_from_spec, run_probe
from gs_engine.runtimes.zygote import (
    NotAPythonEntry,
    PythonEntry,
    Zygote,
    ZygoteConfig,
    ZygoteError,
    ZygotePool,
    python_entry,
)

STATE_FILE = "state.json"
STATE_VERSION = 1
_SAFE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,252}")
_UNSAFE_NAME_CHARS = re.compile(r"[^A-Za-z0-9._-]")
_POLL_SECONDS = 0.2
_GPU_CACHE_SECONDS = 60.0
_ZYGOTE_DIR = ".zygotes"
_ZYGOTE_EXIT_REPORT_SECONDS = 2.0
_PER_REPLICA_VARS = ("PORT", "GSE_REPLICA_ID", "GSE_MAIN_PORT")

# -- pure helpers ---------------------------------------------------------------------------------


def exit_message(code: int | None, last_line: str = "", container: str = "") -> str:
    who = f"container {container!r} " if container else ""
    if code is None:
        text = f"{who}exited (exit code unknown: the process was adopted from an earlier engine)"
    elif code < 0:
        try:
            signame = signal.Signals(-code).name
        except ValueError:
            signame = ""
        text = f"{who}killed by signal {-code}" + (f" ({signame})" if signame else "")
    else:
        text = f"{who}exited with code {code}"
    return f"{text}: {last_line}" if last_line else text


def service_of(spec: Mapping[str, Any]) -> Mapping[str, Any]:
    service = spec.get("service")
    if not isinstance(service, Mapping):
        raise InvalidInput("the document has no `service` section", field="service")
    return service


def containers_of(spec: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    containers = service_of(spec).get("containers") or []
    if not containers:
        raise InvalidInput(
            "the service has no containers",
            fix="add one under service.containers with the command to run",
            field="service.containers",
        )
    return list(containers)


def effective_probe(spec: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """The probe that decides readiness: the service's own, else the first container's."""
    service = service_of(spec)
    if service.get("readinessProbe"):
        probe: Mapping[str, Any] = service["readinessProbe"]
        return probe
    for container in service.get("containers") or []:
        if container.get("readinessProbe"):
            found: Mapping[str, Any] = container["readinessProbe"]
            return found
    return None


def log_file_name(index: int, container: Mapping[str, Any]) -> str:
    name = _UNSAFE_NAME_CHARS.sub("_", str(container.get("name") or "")) or f"container{index}"
    return f"{name}.log"


def zygote_settings(spec: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """`service.prewarm.zygote` of a normalized document, or None when it is off."""
    prewarm = service_of(spec).get("prewarm")
    if not isinstance(prewarm, Mapping):
        return None
    zygote = prewarm.get("zygote")
    if zygote is True:
        return {}
    return zygote if isinstance(zygote, Mapping) else None


def zygote_alive(pool: ZygotePool, config: ZygoteConfig) -> bool:
    return any(z.alive and z.config.fingerprint == config.fingerprint for z in pool.zygotes())


def _container_ports(container: Mapping[str, Any]) -> list[int]:
    ports: list[int] = []
    for item in container.get("ports") or []:
        with contextlib.suppress(TypeError, ValueError):
            ports.append(int(item.get("containerPort")))
    return ports


# -- bookkeeping ----------------------------------------------------------------------------------


@dataclass
class _Proc:
    container: str
    pid: int
    create_time: float
    log_path: Path
    popen: subprocess.Popen[bytes] | None = None  # None for a process adopted from an earlier engine
    exit_code: int | None = None
    exited: bool = False
    zygote: Zygote | None = None  # the parent it was forked from, which reports its exit code


@dataclass
class _Replica:
    request: ReplicaRequest
    host: str
    port: int
    procs: list[_Proc]
    env: dict[str, str]
    cwd: Path | None
    probe: ProbeConfig
    probe_state: ProbeState
    started_at: float
    state: ReplicaState = ReplicaState.STARTING
    message: str = "waiting for the readiness probe"
    exit_code: int | None = None
    exited_at: float | None = None
    task: asyncio.Task[None] | None = None
    stopping: bool = False
    ps_cache: dict[int, psutil.Process] = field(default_factory=dict)
    note: str = ""  # said in every observation, e.g. why the zygote was not used
    fast_probe_until: float = 0.0  # loop time until which a forked replica is probed fast


def _reap(proc: _Proc) -> None:
    """Collect the exit status if the process is our child and has ended (never blocks)."""
    if proc.exited:
        return
    if proc.zygote is not None:
        report = proc.zygote.reported_exit(proc.pid)
        if report is not None:
            proc.exited, proc.exit_code = True, report.exit_code
            return
    if proc.popen is not None:
        code = proc.popen.poll()
        if code is not None:
            proc.exited, proc.exit_code = True, code
        return
    try:
        pid, status = os.waitpid(proc.pid, os.WNOHANG)
    except ChildProcessError:
        if not _same_process_alive(proc.pid, proc.create_time):
            proc.exited = True
        return
    if pid == proc.pid:
        proc.exited, proc.exit_code = True, os.waitstatus_to_exitcode(status)


def _same_process_alive(pid: int, create_time: float) -> bool:
    try:
        ps = psutil.Process(pid)
        same = abs(ps.create_time() - create_time) < 0.05
        return bool(same and ps.status() != psutil.STATUS_ZOMBIE)
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return False


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _signal_group(proc: _Proc, sig: signal.Signals) -> None:
    # The leader's pid is its group id (start_new_session). An adopted leader whose pid now shows
    # another create_time is someone else's process that reused the number: leave it alone.
    if not proc.exited and proc.popen is None:
        with contextlib.suppress(psutil.Error):
            if abs(psutil.Process(proc.pid).create_time() - proc.create_time) >= 0.05:
                return
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, sig)


async def _terminate(procs: Sequence[_Proc], grace: float) -> None:
    """SIGTERM every process group, wait up to `grace`, then SIGKILL what is left."""
    loop = asyncio.get_running_loop()
    for proc in procs:
        _signal_group(proc, signal.SIGTERM)
    deadline = loop.time() + max(0.0, grace)
    while True:
        for proc in procs:
            _reap(proc)
        if not any(_group_alive(proc.pid) for proc in procs) or loop.time() >= deadline:
            break
        await asyncio.sleep(0.02)
    for proc in procs:
        _signal_group(proc, signal.SIGKILL)
    deadline = loop.time() + 5.0
    while loop.time() < deadline:
        for proc in procs:
            _reap(proc)
        if not any(_group_alive(proc.pid) for proc in procs):
            break
        await asyncio.sleep(0.02)


async def _wait_for_exit(proc: _Proc) -> None:
    """Return once the process has ended; records its exit code when it is our child."""
    loop = asyncio.get_running_loop()
    pidfd: int | None = None
    with contextlib.suppress(AttributeError, OSError):
        pidfd = os.pidfd_open(proc.pid)
    if pidfd is not None:
        try:
            ended: asyncio.Future[None] = loop.create_future()

            def mark_ended() -> None:
                if not ended.done():
                    ended.set_result(None)

            loop.add_reader(pidfd, mark_ended)
            try:
                await ended
            finally:
                loop.remove_reader(pidfd)
        finally:
            os.close(pidfd)
    while True:
        _reap(proc)
        if not proc.exited and proc.popen is None and not _same_process_alive(proc.pid, proc.create_time):
            proc.exited = True
        if proc.exited:
            if proc.zygote is not None and proc.exit_code is None:
                proc.exit_code = await proc.zygote.wait_exit(proc.pid, _ZYGOTE_EXIT_REPORT_SECONDS)
            return
        await asyncio.sleep(_POLL_SECONDS)


async def _cancel_all(tasks: Sequence[asyncio.Task[None]]) -> None:
    """Cancel and wait, cancelling again what is still running: on Python 3.11 a cancel that lands
    as an inner `wait_for` completes is lost, and a probe loop would then run on forever."""
    pending = {task for task in tasks if not task.done()}
    while pending:
        for task in pending:
            task.cancel()
        _, pending = await asyncio.wait(pending, timeout=0.5)


def _port_is_free(host: str, port: int) -> bool:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            if exc.errno in (errno.EADDRINUSE, errno.EACCES):
                return False
            raise
    return True


def _free_port(host: str) -> int:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


# -- the runtime ----------------------------------------------------------------------------------


class ProcessRuntime:
    """Replicas as local process groups. See the module docstring for what lives on disk."""

    name = "process"

    def __init__(
        self,
        state_dir: Path,
        *,
        host: str = "127.0.0.1",
        log_max_bytes: int = 10 * 2**20,
        clock: Callable[[], float] = time.time,
        log_check_seconds: float = 0.5,
        startup_probe_seconds: float = 0.02,  # until first ready: a ready replica waits little for traffic
        stop_grace_seconds: float = 10.0,
        zygote_idle_seconds: float = 600.0,
        zygote_start_timeout: float = 120.0,
        zygote_probe_seconds: float = 0.005,
        zygote_fast_probe_window: float = 5.0,
    ) -> None:
        self.state_dir = Path(state_dir)
        self.host = host
        self.log_max_bytes = log_max_bytes
        self._clock = clock
        self._log_check_seconds = log_check_seconds
        self._startup_probe_seconds = startup_probe_seconds
        self._stop_grace_seconds = stop_grace_seconds
        self._replicas: dict[str, _Replica] = {}
        self._node = socket.gethostname()
        self._python_dir = str(Path(sys.executable).parent)
        self._gpus: tuple[GpuInfo, ...] | None = None
        self._gpus_at = 0.0
        self._watchers: list[Callable[[], None]] = []
        self._zygotes = ZygotePool(
            self.state_dir / _ZYGOTE_DIR, idle_seconds=zygote_idle_seconds, start_timeout=zygote_start_timeout
        )
        self._zygote_probe_seconds = zygote_probe_seconds
        self._zygote_fast_probe_window = zygote_fast_probe_window

    def watch(self, callback: Callable[[], None]) -> None:
        """Call `callback` (no arguments, on the event loop) when a replica's readiness or state changes."""
        self._watchers.append(callback)

    def _changed(self) -> None:
        for callback in self._watchers:
            callback()

    # -- spec checks ------------------------------------------------------------------------------

    def check_spec(self, spec: Mapping[str, Any]) -> None:
        problems: list[Problem] = []
        for i, container in enumerate(containers_of(spec)):
            where = f"service.containers[{i}]"
            name = container.get("name") or f"#{i}"
            image = container.get("image")
            command = [str(part) for part in container.get("command") or []]
            if image:
                needs = "" if command else " and no command"
                raise Unsupported(
                    f"container {name!r} names the image {image!r}{needs}; the process runtime runs "
                    "commands on this machine and the image's files are not here",
                    fix="set `runtime: podman` (or kubernetes) to run the image, or drop `image` "
                    "and give a command that exists on this machine",
                    field=f"{where}.image",
                )
            for j, item in enumerate(container.get("env") or []):
                env_name = str(item.get("name") or "")
                if reserved_env_name(env_name):
                    problems.append(
                        Problem(
                            f"{where}.env[{j}].name",
                            f"{env_name} is set by the runtime",
                            "read $PORT / the GSE_* variables instead of setting them",
                        )
                    )
            cwd = self._working_dir(container)
            if cwd is not None and not cwd.is_absolute():
                problems.append(
                    Problem(
                        f"{where}.workingDir",
                        f"{str(cwd)!r} is relative, and the engine runs in another folder than your shell",
                        "give an absolute path (gse apply -f FILE makes it absolute from the file's folder)",
                    )
                )
                cwd = None
            elif cwd is not None and not cwd.is_dir():
                problems.append(
                    Problem(f"{where}.workingDir", f"{cwd} is not a directory", "give an existing directory")
                )
                cwd = None
            if not command:
                problems.append(
                    Problem(
                        f"{where}.command",
                        "no command to run",
                        "give the command, e.g. command: [python, -m, http.server, $(PORT)]",
                    )
                )
                continue
            env = self._environment(container, "check", spec, port=0, serves_port=i == 0)
            executable = expand_vars(command[0], env)
            if resolve_executable(executable, env.get("PATH"), cwd) is None:
                what = "is not on PATH" if os.sep not in executable else "does not exist or is not executable"
                problems.append(
                    Problem(
                        f"{where}.command[0]",
                        f"{executable!r} {what}",
                        "install it, give its full path, or use `python` for the engine's interpreter",
                    )
                )
        self._check_zygote(spec)
        if problems:
            raise InvalidInput(
                "the service cannot run on the process runtime",
                field=problems[0].path,
                problems=problems,
            )

    def _check_zygote(self, spec: Mapping[str, Any]) -> None:
        if zygote_settings(spec) is None:
            return
        main = containers_of(spec)[0]
        argv = [str(part) for part in [*(main.get("command") or []), *(main.get("args") or [])]]
        try:
            python_entry(argv)
        except NotAPythonEntry as exc:
            raise Unsupported(
                f"service.prewarm.zygote forks Python replicas from a warm interpreter, and {exc}",
                fix="run the service as `python SCRIPT ...` or `python -m MODULE ...`, "
                "or remove service.prewarm.zygote",
                field="service.prewarm.zygote",
            ) from None

    def _working_dir(self, container: Mapping[str, Any]) -> Path | None:
        working_dir = container.get("workingDir")
        return Path(str(working_dir)).expanduser() if working_dir else None

    def _environment(
        self,
        container: Mapping[str, Any],
        replica_id: str,
        spec: Mapping[str, Any],
        *,
        port: int,
        serves_port: bool,
    ) -> dict[str, str]:
        service = service_of(spec)
        engine_vars = {
            "HOST": self.host,
            "GSE_REPLICA_ID": replica_id,
            "GSE_SERVICE": str(service.get("name") or ""),
            "GSE_NAMESPACE": str(service.get("namespace") or ""),
            "GSE_MAIN_PORT": str(port),
        }
        if serves_port:
            engine_vars["PORT"] = str(port)
        return build_environment(
            os.environ, engine_vars, container.get("env") or [], self._python_dir, serves_port=serves_port
        )

    # -- lifecycle --------------------------------------------------------------------------------

    async def start(self) -> None:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        for state_path in sorted(self.state_dir.glob(f"*/{STATE_FILE}")):
            replica_id = state_path.parent.name
            if replica_id in self._replicas:
                continue
            try:
                replica = self._load_state(state_path)
            except (OSError, ValueError, KeyError, TypeError):
                replica = None
            if replica is None:
                with contextlib.suppress(OSError):
                    state_path.unlink()
                continue
            self._replicas[replica_id] = replica
            replica.task = asyncio.create_task(self._supervise(replica), name=f"replica:{replica_id}")

    def _load_state(self, state_path: Path) -> _Replica | None:
        """The replica a state file describes, or None (after killing leftovers) if its main process
        is gone or its pid now belongs to another process."""
        doc = json.loads(state_path.read_text())
        if doc.get("version") != STATE_VERSION:
            return None
        req = doc["request"]
        request = ReplicaRequest(
            replica_id=str(req["replica_id"]),
            namespace=str(req["namespace"]),
            service=str(req["service"]),
            revision=str(req["revision"]),
            spec=req["spec"],
            port=req.get("port"),
            attempt=int(req.get("attempt") or 0),
        )
        procs = [
            _Proc(
                container=str(p["container"]),
                pid=int(p["pid"]),
                create_time=float(p["create_time"]),
                log_path=state_path.parent / str(p["log"]),
            )
            for p in doc["processes"]
        ]
        if not procs or not _same_process_alive(procs[0].pid, procs[0].create_time):
            for proc in procs[1:]:
                if _same_process_alive(proc.pid, proc.create_time):
                    _signal_group(proc, signal.SIGKILL)
            return None
        containers = containers_of(request.spec)
        port = int(doc["port"])
        return _Replica(
            request=request,
            host=str(doc.get("host") or self.host),
            port=port,
            procs=procs,
            env=self._environment(
                containers[0], request.replica_id, request.spec, port=port, serves_port=True
            ),
            cwd=self._working_dir(containers[0]),
            probe=self._probe_config(request.spec, containers[0], port),
            probe_state=self._initial_probe_state(request.spec),
            started_at=float(doc.get("started_at") or self._clock()),
        )

    async def close(self, stop_replicas: bool = True) -> None:
        """Stop supervising. The zygotes stop either way; a forked replica left running (with
        `stop_replicas=False`) is an ordinary process that a later engine adopts."""
        if stop_replicas:
            await asyncio.gather(
                *(self.stop_replica(rid, self._stop_grace_seconds) for rid in list(self._replicas))
            )
            await self._zygotes.close()
            return
        replicas = list(self._replicas.values())
        self._replicas.clear()
        for replica in replicas:
            if replica.task is not None:
                replica.task.cancel()
        await asyncio.gather(*(r.task for r in replicas if r.task is not None), return_exceptions=True)
        await self._zygotes.close()

    # -- replicas ---------------------------------------------------------------------------------

    def _replica_dir(self, replica_id: str) -> Path:
        if not _SAFE_ID.fullmatch(replica_id) or ".." in replica_id:
            raise InvalidInput(
                f"replica id {replica_id!r} cannot name a directory",
                fix="use letters, digits, '.', '_' and '-' only",
                field="replica_id",
            )
        return self.state_dir / replica_id

    def _probe_config(self, spec: Mapping[str, Any], main: Mapping[str, Any], port: int) -> ProbeConfig:
        return probe_config_from_spec(effective_probe(spec), port, _container_ports(main))

    def _initial_probe_state(self, spec: Mapping[str, Any]) -> ProbeState:
        probe = effective_probe(spec) or {}
        return ProbeState(
            success_threshold=int(probe.get("successThreshold") or 1),
            failure_threshold=int(probe.get("failureThreshold") or 3),
        )

    async def run_replica(self, request: ReplicaRequest) -> ReplicaObservation:
        self.check_spec(request.spec)
        directory = self._replica_dir(request.replica_id)
        existing = self._replicas.get(request.replica_id)
        if existing is not None:
            if existing.state is not ReplicaState.EXITED:
                raise Conflict(
                    f"replica {request.replica_id} is already running",
                    fix="stop it first, or start the new one under another replica id",
                    field="replica_id",
                )
            self.forget(request.replica_id)
        if request.port is not None:
            if not _port_is_free(self.host, request.port):
                raise TemporaryBackendError(
                    f"port {request.port} on {self.host} is already in use by another process",
                    fix="free the port or let the runtime choose one (port: null)",
                    field="port",
                    retry_after=2.0,
                )
            port = request.port
        else:
            port = _free_port(self.host)
        directory.mkdir(parents=True, exist_ok=True)
        containers = containers_of(request.spec)
        procs: list[_Proc] = []
        main_env: dict[str, str] = {}
        note = ""
        try:
            for i, container in enumerate(containers):
                env = self._environment(
                    container, request.replica_id, request.spec, port=port, serves_port=i == 0
                )
                log_path = directory / log_file_name(i, container)
                forked: _Proc | None = None
                if i == 0:
                    main_env = env
                    if zygote_settings(request.spec) is not None:
                        forked, note = await self._fork_replica(request, container, env, log_path)
                procs.append(forked or self._spawn(container, env, log_path, i))
        except BaseException:
            await _terminate(procs, 1.0)
            self._release_zygote(request.replica_id, procs)
            raise
        replica = _Replica(
            request=request,
            host=self.host,
            port=port,
            procs=procs,
            env=main_env,
            cwd=self._working_dir(containers[0]),
            probe=self._probe_config(request.spec, containers[0], port),
            probe_state=self._initial_probe_state(request.spec),
            started_at=self._clock(),
            note=note,
        )
        if procs[0].zygote is not None:
            replica.fast_probe_until = asyncio.get_running_loop().time() + self._zygote_fast_probe_window
        self._write_state(directory, replica)
        self._replicas[request.replica_id] = replica
        replica.task = asyncio.create_task(self._supervise(replica), name=f"replica:{request.replica_id}")
        return self._observe(replica)

    # -- the zygote -------------------------------------------------------------------------------

    def _zygote_config(self, spec: Mapping[str, Any], revision: str, main: Mapping[str, Any]) -> ZygoteConfig:
        """The parent for replicas of `spec` at `revision`. Raises ZygoteError if there can be none."""
        settings = zygote_settings(spec) or {}
        service = service_of(spec)
        cwd = self._working_dir(main)
        base = os.path.abspath(cwd) if cwd is not None else os.getcwd()
        env = self._environment(main, "", spec, port=0, serves_port=True)
        for name in _PER_REPLICA_VARS:
            env.pop(name, None)
        argv = [
            expand_vars(str(part), env) for part in [*(main.get("command") or []), *(main.get("args") or [])]
        ]
        try:
            entry = python_entry(argv)
        except NotAPythonEntry as exc:
            raise ZygoteError(str(exc)) from None
        python = resolve_executable(argv[0], env.get("PATH"), cwd)
        if python is None:
            raise ZygoteError(f"{argv[0]!r} cannot be found")
        if entry.kind == "script":
            sys_path = (os.path.dirname(os.path.join(base, entry.target)),)
        else:
            sys_path = (base,)
        return ZygoteConfig(
            namespace=str(service.get("namespace") or ""),
            service=str(service.get("name") or ""),
            revision=revision,
            python=python,
            preload=tuple(str(m) for m in settings.get("preload") or ()),
            warmup=str(settings["warmup"]) if settings.get("warmup") else None,
            sys_path=sys_path,
            cwd=base if cwd is not None else None,
            script=os.path.join(base, entry.target) if entry.kind == "script" else None,
            env=env,
        )

    async def retire_zygotes(self, namespace: str, service: str) -> None:
        """Stop the zygotes of a deleted service (each once its last replica is gone)."""
        await self._zygotes.retire_service(namespace, service)

    async def warm_zygote(self, spec: Mapping[str, Any], revision: str) -> None:
        """Start the zygote of `spec` at `revision` now (if it is not running), so the next replica
        forks at once; an idle one stops after `zygote_idle_seconds` unless a replica uses it."""
        self.check_spec(spec)
        if zygote_settings(spec) is None:
            raise Unsupported(
                "the service has no zygote to warm",
                fix="set service.prewarm.zygote (e.g. {preload: [numpy]})",
                field="service.prewarm.zygote",
            )
        try:
            await self._zygotes.get(self._zygote_config(spec, revision, containers_of(spec)[0]))
        except ZygoteError as exc:
            raise TemporaryBackendError(
                f"the zygote could not start: {exc}",
                fix="see zygote.log under the state directory's .zygotes folder",
                field="service.prewarm.zygote",
                retry_after=5.0,
            ) from exc

    async def _fork_replica(
        self, request: ReplicaRequest, main: Mapping[str, Any], env: dict[str, str], log_path: Path
    ) -> tuple[_Proc | None, str]:
        """The replica's main process forked from its zygote, or (None, why not)."""
        try:
            config = self._zygote_config(request.spec, request.revision, main)
            argv = [
                expand_vars(str(p), env) for p in [*(main.get("command") or []), *(main.get("args") or [])]
            ]
            entry: PythonEntry = python_entry(argv)
        except (ZygoteError, NotAPythonEntry) as exc:
            return None, f"started without the zygote: {exc}"
        pid = 0
        for attempt in range(2):
            try:
                zygote = await self._zygotes.get(config)
                pid = await zygote.fork(request.replica_id, entry, env, log_path, config.cwd)
                break
            except ZygoteError as exc:
                if attempt == 0 and not zygote_alive(self._zygotes, config):
                    continue  # it crashed under us: the next get() starts a new one
                return None, f"started without the zygote: {exc}"
        self._zygotes.attach(zygote, request.replica_id)
        try:
            create_time = psutil.Process(pid).create_time()
        except psutil.Error:
            create_time = 0.0
        return _Proc(str(main.get("name") or ""), pid, create_time, log_path, zygote=zygote), ""

    def _release_zygote(self, replica_id: str, procs: Sequence[_Proc]) -> None:
        for proc in procs:
            if proc.zygote is not None:
                proc.zygote.forget_child(proc.pid)
                self._zygotes.release(proc.zygote, replica_id)

    def _spawn(self, container: Mapping[str, Any], env: dict[str, str], log_path: Path, index: int) -> _Proc:
        command = [expand_vars(str(part), env) for part in container.get("command") or []]
        args = [expand_vars(str(part), env) for part in container.get("args") or []]
        cwd = self._working_dir(container)
        executable = resolve_executable(command[0], env.get("PATH"), cwd)
        if executable is None:
            raise InvalidInput(
                f"{command[0]!r} cannot be found",
                fix="install it, give its full path, or use `python` for the engine's interpreter",
                field=f"service.containers[{index}].command[0]",
            )
        fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        try:
            popen = subprocess.Popen(  # noqa: S603 - argv list, no shell
                command + args,
                executable=executable,
                stdin=subprocess.DEVNULL,
                stdout=fd,
                stderr=fd,
                env=env,
                cwd=cwd,
                start_new_session=True,
                close_fds=True,
            )
        except OSError as exc:
            raise PermanentBackendError(
                f"container {container.get('name')!r} could not start: {exc.strerror or exc}",
                fix="check the command and workingDir",
                field=f"service.containers[{index}].command",
            ) from exc
        finally:
            os.close(fd)
        try:
            create_time = psutil.Process(popen.pid).create_time()
        except psutil.Error:
            create_time = 0.0
        return _Proc(str(container.get("name") or ""), popen.pid, create_time, log_path, popen=popen)

    def _write_state(self, directory: Path, replica: _Replica) -> None:
        req = replica.request
        doc = {
            "version": STATE_VERSION,
            "host": replica.host,
            "port": replica.port,
            "started_at": replica.started_at,
            "processes": [
                {"container": p.container, "pid": p.pid, "create_time": p.create_time, "log": p.log_path.name}
                for p in replica.procs
            ],
            "request": {
                "replica_id": req.replica_id,
                "namespace": req.namespace,
                "service": req.service,
                "revision": req.revision,
                "port": req.port,
                "attempt": req.attempt,
                "spec": req.spec,
            },
        }
        tmp = directory / (STATE_FILE + ".tmp")
        tmp.write_text(json.dumps(doc, default=str, indent=1))
        os.replace(tmp, directory / STATE_FILE)

    async def stop_replica(self, replica_id: str, grace_seconds: float = 10.0) -> None:
        """Stop the replica's process groups and drop it. Its files go too, except the logs of one
        that had already exited (so a restart under the same id shows why it crashed)."""
        replica = self._replicas.get(replica_id)
        if replica is None:
            return
        replica.stopping = True
        had_exited = replica.state is ReplicaState.EXITED
        if not had_exited:
            replica.state = ReplicaState.STOPPING
        await _terminate(replica.procs, grace_seconds)
        if replica.task is not None:
            replica.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await replica.task
        self._replicas.pop(replica_id, None)
        self._release_zygote(replica_id, replica.procs)
        with contextlib.suppress(OSError):
            if had_exited:
                # a crashed replica's output is the evidence: a restart under the same id appends to it
                (self.state_dir / replica_id / STATE_FILE).unlink()
            else:
                shutil.rmtree(self.state_dir / replica_id)

    def forget(self, replica_id: str) -> None:
        """Drop an EXITED replica (its logs stay on disk until the id is stopped or reused)."""
        replica = self._replicas.get(replica_id)
        if replica is None:
            return
        if replica.state is not ReplicaState.EXITED:
            raise Conflict(
                f"replica {replica_id} is still running",
                fix="stop it with stop_replica instead",
                field="replica_id",
            )
        self._replicas.pop(replica_id, None)
        self._release_zygote(replica_id, replica.procs)
        with contextlib.suppress(OSError):
            (self.state_dir / replica_id / STATE_FILE).unlink()

    def replicas(self) -> list[ReplicaObservation]:
        return [self._observe(replica) for replica in self._replicas.values()]

    def _observe(self, replica: _Replica) -> ReplicaObservation:
        req = replica.request
        return ReplicaObservation(
            replica_id=req.replica_id,
            namespace=req.namespace,
            service=req.service,
            revision=req.revision,
            state=replica.state,
            ready=replica.probe_state.ready and replica.state is ReplicaState.RUNNING,
            host=replica.host,
            port=replica.port,
            pid=replica.procs[0].pid if replica.procs else None,
            started_at=replica.started_at,
            exit_code=replica.exit_code,
            exited_at=replica.exited_at,
            attempt=req.attempt,
            node=self._node,
            message="; ".join(part for part in (replica.message, replica.note) if part),
        )

    # -- supervision ------------------------------------------------------------------------------

    async def _supervise(self, replica: _Replica) -> None:
        exits = {asyncio.create_task(_wait_for_exit(proc)): proc for proc in replica.procs}
        helpers = [
            asyncio.create_task(self._probe_loop(replica)),
            asyncio.create_task(self._rotate_loop(replica)),
        ]
        try:
            done, _ = await asyncio.wait(exits, return_when=asyncio.FIRST_COMPLETED)
            await _cancel_all(helpers)
            if replica.stopping:
                return
            first = exits[next(iter(done))]
            replica.exit_code, replica.exited_at = first.exit_code, self._clock()
            name = first.container if len(replica.procs) > 1 else ""
            replica.message = exit_message(first.exit_code, _last_line(first.log_path), name)
            replica.state = ReplicaState.EXITED
            replica.probe_state = ProbeState(
                replica.probe_state.success_threshold, replica.probe_state.failure_threshold
            )
            self._changed()
            await _terminate(replica.procs, 2.0)  # sidecars and grandchildren go with it
            for proc in replica.procs:
                _rotate_if_large(proc.log_path, self.log_max_bytes)
        finally:
            for task in [*exits, *helpers]:
                task.cancel()
            await asyncio.gather(*exits, *helpers, return_exceptions=True)

    async def _probe_loop(self, replica: _Replica) -> None:
        config = replica.probe
        if config.initial_delay_seconds > 0:
            await asyncio.sleep(config.initial_delay_seconds)
        while True:
            result = await run_probe(config, replica.host, replica.env, replica.cwd)
            if (
                replica.stopping
                or replica.state is ReplicaState.EXITED
                or any(p.exited for p in replica.procs)
            ):
                return
            was_ready = replica.probe_state.ready
            replica.probe_state = replica.probe_state.observe(result.ok)
            if replica.probe_state.ready:
                replica.state, replica.message = ReplicaState.RUNNING, ""
            elif not result.ok:
                prefix = "not ready" if replica.probe_state.ever_ready else "waiting for readiness"
                replica.message = f"{prefix}: {result.message}"
            if replica.probe_state.ready != was_ready:
                self._changed()  # after the state is set: a watcher that looks sees the replica ready
            period = config.period_seconds
            if not replica.probe_state.ever_ready:
                period = min(period, self._startup_probe_seconds)
                if asyncio.get_running_loop().time() < replica.fast_probe_until:
                    period = min(period, self._zygote_probe_seconds)
            await asyncio.sleep(period)

    async def _rotate_loop(self, replica: _Replica) -> None:
        while True:
            for proc in replica.procs:
                await asyncio.to_thread(_rotate_if_large, proc.log_path, self.log_max_bytes)
            await asyncio.sleep(self._log_check_seconds)

    # -- logs, stats, nodes -----------------------------------------------------------------------

    def _log_path(self, replica_id: str, container: str | None) -> Path:
        replica = self._replicas.get(replica_id)
        if replica is not None:
            for proc in replica.procs:
                if container is None or proc.container == container:
                    return proc.log_path
            raise NotFound(
                f"replica {replica_id} has no container {container!r}",
                fix="name one of: " + ", ".join(p.container for p in replica.procs),
                field="container",
            )
        try:
            directory = self._replica_dir(replica_id)
        except InvalidInput:
            raise NotFound(f"no replica {replica_id} on this node", field="replica_id") from None
        candidates = sorted(directory.glob("*.log")) if directory.is_dir() else []
        if container is not None:
            candidates = [p for p in candidates if p.name == f"{container}.log"]
        if not candidates:
            raise NotFound(f"no replica {replica_id} on this node", field="replica_id")
        return candidates[0]

    async def logs(self, replica_id: str, tail_lines: int | None = None, container: str | None = None) -> str:
        """The replica's output (its first container unless `container` names another), oldest first."""
        path = self._log_path(replica_id, container)
        rotated = path.with_name(path.name + ".1")
        return await asyncio.to_thread(_read_logs, [rotated, path], tail_lines)

    async def follow_logs(self, replica_id: str, container: str | None = None) -> AsyncIterator[str]:
        """New lines (without their newline) as they are written; ends once the replica is gone or
        has exited and its output is drained."""
        path = self._log_path(replica_id, container)
        try:
            position = path.stat().st_size
        except FileNotFoundError:
            position = 0
        pending = b""
        while True:
            replica = self._replicas.get(replica_id)
            finished = replica is None or replica.state is ReplicaState.EXITED
            try:
                size = path.stat().st_size
            except FileNotFoundError:
                size = 0
            if size < position:  # copy-truncated: what we had not read yet is at the end of .1
                rotated = path.with_name(path.name + ".1")
                with contextlib.suppress(OSError), rotated.open("rb") as handle:
                    handle.seek(position)
                    pending += handle.read()
                position = 0
            if size > position:
                with contextlib.suppress(OSError), path.open("rb") as handle:
                    handle.seek(position)
                    data = handle.read(size - position)
                    pending += data
                    position += len(data)
            *lines, pending = pending.split(b"\n")
            for line in lines:
                yield line.decode("utf-8", "replace")
            if finished:
                break
            await asyncio.sleep(_POLL_SECONDS)
        if pending:
            yield pending.decode("utf-8", "replace")

    async def stats(self, replica_id: str) -> ReplicaStats | None:
        replica = self._replicas.get(replica_id)
        if replica is None:
            raise NotFound(f"no replica {replica_id} on this node", field="replica_id")
        if replica.state is ReplicaState.EXITED:
            return None
        return await asyncio.to_thread(self._sample, replica)

    def _sample(self, replica: _Replica) -> ReplicaStats:
        members: dict[int, psutil.Process] = {}
        for proc in replica.procs:
            try:
                leader = replica.ps_cache.get(proc.pid) or psutil.Process(proc.pid)
                if abs(leader.create_time() - proc.create_time) >= 0.05:
                    continue
                members[leader.pid] = leader
                for child in leader.children(recursive=True):
                    members[child.pid] = replica.ps_cache.get(child.pid) or child
            except psutil.Error:
                continue
        cpu, rss = 0.0, 0
        for pid, ps in list(members.items()):
            try:
                with ps.oneshot():
                    cpu += ps.cpu_percent(interval=None) / 100.0
                    rss += ps.memory_info().rss
            except psutil.Error:
                members.pop(pid, None)
        replica.ps_cache = members
        return ReplicaStats(cpu_cores=cpu, memory_bytes=rss, at=self._clock())

    async def nodes(self) -> list[NodeInfo]:
        now = self._clock()
        if self._gpus is None or now - self._gpus_at > _GPU_CACHE_SECONDS:
            self._gpus, self._gpus_at = await detect_gpus(), now
        return [await local_node(self.name, gpus=self._gpus)]
