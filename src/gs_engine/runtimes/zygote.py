"""Replicas forked from a warm parent (the zygote): the runtime side, and the protocol both sides speak.

A service with `prewarm.zygote` runs one parent per (namespace, service, revision) on this node:
`python -m gs_engine.runtimes.zygote_main`, started with the replica's working directory and
environment (less the per-replica PORT and GSE_* ids). It imports the preload modules, calls the
warmup hook, then listens on a Unix socket (mode 0600) and forks a replica per request. The child
is an ordinary process from then on: its own session and process group, its own log file, its own
environment; the runtime stops it, samples it and adopts it like any other.

The protocol is one JSON object per line over that socket:

    runtime -> parent   {"op": "fork", "id": 7, "replica": ..., "kind": "script"|"module",
                         "target": "server.py", "args": [...], "env": {...}, "cwd": ..., "log": ...}
    parent -> runtime   {"op": "forked", "id": 7, "pid": 4242}
                        {"op": "failed", "id": 7, "message": "..."}
                        {"op": "exited", "pid": 4242, "code": 0 | null, "signal": 15 | null}

`Zygote` is one parent as seen from the runtime; `ZygotePool` keeps them per key, stops a parent
once no replica of it is left for `idle_seconds`, and retires a parent whose revision (or zygote
settings) changed as soon as its last replica is gone.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import os
import signal
import subprocess
import sys
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

PROTOCOL_MAX_LINE = 4 * 2**20  # one fork request carries an environment; 4 MiB is far above any real one
SOCKET_NAME = "zygote.sock"
LOG_NAME = "zygote.log"
_SUN_PATH_MAX = 100  # sockaddr_un holds 108 bytes on Linux; keep a margin
_PYTHON_NAMES = ("python", "python3")

EntryKind = Literal["script", "module"]

# -- what a command runs --------------------------------------------------------------------------


class NotAPythonEntry(ValueError):
    """The command is not `python SCRIPT ...` or `python -m MODULE ...`; the message says why."""


@dataclass(frozen=True)
class PythonEntry:
    """What a replica's `python ...` command runs: a script file or a module, with its arguments."""

    kind: EntryKind
    target: str  # the script path as written, or the dotted module name
    args: tuple[str, ...] = ()

    @property
    def argv(self) -> list[str]:
        """`sys.argv` as the plain interpreter would start it (runpy fills in argv[0] itself)."""
        return [self.target, *self.args]


def is_python(executable: str, this_interpreter: str = sys.executable) -> bool:
    """`python`, `python3`, `python3.X` or the engine's own interpreter (by path)."""
    if executable == this_interpreter:
        return True
    name = os.path.basename(executable)
    if name in _PYTHON_NAMES:
        return True
    return name.startswith("python3.") and name[len("python3.") :].isdigit()


def python_entry(argv: Sequence[str], this_interpreter: str = sys.executable) -> PythonEntry:
    """Parse a replica's full argv (command + args). Raises NotAPythonEntry with the reason."""
    if not argv:
        raise NotAPythonEntry("the container has no command")
    if not is_python(argv[0], this_interpreter):
        raise NotAPythonEntry(f"the command runs {argv[0]!r}, not python")
    rest = list(argv[1:])
    if not rest:
        raise NotAPythonEntry("`python` alone starts an interactive interpreter, not a service")
    first = rest[0]
    if first == "-m":
        if len(rest) < 2 or not rest[1] or rest[1].startswith("-"):
            raise NotAPythonEntry("`python -m` needs a module name after it")
        return PythonEntry("module", rest[1], tuple(rest[2:]))
    if first.startswith("-"):
        raise NotAPythonEntry(
            f"the interpreter option {first!r} cannot be applied to a forked replica "
            "(only `python SCRIPT ...` and `python -m MODULE ...` can be)"
        )
    return PythonEntry("script", first, tuple(rest[1:]))


# -- the protocol ---------------------------------------------------------------------------------


class ProtocolError(ValueError):
    """A line on the zygote socket that is not a message of the protocol."""


@dataclass(frozen=True)
class ForkRequest:
    request_id: int
    replica_id: str
    entry: PythonEntry
    env: Mapping[str, str]
    log_path: str
    cwd: str | None = None


