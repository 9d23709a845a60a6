"""`gse up`: store, runtime, gateway, controllers and the API server in one process and one event loop."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import fcntl
import logging
import os
import secrets
import signal
import socket
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO

from gs_engine.api.auth import hash_token
from gs_engine.config import Settings
from gs_engine.controllers.autoscaler import AutoscalerController
from gs_engine.controllers.rightsizing import RightsizingController
from gs_engine.controllers.services import ServiceController
from gs_engine.errors import GseError, InvalidInput
from gs_engine.gateway import hotpath
from gs_engine.gateway.server import Gateway
from gs_engine.runtimes.base import Runtime
from gs_engine.store import Store

log = logging.getLogger("gs_engine.engine")


def make_runtime(settings: Settings) -> Runtime:
    if settings.runtime == "process":
        from gs_engine.runtimes.process import ProcessRuntime

        return ProcessRuntime(settings.replicas_dir, host=settings.replica_host)
    raise InvalidInput(
        f"unknown runtime {settings.runtime!r}",
        fix="set --runtime / GSE_RUNTIME to 'process'",
        field="runtime",
    )


def bind_socket(host: str, port: int, flag: str, env: str) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise InvalidInput(
                f"port {port} on {host} is already in use",
                fix=f"stop what uses it or choose another port with {flag} or {env}",
                field=flag.lstrip("-"),
            ) from exc
        raise InvalidInput(f"cannot listen on {host}:{port}: {exc.strerror}", field=flag.lstrip("-")) from exc
    sock.listen(1024)
    sock.setblocking(False)
    return sock


def lock_home(home: Path) -> IO[str]:
    """One engine per data directory: a second would adopt, then stop, the first one's replicas."""
    handle = open(home / "engine.lock", "a+")  # noqa: SIM115 - held for the engine's life
    try:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        handle.seek(0)
        owner = handle.read().strip()
        handle.close()
        raise InvalidInput(
            f"another engine{f' (pid {owner})' if owner else ''} is running with the data directory {home}",
            fix="stop it, or give this one its own --home / GSE_HOME",
            field="home",
        ) from None
    handle.seek(0)
    handle.truncate()
    handle.write(str(os.getpid()))
    handle.flush()
    return handle


class Engine:
    def __init__(
        self,
        settings: Settings,
        *,
        runtime: Runtime | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.settings = settings
        self.clock = clock
        self.store = Store(settings.db_url)
        self.runtime = runtime or make_runtime(settings)
        self.gateway = Gateway(settings.gateway_host, settings.gateway_port)
        self.controller = ServiceController(
            self.store,
            self.runtime,
            self.gateway,
            gateway_url=settings.gateway_url,
            interval=settings.reconcile_interval,
            clock=clock,
        )
        self.autoscaler = AutoscalerController(
            self.store,
            self.runtime,
            self.gateway,
            self.controller.observed_changed,
            resting=self.controller.resting_ids,
            clock=clock,
        )
        self.controller.targets = self.autoscaler
        self.gateway.set_activation_handler(self.autoscaler.activate)
        self.rightsizing = RightsizingController(self.runtime, clock=clock)
        self.controller.recommender = self.rightsizing
        self.started_at = 0.0
        self._api_server: object | None = None
        self._api_task: asyncio.Task[None] | None = None
        self._lock: IO[str] | None = None
        self.ready = False

    # --- tokens -------------------------------------------------------------------------
    def ensure_admin_token(self) -> Path:
        """On first start create an admin token; the store keeps only its hash, the file is 0600."""
        path = self.settings.token_file
        if path.exists():
            token = path.read_text().strip()
            if token and self.store.find_token(hash_token(token)) is not None:
                return path
        if self.store.has_tokens() and path.exists():
            log.warning("token file %s does not match any stored token; writing a new admin token", path)
        token = "gse_" + secrets.token_urlsafe(32)
        self.store.add_token(f"admin-{int(self.clock())}", hash_token(token))
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(token + "\n")
        os.chmod(path, 0o600)
        return path

    # --- life cycle ---------------------------------------------------------------------
    async def start(self) -> None:
        import uvicorn

        from gs_engine.api.app import create_app

        try:
            self.settings.home.mkdir(parents=True, exist_ok=True)
            os.chmod(self.settings.home, 0o700)
        except OSError as exc:
            raise InvalidInput(
                f"cannot use {self.settings.home} as the data directory: {exc.strerror}",
                fix="point --home or GSE_HOME at a folder you can write",
                field="home",
            ) from exc
        self._lock = lock_home(self.settings.home)
        try:
            api_socket = bind_socket(
                self.settings.api_host, self.settings.api_port, "--api-port", "GSE_API_PORT"
            )
        except BaseException:
            self._lock.close()
            self._lock = None
            raise
        try:
            await asyncio.to_thread(self.store.migrate)
            await asyncio.to_thread(self.ensure_admin_token)
            await self.runtime.start()
            await self.gateway.start()
            log.info("gateway hot path: %s", hotpath.describe())
        except BaseException:
            api_socket.close()
            await self._close_parts()
            raise
        self.started_at = self.clock()
        await self.controller.reconcile_once()
        self.controller.start()
        self.autoscaler.start()
        self.rightsizing.start()

        app = create_app(self)
        config = uvicorn.Config(
            app, loop="none", lifespan="off", log_level="warning", access_log=False, timeout_keep_alive=30
        )
        server = uvicorn.Server(config)
        server.install_signal_handlers = lambda: None  # type: ignore[method-assign]
        self._api_server = server
        self._api_task = asyncio.create_task(server.serve(sockets=[api_socket]), name="api-server")
        while not server.started:
            if self._api_task.done():
                self._api_task.result()
                raise GseError("the API server stopped during start-up")
            await asyncio.sleep(0.01)
        self.ready = True

    async def stop(self) -> None:
        self.ready = False
        server = self._api_server
        if server is not None:
            server.should_exit = True  # type: ignore[attr-defined]
        if self._api_task is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._api_task, timeout=5)
        await self.autoscaler.close()
        await self.rightsizing.close()
        await self.controller.close()
        await self._close_parts()

    async def _close_parts(self) -> None:
        lock, self._lock = self._lock, None
        if lock is not None:
            lock.close()
        with contextlib.suppress(Exception):
            await self.gateway.close()
        with contextlib.suppress(Exception):
            await self.runtime.close(stop_replicas=True)
        with contextlib.suppress(Exception):
            self.store.close()

    async def serve_until_signalled(self, on_ready: Callable[[], None] | None = None) -> None:
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        try:
            await self.start()
            if on_ready:
                on_ready()
            await stop.wait()
        finally:
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(sig)
            await self.stop()


def run_engine(settings: Settings, on_ready: Callable[[Engine], None] | None = None) -> None:
    """Run the engine in the foreground until SIGINT/SIGTERM, on uvloop where available."""
    engine_holder: list[Engine] = []

    async def main() -> None:
        engine = Engine(settings)
        engine_holder.append(engine)
        await engine.serve_until_signalled(lambda: on_ready(engine) if on_ready else None)

    try:
        import uvloop

        uvloop.run(main())
    except ImportError:  # pragma: no cover - uvloop is a dependency on Linux
        asyncio.run(main())
