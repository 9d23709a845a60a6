"""Send the whole held-out test set to a digits service and report accuracy, latency and balance.

    python loadtest.py http://127.0.0.1:8080/default/digits            # through the gateway
    python loadtest.py http://127.0.0.1:8000 --batch 10 --output json  # one replica, batches of 10

Every one of the 450 held-out images goes to ``BASE_URL/predict`` over one keep-alive connection,
``batch`` images per request. Latency is measured on the client around each request, so it includes
the gateway and the network. The "replica" field of each answer says which replica served it.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import httpx
import numpy as np
from model import load_split
from numpy.typing import NDArray
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0..100) of values, interpolating linearly between the closest ranks.

    The same definition as numpy's default: the value at fractional position q/100 * (n - 1) of the
    sorted values. Raises ValueError for an empty sequence or q outside 0..100.
    """
    if not values:
        raise ValueError("percentile of no values")
    if not 0.0 <= q <= 100.0:
        raise ValueError(f"percentile {q} is outside 0..100")
    ordered = sorted(values)
    position = (len(ordered) - 1) * q / 100.0
    lower = math.floor(position)
    upper = min(lower + 1, len(ordered) - 1)
    fraction = position - lower
    return ordered[lower] + (ordered[upper] - ordered[lower]) * fraction


@dataclass(frozen=True)
class DigitsReport:
    """The outcome of one pass over the test set. Latencies are None when no request succeeded."""

    base_url: str
    batch: int
    images: int  # test images sent
    correct: int  # images answered with the right digit
    accuracy: float  # correct / images: an image whose request failed counts as wrong
    requests: int
    failures: int  # requests without a usable 200 answer
    latency_p50_ms: float | None
    latency_p99_ms: float | None
    latency_max_ms: float | None
    duration_s: float
    per_replica: dict[str, int] = field(default_factory=dict)  # replica id -> requests it answered
    errors: tuple[str, ...] = ()  # the first few failure reasons

    @property
    def requests_per_second(self) -> float:
        return self.requests / self.duration_s if self.duration_s > 0 else 0.0


MAX_ERRORS_KEPT = 5


def run_test_set(
    base_url: str, *, batch: int = 1, progress: bool = True, timeout: float = 10.0
) -> DigitsReport:
    """Send every held-out image to base_url + "/predict", batch images per request, and report."""
    if batch < 1:
        raise ValueError(f"batch must be at least 1, not {batch}")
    _, x_test, _, y_test = load_split()
    url = base_url.rstrip("/") + "/predict"
    latencies_ms: list[float] = []
    replicas: Counter[str] = Counter()
    errors: list[str] = []
    correct = failures = requests = 0
    starts = range(0, len(y_test), batch)

    console = Console(stderr=True)
    bar = Progress(
        TextColumn("[bold]digits[/] {task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        disable=not progress,
        transient=True,
    )
    began = time.perf_counter()
    with httpx.Client(timeout=timeout) as client, bar:
        task = bar.add_task(url, total=len(y_test))
        for start in starts:
            images = x_test[start : start + batch]
            labels = y_test[start : start + batch]
            requests += 1
            sent = time.perf_counter()
            try:
                response = client.post(url, json={"images": images.tolist()})
                elapsed_ms = (time.perf_counter() - sent) * 1000.0
                predictions, replica = _read_answer(response, len(labels))
            except (httpx.HTTPError, ValueError) as exc:
                failures += 1
                if len(errors) < MAX_ERRORS_KEPT:
                    errors.append(f"request {requests}: {exc}")
            else:
                latencies_ms.append(elapsed_ms)
                replicas[replica] += 1
                correct += int(np.sum(predictions == labels))
            bar.advance(task, len(labels))
    duration = time.perf_counter() - began

    return DigitsReport(
        base_url=base_url,
        batch=batch,
        images=len(y_test),
        correct=correct,
        accuracy=correct / len(y_test),
        requests=requests,
        failures=failures,
        latency_p50_ms=percentile(latencies_ms, 50) if latencies_ms else None,
        latency_p99_ms=percentile(latencies_ms, 99) if latencies_ms else None,
        latency_max_ms=max(latencies_ms) if latencies_ms else None,
        duration_s=duration,
        per_replica=dict(sorted(replicas.items())),
        errors=tuple(errors),
    )


def _read_answer(response: httpx.Response, expected: int) -> tuple[NDArray[np.int64], str]:
    """The predictions and replica id in a /predict answer; ValueError when it is not a usable one."""
    if response.status_code != 200:
        detail = response.text[:200]
        raise ValueError(f"HTTP {response.status_code}: {detail}")
    document: Any = response.json()
    predictions = document.get("predictions") if isinstance(document, dict) else None
    if not isinstance(predictions, list) or len(predictions) != expected:
        raise ValueError(f"expected {expected} predictions, got {str(document)[:200]}")
    return np.asarray(predictions, dtype=np.int64), str(document.get("replica", "?"))


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f} ms"


def print_report(report: DigitsReport, console: Console | None = None) -> None:
    """The report as two small Rich tables: the results, then how requests split over replicas."""
    console = console or Console()
    console.print(f"digits test set via {report.base_url}", highlight=False)
    summary = Table(show_header=False)
    summary.add_column("measure", style="bold")
    summary.add_column("value", justify="right")
    summary.add_row("accuracy", f"{report.accuracy:.4f} ({report.correct}/{report.images})")
    summary.add_row("requests", f"{report.requests} (batch {report.batch})")
    summary.add_row("failures", str(report.failures), style="red" if report.failures else None)
    summary.add_row("latency p50", _ms(report.latency_p50_ms))
    summary.add_row("latency p99", _ms(report.latency_p99_ms))
    summary.add_row("latency max", _ms(report.latency_max_ms))
    summary.add_row("duration", f"{report.duration_s:.2f} s ({report.requests_per_second:.0f} req/s)")
    console.print(summary)

    answered = sum(report.per_replica.values())
    split = Table(title="requests per replica")
    split.add_column("replica")
    split.add_column("requests", justify="right")
    split.add_column("share", justify="right")
    for replica, count in report.per_replica.items():
        split.add_row(replica, str(count), f"{count / answered:.0%}")
    console.print(split)
    for error in report.errors:
        console.print(f"[red]{error}[/]")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Send the digits test set to a running service.")
    parser.add_argument("base_url", help="e.g. http://127.0.0.1:8080/default/digits")
    parser.add_argument("--batch", type=int, default=1, help="images per request (default 1)")
    parser.add_argument("--timeout", type=float, default=10.0, help="seconds per request (default 10)")
    parser.add_argument("--output", choices=["table", "json"], default="table")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    options = parser.parse_args(argv)
    if options.batch < 1:
        parser.error("--batch must be at least 1")
    report = run_test_set(
        options.base_url, batch=options.batch, progress=not options.no_progress, timeout=options.timeout
    )
    if options.output == "json":
        print(json.dumps(asdict(report), indent=2))
    else:
        print_report(report)
    return 0 if report.failures == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
