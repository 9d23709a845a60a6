"""VPA-style right-sizing: per service, CPU and memory samples from the runtime feed the recommender.

Every `sample_interval` it reads each running replica's CPU use and resident memory; memory is kept
as the peak of each `peak_interval`. Every `recommend_interval` it asks `autoscaling.vpa.recommend`
for target, lower and upper bounds, which show in the service's status as `recommendation`.
Replica processes are measured as a whole, so a recommendation is per replica; for a one-container
service that is the container's.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from gs_engine.autoscaling.vpa import ContainerUsage, CpuSample, MemoryPeak, VpaConfig, recommend
from gs_engine.controllers.tasks import cancel_and_wait
from gs_engine.runtimes.base import ReplicaState, Runtime

log = logging.getLogger("gs_engine.controllers.rightsizing")
MAX_SAMPLES = 8640  # a day of 10-second samples per service


@dataclass
class _History:
    cpu: deque[CpuSample] = field(default_factory=lambda: deque(maxlen=MAX_SAMPLES))
    peaks: deque[MemoryPeak] = field(default_factory=lambda: deque(maxlen=MAX_SAMPLES))
    window_peak: float = 0.0
    window_started: float = 0.0


class RightsizingController:
    def __init__(
        self,
        runtime: Runtime,
        *,
        clock: Callable[[], float] = time.time,
        sample_interval: float = 10.0,
        peak_interval: float = 60.0,
        recommend_interval: float = 60.0,
        config: VpaConfig | None = None,
    ) -> None:
        self.runtime = runtime
        self.clock = clock
        self.sample_interval = sample_interval
        self.peak_interval = peak_interval
        self.recommend_interval = recommend_interval
        self.config = config or VpaConfig()
        self._history: dict[tuple[str, str], _History] = {}
        self._recommendations: dict[tuple[str, str], dict[str, Any]] = {}
        self._task: asyncio.Task[None] | None = None

    def recommendation(self, namespace: str, name: str) -> dict[str, Any] | None:
        return self._recommendations.get((namespace, name))

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="rightsizing")

    async def close(self) -> None:
        await cancel_and_wait(self._task)

    async def _run(self) -> None:
        last_recommendation = time.monotonic()
        while True:
            await asyncio.sleep(self.sample_interval)
            try:
                await self.sample()
                if time.monotonic() - last_recommendation >= self.recommend_interval:
                    last_recommendation = time.monotonic()
                    self.update_recommendations()
            except Exception:
                log.exception("right-sizing pass failed")

    async def sample(self) -> None:
        now = self.clock()
        live: set[tuple[str, str]] = set()
        for replica in self.runtime.replicas():
            if replica.state is not ReplicaState.RUNNING:
                continue
            stats = await self.runtime.stats(replica.replica_id)
            if stats is None:
                continue
            key = (replica.namespace, replica.service)
            live.add(key)
            history = self._history.setdefault(key, _History(window_started=now))
            history.cpu.append(CpuSample(now, max(0.0, stats.cpu_cores)))
            history.window_peak = max(history.window_peak, float(stats.memory_bytes))
        for history in self._history.values():
            if now - history.window_started >= self.peak_interval and history.window_peak > 0:
                history.peaks.append(MemoryPeak(now, history.window_peak))
                history.window_peak, history.window_started = 0.0, now
        for key in set(self._history) - live:
            if not self._history[key].cpu or now - self._history[key].cpu[-1].at > 86400:
                del self._history[key]
                self._recommendations.pop(key, None)

    def update_recommendations(self) -> None:
        now = self.clock()
        for key, history in self._history.items():
            if not history.cpu:
                continue
            peaks = list(history.peaks)
            if not peaks and history.window_peak > 0:
                peaks = [MemoryPeak(now, history.window_peak)]  # the window in progress, until one closes
            usage = ContainerUsage("replica", tuple(history.cpu), tuple(peaks))
            result = recommend([usage], self.config, now)["replica"]
            self._recommendations[key] = {
                "target": {"cpu": round(result.target.cpu, 3), "memory": int(result.target.memory)},
                "lowerBound": {
                    "cpu": round(result.lower_bound.cpu, 3),
                    "memory": int(result.lower_bound.memory),
                },
                "upperBound": {
                    "cpu": round(result.upper_bound.cpu, 3),
                    "memory": int(result.upper_bound.memory),
                },
                "samples": len(history.cpu),
            }
