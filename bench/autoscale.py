"""Autoscaling benchmark on the real engine: cold starts, a 10x load step, scale-down, steady load.

    .venv/bin/python bench/autoscale.py                 # about 4 minutes
    .venv/bin/python bench/autoscale.py --rounds 5 --out bench/results/autoscale

It starts `gse up` in a temporary data directory and reports:

1. first-request latency (client-side, to the first 200) for the digits example and for a service
   that sleeps 100 ms per request, from zero replicas with a plain process start, from zero with the
   zygote (digits only: its parent has numpy, scikit-learn and the trained model loaded), from a warm
   standby, and — the anchor every other row is divided by — from an already-serving replica;
2. a 10x load step (5 -> 50 requests/s) on the 100 ms service: time until the first new replica
   serves and until the count peaks, and requests failed during the step (must be 0);
3. the scale-down after the load ends, with a trickle of requests still running (failures must be 0);
4. the replica count under a steady 5 requests/s on a 1 s service after warm-up (must not oscillate).

It writes the figures to OUT.json and plots replicas and latency over time to OUT.png.
"""

from __future__ import annotations

import argparse
import asyncio
import copy
import json
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from gs_engine.cli import load_document  # noqa: E402
from gs_engine.client import ApiClient  # noqa: E402
from gs_engine.harness import EngineProcess  # noqa: E402

DIGIT_ZERO = [
    0,
    0,
    5,
    13,
    9,
    1,
    0,
    0,
    0,
    0,
    13,
    15,
    10,
    15,
    5,
    0,
    0,
    3,
    15,
    2,
    0,
    11,
    8,
    0,
    0,
    4,
    12,
    0,
    0,
    8,
    8,
    0,
]
DIGIT_ZERO += [
    0,
    5,
    8,
    0,
    0,
    9,
    8,
    0,
    0,
    4,
    11,
    0,
    1,
    12,
    7,
    0,
    0,
    2,
    14,
    5,
    10,
    12,
    0,
    0,
    0,
    0,
    6,
    13,
    10,
    0,
    0,
    0,
]


def scaling(min_replicas: int, **extra: Any) -> dict[str, Any]:
    return {
        "policy": "kpa",
        "metric": "concurrency",
        "target": 1,
        "targetUtilizationPercentage": 100,
        "minReplicas": min_replicas,
        "maxReplicas": 10,
        "stableWindowSeconds": 2,
        "scaleToZeroGracePeriodSeconds": 1,
        **extra,
    }


def service(example: str, name: str, mode: str) -> dict[str, Any]:
    document, _ = load_document(str(ROOT / "examples" / example / "service.yaml"))
    doc = copy.deepcopy(document)
    inner = doc["service"]
    inner["name"] = name
    inner["replicas"] = 1
    inner["autoscaling"] = scaling(1 if mode == "serving" else 0)
    if mode == "standby":
        inner["prewarm"] = {"minWarm": 1}
    elif mode == "zygote":
        zygote_doc, _ = load_document(str(ROOT / "examples" / example / "service-zygote.yaml"))
        inner["prewarm"] = {"zygote": zygote_doc["service"]["prewarm"]["zygote"]}
    for container in inner["containers"]:
        container["readinessProbe"] = {"httpGet": {"path": "/healthz"}, "periodSeconds": 1}
    return doc


def status(api: ApiClient, name: str) -> dict[str, Any]:
    result: dict[str, Any] = api.get_service("default", name).get("status") or {}
    return result


def wait_until(check: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.05)
    raise RuntimeError(f"timed out after {timeout:.0f}s waiting for {what}")


def first_request(client: httpx.Client, url: str, example: str) -> float:
    started = time.perf_counter()
    if example == "digits":
        response = client.post(f"{url}/predict", json={"image": DIGIT_ZERO})
    else:
        response = client.get(f"{url}/work")
    elapsed = time.perf_counter() - started
    if response.status_code != 200:
        raise RuntimeError(f"{url}: {response.status_code} {response.text[:200]}")
    return elapsed


def cold_starts(engine: EngineProcess, api: ApiClient, rounds: int, log: list[str]) -> dict[str, Any]:
    results: dict[str, Any] = {}
    plans = [("digits", m) for m in ("serving", "process", "zygote", "standby")]
    plans += [("sleepy", m) for m in ("serving", "process", "standby")]
    if not (ROOT / "examples/digits/service-zygote.yaml").exists():
        plans.remove(("digits", "zygote"))
    with httpx.Client(timeout=60) as client:
        for example, mode in plans:
            name = f"{example}-{mode}"
            api.apply(service(example, name, mode))
            url = f"{engine.gateway_url}/default/{name}"
            samples = []
            for _ in range(rounds):
                if mode == "serving":
                    wait_until(
                        lambda n=name: status(api, n).get("readyReplicas", 0) >= 1, 120, f"{name} ready"
                    )
                    time.sleep(0.2)
                else:
                    wait_until(lambda n=name, m=mode: _at_zero(api, n, m), 120, f"{name} at zero")
                samples.append(first_request(client, url, example))
            results[name] = {
                "example": example,
                "mode": mode,
                "median_ms": statistics.median(samples) * 1000,
                "max_ms": max(samples) * 1000,
                "samples_ms": [s * 1000 for s in samples],
            }
            log.append(f"{name:18} first response median {results[name]['median_ms']:8.1f} ms")
            print(log[-1], flush=True)
            api.delete_service("default", name)
    for example in ("digits", "sleepy"):
        anchor = results[f"{example}-serving"]["median_ms"]
        for entry in results.values():
            if entry["example"] == example:
                entry["ratio_to_serving"] = entry["median_ms"] / anchor if anchor else None
    return results


