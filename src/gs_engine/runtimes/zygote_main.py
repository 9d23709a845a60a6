"""The zygote parent: `python -m gs_engine.runtimes.zygote_main --socket PATH [--preload MOD]...
[--path DIR]... [--warmup MODULE:FUNCTION]`.

It imports the preload modules, calls the warmup hook once, then listens on the Unix socket (mode
0600) and serves fork requests (see `gs_engine.runtimes.zygote` for the protocol). It stays
single-threaded, so forking is safe; a fork request while another thread runs is refused with the
names of the threads. It reaps its children and reports each exit to every connected runtime, and
exits when SIGTERM arrives or when the last runtime connection closes (the engine went away).

A child, right after the fork: its own session (`setsid`), stdout and stderr on the replica's log
file, stdin on /dev/null, every other inherited descriptor closed, the replica's environment and
working directory, default signal handling, the exit handlers of the parent dropped, `random` and
numpy's global generator re-seeded from os.urandom; then the script or module runs as `__main__`,
and the process exits with its code.
"""

from __future__ import annotations

import argparse
import atexit
import builtins
import contextlib
import errno
import gc
import importlib
import importlib.machinery
import os
import random
import runpy
import selectors
import signal
import socket
import sys
import threading
import traceback
import types
from collections.abc import Sequence
from pathlib import Path

from gs_engine.runtimes.zygote import (
    PROTOCOL_MAX_LINE,
    ChildExited,
    Forked,
    ForkFailed,
    ForkRequest,
    Message,
    ProtocolError,
    decode,
    encode,
)

_MAX_FD = 1 << 20


def _log(text: str) -> None:
    print(f"zygote[{os.getpid()}]: {text}", file=sys.stderr, flush=True)


def load_hook(reference: str) -> object:
    """The object `module:attr.path` names (importing the module)."""
    module_name, _, attr_path = reference.partition(":")
    target: object = importlib.import_module(module_name)
    for part in attr_path.split("."):
        target = getattr(target, part)
    return target


# -- the child ------------------------------------------------------------------------------------


def _reset_signals() -> None:
    with contextlib.suppress(ValueError, OSError):
        signal.set_wakeup_fd(-1)
    for sig in signal.valid_signals():
        if sig in (signal.SIGKILL, signal.SIGSTOP):
            continue
        with contextlib.suppress(OSError, ValueError, RuntimeError):
            signal.signal(sig, signal.SIG_DFL)
    # Python itself ignores SIGPIPE and handles SIGINT; a fresh interpreter does the same.
    signal.signal(signal.SIGPIPE, signal.SIG_IGN)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.pthread_sigmask(signal.SIG_SETMASK, set())


def _reseed() -> None:
    random.seed(int.from_bytes(os.urandom(32), "big"))
    numpy_random = sys.modules.get("numpy.random")
    if numpy_random is not None:
        with contextlib.suppress(Exception):
            numpy_random.seed(int.from_bytes(os.urandom(4), "big"))


def _exit_status(exc: SystemExit) -> int:
    code = exc.code
    if code is None:
        return 0
    if isinstance(code, int):
        return code & 0xFF
    print(code, file=sys.stderr)
    return 1


class ScriptCache:
    """Scripts compiled in the parent, so a child does not compile its script again (what
    `runpy.run_path` does on every run, several milliseconds for a few hundred lines). An entry is
    used only while the file's size and modification time are unchanged."""

    def __init__(self) -> None:
        self._codes: dict[str, tuple[int, int, types.CodeType]] = {}

    def get(self, path: str) -> types.CodeType | None:
        try:
            info = os.stat(path)
        except OSError:
            return None
        absolute = os.path.abspath(path)
        cached = self._codes.get(absolute)
        if cached is not None and cached[:2] == (info.st_mtime_ns, info.st_size):
            return cached[2]
        try:
            with open(path, "rb") as handle:
                code = compile(handle.read(), path, "exec", dont_inherit=True)
        except (OSError, SyntaxError, ValueError):
            return None  # the child compiles it and reports the error in the replica's log
        self._codes[absolute] = (info.st_mtime_ns, info.st_size, code)
        return code


def run_script(path: str, code: types.CodeType | None) -> None:
    """Run a script file as `__main__`, like `python path` (and `runpy.run_path`) does."""
    if code is None:
        runpy.run_path(path, run_name="__main__")
        return
    module = types.ModuleType("__main__")
    module.__file__ = path
    module.__cached__ = None  # type: ignore[attr-defined]
    module.__loader__ = importlib.machinery.SourceFileLoader("__main__", path)
    module.__spec__ = None
    module.__package__ = None
    module.__builtins__ = builtins  # type: ignore[attr-defined]
    sys.modules["__main__"] = module
    exec(code, module.__dict__)  # noqa: S102 - the replica's own program


