"""Run `gse up` as a child process in its own data directory, on free loopback ports.

Used by the demo and the integration tests; handy for scripts that need a throw-away engine.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import psutil

from gs_engine.client import ApiClient


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


class EngineProcess:
    def __init__(
        self,
        home: Path,
        api_port: int | None = None,
        gateway_port: int | None = None,
        extra_env: dict[str, str] | None = None,
    ) -> None:
        self.home = home
        self.api_port = api_port or free_port()
        self.gateway_port = gateway_port or free_port()
        self.extra_env = dict(extra_env or {})
        self.log_path = home / "engine.log"
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"

    @property
    def gateway_url(self) -> str:
        return f"http://127.0.0.1:{self.gateway_port}"

    @property
    def token(self) -> str:
        return (self.home / "admin.token").read_text().strip()

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("GSE_")}
        env.update(
            GSE_HOME=str(self.home),
            GSE_API_PORT=str(self.api_port),
            GSE_GATEWAY_PORT=str(self.gateway_port),
            GSE_API_URL=self.api_url,
        )
        env.update(self.extra_env)
        return env

    def start(self, timeout: float = 60.0) -> None:
        self.home.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "gs_engine.cli", "up"],
                env=self.env(),
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"gse up exited with {self.process.returncode}:\n{self.log()}")
            try:
                if httpx.get(self.api_url + "/readyz", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        raise RuntimeError(f"gse up not ready after {timeout}s:\n{self.log()}")

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def client(self) -> ApiClient:
        return ApiClient(self.api_url, self.token)

    def descendants(self) -> list[psutil.Process]:
        if self.process is None:
            return []
        try:
            return psutil.Process(self.process.pid).children(recursive=True)
        except psutil.NoSuchProcess:
            return []

    def stop(self, timeout: float = 30.0) -> list[int]:
        """SIGTERM the engine and wait; returns the pids of replica processes it left running (killed now)."""
        if self.process is None or self.process.poll() is not None:
            return []
        children = self.descendants()
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        _, alive = psutil.wait_procs(children, timeout=5)
        for proc in alive:
            proc.kill()
        return [p.pid for p in alive]

    def kill(self) -> None:
        """SIGKILL the engine alone (its replicas live on, as after a crash)."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()