@dataclass(frozen=True)
class Forked:
    request_id: int
    pid: int


@dataclass(frozen=True)
class ForkFailed:
    request_id: int
    message: str


@dataclass(frozen=True)
class ChildExited:
    pid: int
    code: int | None  # the exit status when it exited
    signal: int | None = None  # the signal number when a signal killed it

    @property
    def exit_code(self) -> int | None:
        """The runtime's convention (subprocess's): the status, or minus the signal number."""
        if self.signal is not None:
            return -self.signal
        return self.code


Message = ForkRequest | Forked | ForkFailed | ChildExited


def encode(message: Message) -> bytes:
    """One message as one JSON line."""
    doc: dict[str, Any]
    if isinstance(message, ForkRequest):
        doc = {
            "op": "fork",
            "id": message.request_id,
            "replica": message.replica_id,
            "kind": message.entry.kind,
            "target": message.entry.target,
            "args": list(message.entry.args),
            "env": dict(message.env),
            "cwd": message.cwd,
            "log": message.log_path,
        }
    elif isinstance(message, Forked):
        doc = {"op": "forked", "id": message.request_id, "pid": message.pid}
    elif isinstance(message, ForkFailed):
        doc = {"op": "failed", "id": message.request_id, "message": message.message}
    else:
        doc = {"op": "exited", "pid": message.pid, "code": message.code, "signal": message.signal}
    return json.dumps(doc, separators=(",", ":")).encode() + b"\n"


def _field(doc: Mapping[str, Any], name: str, kind: type | tuple[type, ...], optional: bool = False) -> Any:
    value = doc.get(name)
    if value is None and optional:
        return None
    if isinstance(value, bool) or not isinstance(value, kind):
        raise ProtocolError(f"field {name!r} is missing or not a {getattr(kind, '__name__', kind)}")
    return value


def decode(line: bytes) -> Message:
    """The message one line holds. Raises ProtocolError for anything else."""
    if len(line) > PROTOCOL_MAX_LINE:
        raise ProtocolError(f"a line of {len(line)} bytes is over the {PROTOCOL_MAX_LINE}-byte limit")
    try:
        doc = json.loads(line)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ProtocolError(f"not JSON: {exc}") from exc
    if not isinstance(doc, dict):
        raise ProtocolError("a message is a JSON object")
    op = doc.get("op")
    if op == "fork":
        kind = _field(doc, "kind", str)
        if kind not in ("script", "module"):
            raise ProtocolError(f"kind {kind!r} is neither 'script' nor 'module'")
        args = _field(doc, "args", list)
        env = _field(doc, "env", dict)
        if not all(isinstance(a, str) for a in args):
            raise ProtocolError("args must all be strings")
        if not all(isinstance(k, str) and isinstance(v, str) for k, v in env.items()):
            raise ProtocolError("env must map strings to strings")
        return ForkRequest(
            request_id=_field(doc, "id", int),
            replica_id=_field(doc, "replica", str),
            entry=PythonEntry(kind, _field(doc, "target", str), tuple(args)),
            env=env,
            log_path=_field(doc, "log", str),
            cwd=_field(doc, "cwd", str, optional=True),
        )
    if op == "forked":
        return Forked(_field(doc, "id", int), _field(doc, "pid", int))
    if op == "failed":
        return ForkFailed(_field(doc, "id", int), _field(doc, "message", str))
    if op == "exited":
        return ChildExited(
            _field(doc, "pid", int), _field(doc, "code", int, optional=True), _field(doc, "signal", int, True)
        )
    raise ProtocolError(f"unknown op {op!r}")


# -- one parent, seen from the runtime ------------------------------------------------------------


class ZygoteError(Exception):
    """The zygote could not start or could not fork; the message says why (for an observation)."""