def run_child(request: ForkRequest, compiled: types.CodeType | None = None) -> int:
    """Everything after the fork up to the exit status (the caller `_exit`s with it)."""
    os.environ.clear()
    os.environ.update(request.env)
    if request.cwd:
        os.chdir(request.cwd)
    _reseed()
    atexit._clear()  # the parent's exit handlers are not the replica's
    entry = request.entry
    sys.argv = entry.argv
    code = 0
    try:
        if entry.kind == "script":
            run_script(entry.target, compiled)
        else:
            runpy.run_module(entry.target, run_name="__main__", alter_sys=True)
    except SystemExit as exc:
        code = _exit_status(exc)
    except BaseException:  # noqa: BLE001 - like the interpreter: print it and exit 1
        traceback.print_exc()
        code = 1
    with contextlib.suppress(Exception):
        threading._shutdown()  # type: ignore[attr-defined]  # join non-daemon threads, as at exit
    with contextlib.suppress(Exception):
        atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    return code


def _prepare_child(
    request: ForkRequest, ready_fd: int, owned: Sequence[socket.socket | selectors.BaseSelector]
) -> None:
    """Detach from the parent: session, descriptors, signals. `ready_fd` is closed once in a session."""
    signal.set_wakeup_fd(-1)
    os.setsid()
    os.close(ready_fd)  # the parent answers "forked" only after this: the group exists by then
    for item in owned:  # close through their objects, so nothing closes a reused number later
        with contextlib.suppress(OSError):
            item.close()
    log_fd = os.open(request.log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    null_fd = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null_fd, 0)
    os.dup2(log_fd, 1)
    os.dup2(log_fd, 2)
    os.closerange(3, _MAX_FD)
    _reset_signals()


# -- the parent -----------------------------------------------------------------------------------