def _at_zero(api: ApiClient, name: str, mode: str) -> bool:
    st = status(api, name)
    decided = (st.get("autoscaler") or {}).get("desiredReplicas")
    if decided != 0 or st.get("readyReplicas", 0) != 0:
        return False
    replicas = api.replicas("default", name)
    if mode == "standby":
        return st.get("warmReplicas") == 1
    return not replicas


@dataclass
class Timeline:
    started: float = field(default_factory=time.perf_counter)
    replicas: list[tuple[float, int]] = field(default_factory=list)
    latency: list[tuple[float, float]] = field(default_factory=list)
    failures: list[tuple[float, str]] = field(default_factory=list)

    def now(self) -> float:
        return time.perf_counter() - self.started


async def open_loop(client: httpx.AsyncClient, url: str, rate: float, seconds: float, line: Timeline) -> None:
    """Fire `rate` requests a second for `seconds`, not waiting for answers (an open-loop load)."""
    tasks = []
    interval = 1.0 / rate
    begin = time.perf_counter()
    count = int(rate * seconds)
    for i in range(count):
        delay = begin + i * interval - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(_one(client, url, line)))
    await asyncio.gather(*tasks)


async def _one(client: httpx.AsyncClient, url: str, line: Timeline) -> None:
    sent = line.now()
    try:
        response = await client.get(url)
    except httpx.HTTPError as exc:
        line.failures.append((sent, repr(exc)))
        return
    if response.status_code != 200:
        line.failures.append((sent, f"{response.status_code}"))
    else:
        line.latency.append((sent, line.now() - sent))


async def watch_replicas(api_url: str, token: str, name: str, line: Timeline, stop: asyncio.Event) -> None:
    async with httpx.AsyncClient(base_url=api_url, headers={"Authorization": f"Bearer {token}"}) as http:
        while not stop.is_set():
            response = await http.get(f"/api/v1/namespaces/default/services/{name}")
            line.replicas.append(
                (line.now(), int((response.json().get("status") or {}).get("readyReplicas", 0)))
            )
            await asyncio.sleep(0.1)


async def load_step(engine: EngineProcess, api: ApiClient) -> tuple[dict[str, Any], Timeline]:
    doc = service("sleepy", "step", "serving")
    doc["service"]["autoscaling"] |= {"stableWindowSeconds": 6, "minReplicas": 1}
    api.apply(doc)
    wait_until(lambda: status(api, "step").get("readyReplicas", 0) >= 1, 120, "step ready")
    url = f"{engine.gateway_url}/default/step/work"
    line = Timeline()
    stop = asyncio.Event()
    limits = httpx.Limits(max_connections=500, max_keepalive_connections=500)
    async with httpx.AsyncClient(timeout=60, limits=limits) as client:
        watcher = asyncio.create_task(watch_replicas(engine.api_url, engine.token, "step", line, stop))
        await open_loop(client, url, 5, 10, line)
        step_at = line.now()
        before = len(line.failures)
        await open_loop(client, url, 50, 20, line)
        step_failures = len(line.failures) - before
        down_at = line.now()
        await open_loop(client, url, 1, 25, line)  # a trickle while it scales down
        down_failures = len(line.failures) - before - step_failures
        stop.set()
        await watcher
    baseline = max((n for t, n in line.replicas if t < step_at), default=1)
    grown = [t for t, n in line.replicas if t >= step_at and n > baseline]
    peak = max((n for t, n in line.replicas if step_at <= t <= down_at), default=baseline)
    peak_at = next((t for t, n in line.replicas if t >= step_at and n == peak), step_at)
    final = line.replicas[-1][1] if line.replicas else 0
    api.delete_service("default", "step")
    return (
        {
            "baseline_replicas": baseline,
            "peak_replicas": peak,
            "replicas_after_scale_down": final,
            "seconds_to_first_new_replica": (grown[0] - step_at) if grown else None,
            "seconds_to_peak": peak_at - step_at,
            "failed_during_step": step_failures,
            "failed_during_scale_down": down_failures,
            "step_at": step_at,
            "scale_down_at": down_at,
        },
        line,
    )


