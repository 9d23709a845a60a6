"""The GS-Engine demo: a real digits classifier deployed, routed and served on this machine.

    ./scripts/demo            # from the repository root (builds .venv first)

1. starts `gse up` (SQLite store, process runtime, built-in gateway) in a fresh data directory,
2. deploys examples/digits/service.yaml with 2 replicas and waits until both are ready,
3. sends every held-out test image through the gateway, one request each, with a progress bar,
4. prints accuracy, request count, client-side latency p50/p99 and the split over the replicas,
5. stops the engine (SIGTERM) and checks that no replica process is left behind.

Exits non-zero if accuracy is below 0.95, any request failed, or the engine did not stop cleanly.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import psutil
from rich.console import Console

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from loadtest import print_report, run_test_set  # noqa: E402

from gs_engine.cli import load_document  # noqa: E402
from gs_engine.client import ApiClient  # noqa: E402

console = Console()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class EngineProcess:
    """`gse up` as a child process in its own data directory, on free loopback ports."""

    def __init__(self, home: Path, api_port: int | None = None, gateway_port: int | None = None) -> None:
        self.home = home
        self.api_port = api_port or free_port()
        self.gateway_port = gateway_port or free_port()
        self.log_path = home / "engine.log"
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"

    @property
    def gateway_url(self) -> str:
        return f"http://127.0.0.1:{self.gateway_port}"

    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        env.update(
            GSE_HOME=str(self.home),
            GSE_API_PORT=str(self.api_port),
            GSE_GATEWAY_PORT=str(self.gateway_port),
            GSE_API_URL=self.api_url,
        )
        return env

    def start(self, timeout: float = 60.0) -> None:
        self.home.mkdir(parents=True, exist_ok=True)
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "gs_engine.cli", "up"],
            env=self.env(),
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"gse up exited with {self.process.returncode}:\n{self.log_path.read_text()}"
                )
            try:
                if httpx.get(self.api_url + "/readyz", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"gse up not ready after {timeout}s:\n{self.log_path.read_text()}")

    def client(self) -> ApiClient:
        token = (self.home / "admin.token").read_text().strip()
        return ApiClient(self.api_url, token)

    def descendants(self) -> list[psutil.Process]:
        if self.process is None:
            return []
        try:
            return psutil.Process(self.process.pid).children(recursive=True)
        except psutil.NoSuchProcess:
            return []

    def stop(self, timeout: float = 30.0) -> list[int]:
        """SIGTERM the engine; returns the pids of any replica process it left running."""
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


def wait_ready(api: ApiClient, namespace: str, name: str, replicas: int, timeout: float = 90.0) -> dict:
    deadline = time.monotonic() + timeout
    with console.status(f"waiting for {replicas} ready replicas of {namespace}/{name}") as status:
        while time.monotonic() < deadline:
            service = api.get_service(namespace, name)
            st = service.get("status") or {}
            ready = st.get("readyReplicas", 0)
            status.update(f"waiting for {namespace}/{name}: {ready}/{replicas} replicas ready")
            if ready >= replicas and service["observedGeneration"] == service["generation"]:
                return service
            time.sleep(0.1)
    raise RuntimeError(f"{namespace}/{name} did not get {replicas} ready replicas in {timeout}s")


def run_demo(home: Path, replicas: int = 2, progress: bool = True) -> int:
    engine = EngineProcess(home)
    console.print(f"[bold]1.[/] starting GS-Engine (data in {home})")
    engine.start()
    console.print(f"   api {engine.api_url}   gateway {engine.gateway_url}")
    leftovers: list[int] = []
    try:
        document, _ = load_document(str(HERE / "service.yaml"))
        document["service"]["replicas"] = replicas
        with engine.client() as api:
            console.print(f"[bold]2.[/] deploying digits with {replicas} replicas")
            api.apply(document)
            service = wait_ready(api, "default", "digits", replicas)
            url = service["status"]["url"]
            console.print(f"   ready at {url}")
            console.print("[bold]3.[/] sending every held-out test image through the gateway")
            report = run_test_set(url, progress=progress)
        print_report(report)
    finally:
        console.print("[bold]4.[/] stopping GS-Engine")
        leftovers = engine.stop()
    problems = []
    if report.accuracy < 0.95:
        problems.append(f"accuracy {report.accuracy:.3f} is below 0.95")
    if report.failures:
        problems.append(f"{report.failures} requests failed")
    if leftovers:
        problems.append(f"replica processes left running: {leftovers}")
    if len(report.per_replica) < replicas:
        problems.append(f"only {len(report.per_replica)} of {replicas} replicas served requests")
    for problem in problems:
        console.print(f"[bold red]FAILED:[/] {problem}")
    if not problems:
        console.print("[bold green]demo passed[/]: engine stopped, no process left behind")
    return 1 if problems else 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--replicas", type=int, default=2)
    parser.add_argument("--home", type=Path, help="data directory (default: a fresh temporary one)")
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args()
    if args.home:
        sys.exit(run_demo(args.home, args.replicas, not args.no_progress))
    with tempfile.TemporaryDirectory(prefix="gse-demo-") as tmp:
        sys.exit(run_demo(Path(tmp), args.replicas, not args.no_progress))


if __name__ == "__main__":
    main()