@dataclass(frozen=True)
class ZygoteConfig:
    """How to start one parent. Equal configs share a parent; a changed one gets a new parent."""

    namespace: str
    service: str
    revision: str
    python: str  # the interpreter the replica's command names, resolved
    preload: tuple[str, ...]
    warmup: str | None
    sys_path: tuple[str, ...]  # put first on the parent's sys.path (the script's folder, or cwd for -m)
    cwd: str | None
    env: Mapping[str, str] = field(compare=False, hash=False)
    script: str | None = None  # the replicas' script, compiled by the parent ahead of the first fork

    @property
    def service_key(self) -> tuple[str, str]:
        return (self.namespace, self.service)

    @property
    def fingerprint(self) -> str:
        text = json.dumps(
            [
                self.revision,
                self.python,
                self.preload,
                self.warmup,
                self.sys_path,
                self.cwd,
                self.script,
                sorted(self.env.items()),
            ]
        )
        return hashlib.sha256(text.encode()).hexdigest()[:12]

    def argv(self, socket_path: Path) -> list[str]:
        argv = [self.python, "-m", "gs_engine.runtimes.zygote_main", "--socket", str(socket_path)]
        for module in self.preload:
            argv += ["--preload", module]
        for entry in self.sys_path:
            argv += ["--path", entry]
        if self.warmup:
            argv += ["--warmup", self.warmup]
        if self.script:
            argv += ["--script", self.script]
        return argv


def _socket_dir(directory: Path) -> Path:
    """Where the socket goes: `directory`, unless its path is too long for a Unix socket address."""
    if len(str(directory / SOCKET_NAME).encode()) <= _SUN_PATH_MAX:
        return directory
    return Path(tempfile.mkdtemp(prefix="gse-zygote-"))  # mode 0700, removed with the zygote