async def steady(engine: EngineProcess, api: ApiClient) -> tuple[dict[str, Any], Timeline]:
    doc = service("sleepy", "steady", "serving")
    doc["service"]["autoscaling"] |= {"stableWindowSeconds": 20, "minReplicas": 1}
    api.apply(doc)
    wait_until(lambda: status(api, "steady").get("readyReplicas", 0) >= 1, 120, "steady ready")
    url = f"{engine.gateway_url}/default/steady/work?ms=1000"
    line = Timeline()
    stop = asyncio.Event()
    async with httpx.AsyncClient(timeout=60, limits=httpx.Limits(max_connections=100)) as client:
        watcher = asyncio.create_task(watch_replicas(engine.api_url, engine.token, "steady", line, stop))
        await open_loop(client, url, 5, 60, line)
        stop.set()
        await watcher
    warm = [n for t, n in line.replicas if t >= 25]
    changes = sum(1 for a, b in zip(warm, warm[1:], strict=False) if a != b)
    api.delete_service("default", "steady")
    return (
        {
            "replicas_after_warmup": sorted(set(warm)),
            "changes_after_warmup": changes,
            "oscillates": changes > 1,
            "failures": len(line.failures),
        },
        line,
    )


def plot(path: Path, step: Timeline, step_info: dict[str, Any], still: Timeline) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is not installed (pip install -e '.[dev]'): no chart", file=sys.stderr)
        return
    fig, axes = plt.subplots(2, 2, figsize=(12, 7), sharex="col")
    for column, (line, title) in enumerate(
        ((step, "5 -> 50 req/s step, 100 ms service"), (still, "steady 5 req/s, 1 s service"))
    ):
        top, bottom = axes[0][column], axes[1][column]
        if line.replicas:
            top.step([t for t, _ in line.replicas], [n for _, n in line.replicas], where="post")
        top.set_ylabel("ready replicas")
        top.set_title(title)
        if line.latency:
            bottom.plot([t for t, _ in line.latency], [v * 1000 for _, v in line.latency], ".", markersize=2)
        bottom.set_ylabel("latency (ms)")
        bottom.set_xlabel("seconds")
        bottom.set_yscale("log")
    for ax in (axes[0][0], axes[1][0]):
        ax.axvline(step_info["step_at"], color="red", linestyle="--", linewidth=1)
        ax.axvline(step_info["scale_down_at"], color="green", linestyle="--", linewidth=1)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3, help="cold starts per row")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "autoscale")
    parser.add_argument("--skip", nargs="*", default=[], choices=["cold", "step", "steady"])
    args = parser.parse_args()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    report: dict[str, Any] = {"rounds": args.rounds}
    log: list[str] = []
    with tempfile.TemporaryDirectory(prefix="gse-bench-") as tmp:
        engine = EngineProcess(Path(tmp) / "home")
        engine.start()
        try:
            with engine.client() as api:
                if "cold" not in args.skip:
                    report["first_request"] = cold_starts(engine, api, args.rounds, log)
                step_line = still_line = Timeline()
                if "step" not in args.skip:
                    report["load_step"], step_line = asyncio.run(load_step(engine, api))
                if "steady" not in args.skip:
                    report["steady"], still_line = asyncio.run(steady(engine, api))
        finally:
            left = engine.stop()
            report["processes_left_behind"] = left
    print(json.dumps({k: v for k, v in report.items() if k != "first_request"}, indent=2))
    if "first_request" in report:
        print(f"{'row':18} {'median ms':>10} {'max ms':>9} {'x serving':>10}")
        for name, entry in report["first_request"].items():
            ratio = entry.get("ratio_to_serving")
            print(f"{name:18} {entry['median_ms']:10.1f} {entry['max_ms']:9.1f} {ratio:10.1f}")
        zygote = report["first_request"].get("digits-zygote")
        if zygote:
            verdict = "PASS" if zygote["median_ms"] < 50 else "FAIL"
            print(
                f"{verdict}: digits from zero with the zygote, "
                f"median {zygote['median_ms']:.1f} ms (target < 50 ms)"
            )
    if "load_step" in report:
        step = report["load_step"]
        ok = step["failed_during_step"] == 0 and step["failed_during_scale_down"] == 0
        print(
            f"{'PASS' if ok else 'FAIL'}: failed requests during the step {step['failed_during_step']}, "
            f"during scale-down {step['failed_during_scale_down']} (must be 0)"
        )
    if "steady" in report:
        print(
            f"{'FAIL' if report['steady']['oscillates'] else 'PASS'}: steady load replica counts "
            f"{report['steady']['replicas_after_warmup']} "
            f"with {report['steady']['changes_after_warmup']} changes"
        )
    args.out.with_suffix(".json").write_text(json.dumps(report, indent=2, default=str))
    if "step" not in args.skip and "steady" not in args.skip:
        plot(args.out.with_suffix(".png"), step_line, report["load_step"], still_line)
    print(f"wrote {args.out.with_suffix('.json')} and {args.out.with_suffix('.png')}")


if __name__ == "__main__":
    main()
