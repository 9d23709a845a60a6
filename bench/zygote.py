"""Zygote benchmark: first-response latency of a new digits replica, plain start against zygote fork.

    .venv/bin/python bench/zygote.py                 # 10 rounds each
    .venv/bin/python bench/zygote.py --rounds 20 --json out.json

For each round it starts one replica of the digits example through the process runtime and
measures, from the call to `run_replica` to the first `200` on `POST /predict` (a client polling
the replica's port every half millisecond):

- plain:  `examples/digits/service.yaml`, a fresh interpreter that imports numpy and scikit-learn
          and trains the model (the anchor the ratio is taken against);
- zygote: `examples/digits/service-zygote.yaml`, forked from a parent that has imported them and
          trained the model already (warmed once before the rounds; that start is reported apart).

Rounds are interleaved (plain, zygote, plain, ...) so both see the same machine load. It also
reports when the runtime itself saw the replica ready (its readiness probe). Target: the zygote's
median under 50 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import http.client
import json
import statistics
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from gs_engine.runtimes.base import ReplicaRequest
from gs_engine.runtimes.process import ProcessRuntime
from gs_engine.spec.loader import load_service
from gs_engine.spec.service import template_revision

DIGITS = Path(__file__).resolve().parents[1] / "examples" / "digits"
TARGET_MS = 50.0
BODY = json.dumps({"image": [0.0] * 64})
POLL_SECONDS = 0.0005


@dataclass
class Round:
    mode: str
    first_200_ms: float
    runtime_ready_ms: float
    run_replica_ms: float


def percentile(values: list[float], q: float) -> float:
    """Linear interpolation between closest ranks (numpy's default)."""
    ordered = sorted(values)
    position = (len(ordered) - 1) * q
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def document(name: str) -> tuple[dict[str, Any], str]:
    spec = load_service((DIGITS / name).read_text())
    doc = spec.to_document()
    doc["service"]["containers"][0]["workingDir"] = str(DIGITS)
    return doc, template_revision(spec)


def first_200(port: int, deadline: float) -> float:
    """Poll POST /predict until it answers 200; returns the perf_counter time it did."""
    while time.perf_counter() < deadline:
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            conn.request("POST", "/predict", BODY, {"Content-Type": "application/json"})
            response = conn.getresponse()
            response.read()
            conn.close()
            if response.status == 200:
                return time.perf_counter()
        except OSError:
            pass
        time.sleep(POLL_SECONDS)
    raise SystemExit(f"no 200 from port {port} before the deadline")


async def one_round(rt: ProcessRuntime, mode: str, doc: dict[str, Any], revision: str, index: int) -> Round:
    replica_id = f"default.digits.bench-{mode}-{index}"
    request = ReplicaRequest(replica_id, "default", "digits", revision, doc)
    loop = asyncio.get_running_loop()
    ready_at: list[float] = []

    def on_change() -> None:
        if not ready_at and any(o.replica_id == replica_id and o.ready for o in rt.replicas()):
            ready_at.append(time.perf_counter())

    rt.watch(on_change)
    started = time.perf_counter()
    obs = await rt.run_replica(request)
    returned = time.perf_counter()
    answered = await loop.run_in_executor(None, first_200, obs.port, started + 60.0)
    while not ready_at and time.perf_counter() < started + 60.0:
        await asyncio.sleep(0.001)
    rt._watchers.remove(on_change)  # noqa: SLF001 - the bench owns this runtime
    if "without the zygote" in (observed := rt.replicas()[0]).message:
        raise SystemExit(f"the zygote was not used: {observed.message}")
    await rt.stop_replica(replica_id, grace_seconds=5)
    return Round(
        mode,
        (answered - started) * 1e3,
        (ready_at[0] - started) * 1e3 if ready_at else float("nan"),
        (returned - started) * 1e3,
    )


async def run(rounds: int) -> dict[str, Any]:
    plain_doc, plain_rev = document("service.yaml")
    zygote_doc, zygote_rev = document("service-zygote.yaml")
    with tempfile.TemporaryDirectory(prefix="gse-bench-zygote-") as state:
        rt = ProcessRuntime(Path(state))
        await rt.start()
        try:
            warm_started = time.perf_counter()
            await rt.warm_zygote(zygote_doc, zygote_rev)
            warm_ms = (time.perf_counter() - warm_started) * 1e3
            results: list[Round] = []
            for index in range(rounds):
                results.append(await one_round(rt, "plain", plain_doc, plain_rev, index))
                results.append(await one_round(rt, "zygote", zygote_doc, zygote_rev, index))
                print(
                    f"round {index + 1}/{rounds}: plain {results[-2].first_200_ms:7.1f} ms, "
                    f"zygote {results[-1].first_200_ms:6.1f} ms",
                    file=sys.stderr,
                )
        finally:
            await rt.close()
    summary: dict[str, Any] = {"rounds": rounds, "zygote_start_ms": warm_ms, "modes": {}}
    for mode in ("plain", "zygote"):
        mine = [r for r in results if r.mode == mode]
        summary["modes"][mode] = {
            key: {
                "median": statistics.median(getattr(r, key) for r in mine),
                "p90": percentile([getattr(r, key) for r in mine], 0.9),
            }
            for key in ("first_200_ms", "runtime_ready_ms", "run_replica_ms")
        }
    plain = summary["modes"]["plain"]["first_200_ms"]["median"]
    zygote = summary["modes"]["zygote"]["first_200_ms"]["median"]
    summary["speedup"] = plain / zygote
    summary["target_met"] = zygote < TARGET_MS
    summary["results"] = [asdict(r) for r in results]
    return summary


def report(summary: dict[str, Any]) -> None:
    print(f"digits, first response after run_replica, {summary['rounds']} rounds each (ms)")
    print(f"{'mode':8} {'first 200 p50':>14} {'p90':>8} {'ready p50':>10} {'run_replica p50':>16}")
    for mode, figures in summary["modes"].items():
        print(
            f"{mode:8} {figures['first_200_ms']['median']:14.1f} {figures['first_200_ms']['p90']:8.1f} "
            f"{figures['runtime_ready_ms']['median']:10.1f} {figures['run_replica_ms']['median']:16.1f}"
        )
    print(f"zygote parent start (once, before the rounds): {summary['zygote_start_ms']:.0f} ms")
    verdict = "met" if summary["target_met"] else "NOT met"
    print(
        f"plain / zygote (median first 200): {summary['speedup']:.1f}x; target < {TARGET_MS:g} ms {verdict}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--json", type=Path, default=None, help="also write the figures here")
    args = parser.parse_args()
    summary = asyncio.run(run(args.rounds))
    report(summary)
    if args.json is not None:
        args.json.write_text(json.dumps(summary, indent=1))


if __name__ == "__main__":
    main()