class Zygote:
    """One parent process and the control connection to it."""

    def __init__(self, config: ZygoteConfig, directory: Path) -> None:
        self.config = config
        self.directory = directory
        self.log_path = directory / LOG_NAME
        self.replicas: set[str] = set()  # replica ids forked from it and not yet stopped
        self.retiring = False
        self._socket_dir: Path | None = None
        self._popen: subprocess.Popen[bytes] | None = None
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._listen_task: asyncio.Task[None] | None = None
        self._pending: dict[int, asyncio.Future[int]] = {}
        self._exits: dict[int, ChildExited] = {}
        self._exit_waiters: dict[int, asyncio.Event] = {}
        self._next_id = 0
        self._lock = asyncio.Lock()
        self.idle_timer: asyncio.TimerHandle | None = None

    @property
    def pid(self) -> int | None:
        return self._popen.pid if self._popen is not None else None

    @property
    def alive(self) -> bool:
        return (
            self._popen is not None
            and self._popen.poll() is None
            and self._listen_task is not None
            and not self._listen_task.done()
        )

    async def start(self, timeout: float) -> None:
        """Start the parent and wait (up to `timeout`) until it listens. Raises ZygoteError."""
        loop = asyncio.get_running_loop()
        self.directory.mkdir(parents=True, exist_ok=True)
        self._socket_dir = _socket_dir(self.directory)
        socket_path = self._socket_dir / SOCKET_NAME
        with contextlib.suppress(FileNotFoundError):
            socket_path.unlink()
        fd = os.open(self.log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        try:
            self._popen = subprocess.Popen(  # noqa: S603 - argv list, no shell
                self.config.argv(socket_path),
                stdin=subprocess.DEVNULL,
                stdout=fd,
                stderr=fd,
                env=dict(self.config.env),
                cwd=self.config.cwd,
                start_new_session=True,
                close_fds=True,
            )
        except OSError as exc:
            raise ZygoteError(f"the zygote could not start: {exc.strerror or exc}") from exc
        finally:
            os.close(fd)
        deadline = loop.time() + timeout
        while True:
            code = self._popen.poll()
            if code is not None:
                raise ZygoteError(
                    f"the zygote exited with code {code} before it was ready: {self.last_log_line()}"
                )
            if socket_path.exists():
                try:
                    self._reader, self._writer = await asyncio.open_unix_connection(
                        str(socket_path), limit=PROTOCOL_MAX_LINE
                    )
                    break
                except OSError:
                    pass  # bound but not listening yet
            if loop.time() >= deadline:
                await self.stop()
                raise ZygoteError(f"the zygote was not ready within {timeout:g}s: {self.last_log_line()}")
            await asyncio.sleep(0.01)
        self._listen_task = asyncio.create_task(self._listen(), name=f"zygote:{self.config.service}")

    def last_log_line(self) -> str:
        try:
            lines = self.log_path.read_bytes()[-4096:].decode("utf-8", "replace").splitlines()
        except OSError:
            return "(no output)"
        found = [line.strip() for line in lines if line.strip()]
        return found[-1][:300] if found else "(no output)"

    async def _listen(self) -> None:
        assert self._reader is not None
        try:
            while True:
                line = await self._reader.readline()
                if not line:
                    break
                try:
                    message = decode(line)
                except ProtocolError:
                    continue
                if isinstance(message, Forked | ForkFailed):
                    future = self._pending.pop(message.request_id, None)
                    if future is not None and not future.done():
                        if isinstance(message, Forked):
                            future.set_result(message.pid)
                        else:
                            future.set_exception(ZygoteError(f"the zygote could not fork: {message.message}"))
                elif isinstance(message, ChildExited):
                    self._exits[message.pid] = message
                    waiter = self._exit_waiters.get(message.pid)
                    if waiter is not None:
                        waiter.set()
        except (OSError, ValueError):
            pass
        finally:
            for future in self._pending.values():
                if not future.done():
                    future.set_exception(ZygoteError(f"the zygote went away: {self.last_log_line()}"))
            self._pending.clear()
            for waiter in self._exit_waiters.values():
                waiter.set()  # no report will come now

    async def fork(
        self,
        replica_id: str,
        entry: PythonEntry,
        env: Mapping[str, str],
        log_path: Path,
        cwd: str | None,
        timeout: float = 10.0,
    ) -> int:
        """Ask for one child; returns its pid once it runs in its own session. Raises ZygoteError."""
        if not self.alive or self._writer is None:
            raise ZygoteError("the zygote is not running")
        async with self._lock:
            self._next_id += 1
            request_id = self._next_id
        future: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self._pending[request_id] = future
        request = ForkRequest(request_id, replica_id, entry, env, str(log_path), cwd)
        try:
            self._writer.write(encode(request))
            await self._writer.drain()
            return await asyncio.wait_for(future, timeout)
        except OSError as exc:
            raise ZygoteError(f"the zygote could not be reached: {exc.strerror or exc}") from exc
        except TimeoutError as exc:
            raise ZygoteError(f"the zygote did not answer a fork request within {timeout:g}s") from exc
        finally:
            self._pending.pop(request_id, None)

    def reported_exit(self, pid: int) -> ChildExited | None:
        return self._exits.get(pid)

    async def wait_exit(self, pid: int, timeout: float) -> int | None:
        """The exit code of a child that has ended, as the parent reports it (None if it does not)."""
        if pid not in self._exits and self.alive:
            waiter = self._exit_waiters.setdefault(pid, asyncio.Event())
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(waiter.wait(), timeout)
            self._exit_waiters.pop(pid, None)
        report = self._exits.get(pid)
        return report.exit_code if report is not None else None

    def forget_child(self, pid: int) -> None:
        self._exits.pop(pid, None)
        self._exit_waiters.pop(pid, None)

    async def stop(self, grace: float = 2.0) -> None:
        """End the parent (its children are not touched: they are in sessions of their own)."""
        if self.idle_timer is not None:
            self.idle_timer.cancel()
            self.idle_timer = None
        if self._writer is not None:
            self._writer.close()
            with contextlib.suppress(OSError):
                await self._writer.wait_closed()
        if self._popen is not None and self._popen.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                self._popen.send_signal(signal.SIGTERM)
            loop = asyncio.get_running_loop()
            deadline = loop.time() + grace
            while self._popen.poll() is None and loop.time() < deadline:
                await asyncio.sleep(0.01)
            if self._popen.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    self._popen.kill()
                await asyncio.to_thread(self._popen.wait)
        if self._listen_task is not None:
            self._listen_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._listen_task
        if self._socket_dir is not None:
            with contextlib.suppress(FileNotFoundError):
                (self._socket_dir / SOCKET_NAME).unlink()
            if self._socket_dir != self.directory:
                with contextlib.suppress(OSError):
                    self._socket_dir.rmdir()


# -- one parent per key ---------------------------------------------------------------------------


class ZygotePool:
    """The parents of this runtime: one per config, started on first use, stopped when idle."""

    def __init__(self, directory: Path, *, idle_seconds: float = 600.0, start_timeout: float = 120.0) -> None:
        self.directory = directory
        self.idle_seconds = idle_seconds
        self.start_timeout = start_timeout
        self._zygotes: dict[str, Zygote] = {}
        self._starting: dict[str, asyncio.Future[Zygote]] = {}

    def zygotes(self) -> list[Zygote]:
        return list(self._zygotes.values())

    async def get(self, config: ZygoteConfig) -> Zygote:
        """The running parent for `config`, started (or restarted after a crash) if need be."""
        key = config.fingerprint
        zygote = self._zygotes.get(key)
        if zygote is not None and zygote.alive:
            self._arm_idle(zygote)  # asked for again: its idle time starts over
            return zygote
        starting = self._starting.get(key)
        if starting is not None:
            return await asyncio.shield(starting)
        future: asyncio.Future[Zygote] = asyncio.get_running_loop().create_future()
        self._starting[key] = future
        try:
            if zygote is not None:  # crashed: clear what is left of it
                self._zygotes.pop(key, None)
                await zygote.stop(grace=0.5)
            name = f"{config.namespace}.{config.service}.{config.revision}.{key}"
            zygote = Zygote(config, self.directory / name)
            await zygote.start(self.start_timeout)
            self._zygotes[key] = zygote
            await self._retire_others(zygote)
            self._arm_idle(zygote)
            future.set_result(zygote)
            return zygote
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # retrieved: waiters see it through shield
            raise
        finally:
            self._starting.pop(key, None)

    async def _retire_others(self, current: Zygote) -> None:
        """Another revision (or zygote setting) of the same service: stop its parent once unused."""
        for key, other in list(self._zygotes.items()):
            if other is current or other.config.service_key != current.config.service_key:
                continue
            other.retiring = True
            if not other.replicas:
                self._zygotes.pop(key, None)
                await other.stop()

    async def retire_service(self, namespace: str, service: str) -> None:
        """The service is gone: stop its parents now, or when their last replica is released."""
        for key, zygote in list(self._zygotes.items()):
            if (zygote.config.namespace, zygote.config.service) != (namespace, service):
                continue
            zygote.retiring = True
            if not zygote.replicas:
                self._zygotes.pop(key, None)
                if zygote.idle_timer is not None:
                    zygote.idle_timer.cancel()
                    zygote.idle_timer = None
                await zygote.stop()

    def attach(self, zygote: Zygote, replica_id: str) -> None:
        zygote.replicas.add(replica_id)
        if zygote.idle_timer is not None:
            zygote.idle_timer.cancel()
            zygote.idle_timer = None

    def release(self, zygote: Zygote, replica_id: str) -> None:
        """A replica forked from `zygote` is gone; stop the parent once none is left (after the idle
        delay, or at once when it is retiring)."""
        zygote.replicas.discard(replica_id)
        if zygote.replicas:
            return
        if zygote.retiring:
            self._schedule_stop(zygote, 0.0)
        else:
            self._arm_idle(zygote)

    def _arm_idle(self, zygote: Zygote) -> None:
        if not zygote.replicas:
            self._schedule_stop(zygote, self.idle_seconds)

    def _schedule_stop(self, zygote: Zygote, delay: float) -> None:
        if zygote.idle_timer is not None:
            zygote.idle_timer.cancel()
        loop = asyncio.get_running_loop()
        zygote.idle_timer = loop.call_later(delay, lambda: self._spawn_stop(zygote))

    def _spawn_stop(self, zygote: Zygote) -> None:
        zygote.idle_timer = None
        if zygote.replicas:
            return
        key = zygote.config.fingerprint
        if self._zygotes.get(key) is zygote:
            self._zygotes.pop(key, None)
        task = asyncio.get_running_loop().create_task(zygote.stop())
        _background.add(task)
        task.add_done_callback(_background.discard)

    async def close(self) -> None:
        zygotes = list(self._zygotes.values())
        self._zygotes.clear()
        await asyncio.gather(*(z.stop() for z in zygotes), return_exceptions=True)
        if _background:
            await asyncio.gather(*list(_background), return_exceptions=True)


_background: set[asyncio.Task[None]] = set()