class Parent:
    """The listening socket, the runtime connections and the children, in one thread."""

    def __init__(self, socket_path: Path) -> None:
        self.socket_path = socket_path
        self.selector = selectors.DefaultSelector()
        self.listener = self._listen(socket_path)
        self.selector.register(self.listener, selectors.EVENT_READ, "accept")
        self.wake_r, self.wake_w = socket.socketpair()
        self.wake_r.setblocking(False)
        self.wake_w.setblocking(False)
        self.selector.register(self.wake_r, selectors.EVENT_READ, "signal")
        self.clients: dict[socket.socket, bytearray] = {}
        self.children: set[int] = set()
        self.unreported: list[ChildExited] = []
        self.had_client = False
        self.stopping = False
        self.scripts = ScriptCache()

    @staticmethod
    def _listen(path: Path) -> socket.socket:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
        tmp = path.with_name(path.name + ".tmp")
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        old = os.umask(0o177)
        try:
            sock.bind(str(tmp))
        finally:
            os.umask(old)
        os.chmod(tmp, 0o600)
        sock.listen(16)
        os.replace(tmp, path)  # the socket appears only once it accepts
        sock.setblocking(False)
        return sock

    def install_signals(self) -> None:
        signal.set_wakeup_fd(self.wake_w.fileno(), warn_on_full_buffer=False)
        signal.signal(signal.SIGCHLD, lambda signum, frame: None)
        signal.signal(signal.SIGTERM, self._on_term)
        signal.signal(signal.SIGINT, self._on_term)

    def _on_term(self, signum: int, frame: object) -> None:
        self.stopping = True

    def serve(self) -> None:
        while not self.stopping:
            try:
                events = self.selector.select(timeout=1.0)
            except InterruptedError:
                events = []
            for key, _ in events:
                if key.data == "accept":
                    self._accept()
                elif key.data == "signal":
                    with contextlib.suppress(BlockingIOError, InterruptedError):
                        self.wake_r.recv(4096)
                else:
                    self._read(key.fileobj)  # type: ignore[arg-type]
            self._reap()
            if self.had_client and not self.clients:
                _log("the runtime connection closed; exiting")
                break
        self.close()

    def close(self) -> None:
        for client in list(self.clients):
            self._drop(client)
        self.selector.close()
        self.listener.close()
        with contextlib.suppress(FileNotFoundError):
            self.socket_path.unlink()

    def _accept(self) -> None:
        try:
            conn, _ = self.listener.accept()
        except (BlockingIOError, InterruptedError):
            return
        conn.setblocking(True)
        self.clients[conn] = bytearray()
        self.had_client = True
        self.selector.register(conn, selectors.EVENT_READ, "client")
        for report in self.unreported:
            self._send(conn, report)
        self.unreported.clear()

    def _drop(self, conn: socket.socket) -> None:
        self.clients.pop(conn, None)
        with contextlib.suppress(KeyError, ValueError):
            self.selector.unregister(conn)
        conn.close()

    def _send(self, conn: socket.socket, message: Message) -> None:
        try:
            conn.sendall(encode(message))
        except OSError:
            self._drop(conn)

    def _broadcast(self, message: ChildExited) -> None:
        if not self.clients:
            self.unreported.append(message)
        for conn in list(self.clients):
            self._send(conn, message)

    def _read(self, conn: socket.socket) -> None:
        try:
            data = conn.recv(65536)
        except InterruptedError:
            return
        except OSError:
            data = b""
        if not data:
            self._drop(conn)
            return
        buffer = self.clients[conn]
        buffer += data
        while (end := buffer.find(b"\n")) != -1:
            line = bytes(buffer[: end + 1])
            del buffer[: end + 1]
            self._handle(conn, line)
            if conn not in self.clients:
                return
        if len(buffer) > PROTOCOL_MAX_LINE:
            _log("a runtime sent an over-long line; closing its connection")
            self._drop(conn)

    def _handle(self, conn: socket.socket, line: bytes) -> None:
        try:
            message = decode(line)
        except ProtocolError as exc:
            _log(f"ignoring a bad message: {exc}")
            return
        if not isinstance(message, ForkRequest):
            _log(f"ignoring a {type(message).__name__} message")
            return
        self._send(conn, self.fork(message))

    def fork(self, request: ForkRequest) -> Forked | ForkFailed:
        others = [t.name for t in threading.enumerate() if t is not threading.current_thread()]
        if threading.active_count() != 1:
            return ForkFailed(
                request.request_id,
                f"the zygote runs {threading.active_count()} threads ({', '.join(others)}), and forking "
                "a threaded process is unsafe; start no threads in the preload modules or the warmup hook",
            )
        compiled = None
        if request.entry.kind == "script":
            target = request.entry.target
            compiled = self.scripts.get(os.path.join(request.cwd, target) if request.cwd else target)
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(Exception):
                stream.flush()
        gc.freeze()  # what the parent built stays out of the child's collections: fewer pages copied
        ready_r, ready_w = os.pipe()
        try:
            pid = os.fork()
        except OSError as exc:
            os.close(ready_r)
            os.close(ready_w)
            return ForkFailed(request.request_id, f"fork failed: {exc.strerror or exc}")
        if pid == 0:  # the child: never returns into the parent's loop
            code = 1
            try:
                os.close(ready_r)
                _prepare_child(
                    request, ready_w, [*self.clients, self.listener, self.wake_r, self.wake_w, self.selector]
                )
                code = run_child(request, compiled)
            except BaseException:  # noqa: BLE001
                with contextlib.suppress(Exception):
                    traceback.print_exc()
            finally:
                os._exit(code)
        os.close(ready_w)
        try:
            while True:
                try:
                    os.read(ready_r, 1)  # end of file once the child has its own session (or died)
                    break
                except InterruptedError:
                    continue
        finally:
            os.close(ready_r)
        self.children.add(pid)
        return Forked(request.request_id, pid)

    def _reap(self) -> None:
        while self.children:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                self.children.clear()
                return
            except InterruptedError:
                continue
            if pid == 0:
                return
            self.children.discard(pid)
            if os.WIFSIGNALED(status):
                report = ChildExited(pid, None, os.WTERMSIG(status))
            else:
                report = ChildExited(pid, os.waitstatus_to_exitcode(status), None)
            self._broadcast(report)


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="gs_engine.runtimes.zygote_main", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--socket", required=True, type=Path, help="the Unix socket to listen on")
    parser.add_argument("--preload", action="append", default=[], help="a module to import (repeatable)")
    parser.add_argument("--path", action="append", default=[], help="a folder to put first on sys.path")
    parser.add_argument("--warmup", default=None, help="MODULE:FUNCTION to call once after the preloads")
    parser.add_argument(
        "--script", default=None, help="the replicas' script, compiled ahead of the first fork"
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    if sys.path and sys.path[0] in ("", os.getcwd()):
        sys.path.pop(0)  # `-m` put the working directory first; a replica's own entry decides that
    for entry in reversed(args.path):
        sys.path.insert(0, entry)
    try:
        for module in args.preload:
            importlib.import_module(module)
        if args.warmup:
            hook = load_hook(args.warmup)
            if not callable(hook):
                _log(f"--warmup {args.warmup} is not callable")
                return 2
            hook()
    except Exception as exc:  # noqa: BLE001 - reported, then the runtime falls back to a plain start
        traceback.print_exc()
        _log(f"warming up failed: {type(exc).__name__}: {exc}")
        return 3
    if threading.active_count() != 1:
        names = ", ".join(t.name for t in threading.enumerate() if t is not threading.current_thread())
        _log(f"warning: threads are running after warm-up ({names}); fork requests will be refused")
    try:
        parent = Parent(args.socket)
    except OSError as exc:
        _log(f"cannot listen on {args.socket}: {exc.strerror or exc}")
        return 4 if exc.errno != errno.EADDRINUSE else 5
    if args.script:
        parent.scripts.get(args.script)
    gc.collect()
    gc.freeze()
    parent.install_signals()
    _log(f"ready: preloaded {', '.join(args.preload) or 'nothing'}; listening on {args.socket}")
    parent.serve()
    return 0


if __name__ == "__main__":
    sys.exit(main())
