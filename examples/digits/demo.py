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
import sys
import tempfile
import time
from pathlib import Path

from rich.console import Console

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from loadtest import print_report, run_test_set  # noqa: E402

from gs_engine.cli import load_document  # noqa: E402
from gs_engine.client import ApiClient  # noqa: E402
from gs_engine.harness import EngineProcess  # noqa: E402

console = Console()


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
