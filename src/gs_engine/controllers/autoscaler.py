"""The autoscaler controller: feeds the pure deciders real metrics and sets each service's target.

Every `sample_interval` it reads the gateway's in-flight counts (no I/O); every `interval` it turns
them into one-second samples (concurrency, requests per second), adds CPU and memory per replica
from the runtime, asks the service's decider (KPA or HPA), applies pre-warming floors (schedule,
forecast) and min/max, and, when the count changes, records an event with the inputs and reason.
The service controller asks `target(record)` for how many replicas (and warm standbys) to run.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from gs_engine.autoscaling.hpa import hpa_decide
from gs_engine.autoscaling.kpa import KpaConfig, KpaDecider, Sample, window_average
from gs_engine.autoscaling.live import (
    ReplicaMetrics,
    autoscaling_of,
    bounds,
    clamp,
    hpa_case,
    kpa_config,
    prewarm_of,
    service_doc,
    windows,
)
from gs_engine.autoscaling.prewarm import forecast, predictive_replicas, scheduled_floor
from gs_engine.autoscaling.simulate import parse_hpa_case
from gs_engine.controllers.tasks import cancel_and_wait
from gs_engine.controllers.writer import BackgroundWriter
from gs_engine.runtimes.base import ReplicaState, Runtime
from gs_engine.store import Store

log = logging.getLogger("gs_engine.controllers.autoscaler")
HISTORY_SECONDS = 600.0


class LoadReporter(Protocol):
    def load_report(self) -> Mapping[str, Any]: ...

    def held(self, route_name: str) -> int: ...


@dataclass
class _Accumulator:
    inflight_sum: float = 0.0
    samples: int = 0

    def add(self, value: float) -> None:
        self.inflight_sum += value
        self.samples += 1

    def take(self) -> float:
        value = self.inflight_sum / self.samples if self.samples else 0.0
        self.inflight_sum, self.samples = 0.0, 0
        return value


@dataclass
class ServiceScaling:
    desired: int
    policy: str
    kpa: KpaDecider | None = None
    kpa_config: KpaConfig | None = None
    series: deque[Sample] = field(default_factory=deque)  # the decider's metric, one sample a second
    recommendations: list[tuple[float, int]] = field(default_factory=list)
    scale_events: list[tuple[float, int]] = field(default_factory=list)
    zero_since: float | None = None
    last_activity: float = 0.0
    decision: dict[str, Any] = field(default_factory=dict)
    service_acc: _Accumulator = field(default_factory=_Accumulator)


class AutoscalerController:
    def __init__(
        self,
        store: Store,
        runtime: Runtime,
        gateway: LoadReporter,
        on_change: Callable[[], None],
        *,
        resting: Callable[[], set[str]] = set,
        clock: Callable[[], float] = time.time,
        interval: float = 1.0,
        sample_interval: float = 0.1,
    ) -> None:
        self.store = store
        self.runtime = runtime
        self.gateway = gateway
        self.on_change = on_change
        self.resting = resting  # draining replicas and warm standbys: they serve nothing
        self.clock = clock
        self.interval = interval
        self.sample_interval = sample_interval
        self._states: dict[tuple[str, str], ServiceScaling] = {}
        self._replica_acc: dict[str, _Accumulator] = {}
        self._task: asyncio.Task[None] | None = None
        self.writer = BackgroundWriter("autoscaler-writes")

    # --- what the service controller asks -------------------------------------------------------
    def target(self, record: Any) -> tuple[int, int] | None:
        """(replicas, warm standbys) for a service the autoscaler manages; None for a fixed one."""
        scaling = autoscaling_of(record.spec)
        prewarm = prewarm_of(record.spec)
        if scaling is None and not prewarm:
            return None
        warm = int(prewarm.get("minWarm", 0) or 0)
        state = self._state_for(record)
        return state.desired, warm

    def status(self, namespace: str, name: str) -> dict[str, Any] | None:
        state = self._states.get((namespace, name))
        return dict(state.decision) if state and state.decision else None

    def activate(self, namespace: str, name: str) -> bool:
        """A request waits for a service at zero: scale it up now, not at the next tick."""
        state = self._states.get((namespace, name))
        now = self.clock()
        if state is None:
            return False
        state.last_activity = now
        state.zero_since = None
        if state.desired > 0:
            return False
        config = state.kpa_config
        state.desired = max(1, config.activation_scale if config else 1)
        state.decision = {
            "policy": state.policy,
            "desiredReplicas": state.desired,
            "reason": "ActivatedFromZero: a request is waiting in the activator",
            "at": now,
        }
        self._event(
            namespace, name, "ActivatedFromZero", f"scaling 0 -> {state.desired}: a request is waiting"
        )
        self.on_change()
        return True

    def _state_for(self, record: Any) -> ServiceScaling:
        key = (record.namespace, record.name)
        state = self._states.get(key)
        scaling = autoscaling_of(record.spec)
        policy = str(scaling.get("policy", "kpa")) if scaling else "fixed"
        if state is None or state.policy != policy:
            replicas = int(service_doc(record.spec).get("replicas", 1))
            if scaling:
                low, high = bounds(record.spec)
                replicas = clamp(replicas, low, high)
            state = ServiceScaling(desired=replicas, policy=policy, last_activity=self.clock())
            self._states[key] = state
        if policy == "kpa":
            config = kpa_config(record.spec)
            if state.kpa is None or state.kpa_config != config:
                state.kpa, state.kpa_config = KpaDecider(config), config
        return state

    # --- loop -----------------------------------------------------------------------------------
    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="autoscaler")

    async def close(self) -> None:
        await cancel_and_wait(self._task)
        await self.writer.close()

    async def _run(self) -> None:
        next_decision = time.monotonic() + self.interval
        while True:
            await asyncio.sleep(self.sample_interval)
            try:
                self.sample()
                if time.monotonic() >= next_decision:
                    next_decision += self.interval
                    await self.decide_all()
            except Exception:
                log.exception("autoscaler pass failed")

    def sample(self) -> None:
        """Add the gateway's in-flight counts to the running one-second averages (no I/O)."""
        report = self.gateway.load_report()
        totals: dict[tuple[str, str], float] = {}
        for replica in self.runtime.replicas():
            load = report.get(replica.replica_id)
            inflight = float(getattr(load, "inflight", 0) or 0)
            self._replica_acc.setdefault(replica.replica_id, _Accumulator()).add(inflight)
            key = (replica.namespace, replica.service)
            totals[key] = totals.get(key, 0.0) + inflight
        for key, state in self._states.items():
            # requests the activator holds count as load: they are waiting for this service
            waiting = self.gateway.held(f"{key[0]}/{key[1]}")
            if waiting:
                state.last_activity = self.clock()
            state.service_acc.add(totals.get(key, 0.0) + waiting)

    async def decide_all(self) -> None:
        records = await asyncio.to_thread(self.store.all_services)
        now = self.clock()
        report = self.gateway.load_report()
        resting = self.resting()
        live = {r.replica_id for r in self.runtime.replicas()}
        for replica_id in list(self._replica_acc):
            if replica_id not in live:
                del self._replica_acc[replica_id]
        known = set()
        for record in records:
            key = (record.namespace, record.name)
            if record.deleting or (autoscaling_of(record.spec) is None and not prewarm_of(record.spec)):
                continue
            known.add(key)
            state = self._state_for(record)
            replicas = [
                r
                for r in self.runtime.replicas()
                if (r.namespace, r.service) == key and r.replica_id not in resting
            ]
            metrics = []
            rps_total = 0.0
            for r in replicas:
                stats = None
                try:
                    stats = await self.runtime.stats(r.replica_id)
                except Exception:  # a replica that just exited has no stats; it is not a failure here
                    stats = None
                load = report.get(r.replica_id)
                rps = float(getattr(load, "requests_last_second", 0) or 0)
                rps_total += rps
                acc = self._replica_acc.get(r.replica_id)
                metrics.append(
                    ReplicaMetrics(
                        name=r.replica_id,
                        ready=r.ready,
                        running=r.state in (ReplicaState.RUNNING, ReplicaState.STARTING),
                        failed=r.state == ReplicaState.EXITED,
                        cpu_cores=stats.cpu_cores if stats else None,
                        memory_bytes=stats.memory_bytes if stats else None,
                        requests_per_second=rps,
                        inflight=acc.take() if acc else 0.0,
                    )
                )
            concurrency = state.service_acc.take()
            self._decide(record, state, metrics, concurrency, rps_total, now)
        for key in list(self._states):
            if key not in known:
                del self._states[key]

    # --- one decision ---------------------------------------------------------------------------
    def _decide(
        self,
        record: Any,
        state: ServiceScaling,
        replicas: list[ReplicaMetrics],
        concurrency: float,
        rps: float,
        now: float,
    ) -> None:
        scaling = autoscaling_of(record.spec)
        prewarm = prewarm_of(record.spec)
        ready = sum(1 for r in replicas if r.ready)
        if concurrency > 0 or rps > 0:
            state.last_activity = now
        inputs: dict[str, Any] = {
            "readyReplicas": ready,
            "concurrency": round(concurrency, 3),
            "requestsPerSecond": round(rps, 3),
        }
        previous = state.desired
        reason = ""
        if scaling is None:
            desired = int(service_doc(record.spec).get("replicas", 1))
            low, high = desired, 10**6
            reason = "fixed replica count"
        elif state.policy == "kpa" and state.kpa is not None and state.kpa_config is not None:
            low, high = bounds(record.spec)
            metric_value = rps if scaling.get("metric") == "rps" else concurrency
            state.series.append(Sample(now, metric_value))
            while state.series and state.series[0].at < now - HISTORY_SECONDS:
                state.series.popleft()
            config = state.kpa_config
            stable = window_average(list(state.series), now, config.stable_window_seconds)
            panic = window_average(list(state.series), now, config.panic_window_seconds)
            result = state.kpa.scale(now, stable, panic, ready)
            inputs |= {"stableValue": stable, "panicValue": panic, "panic": result.panic,
                       "excessBurstCapacity": result.excess_burst_capacity}  # fmt: skip
            desired = result.desired_pods if result.valid else previous
            reason = result.reason or ("panic mode" if result.panic else "stable window")
            if desired == 0 and low == 0:
                grace = float(scaling.get("scaleToZeroGracePeriodSeconds", 30.0))
                state.zero_since = state.zero_since if state.zero_since is not None else now
                idle_for = now - max(state.zero_since, state.last_activity)
                if idle_for < grace:
                    desired = max(1, previous) if previous > 0 else 0
                    reason = f"idle {idle_for:.0f}s of the {grace:.0f}s scale-to-zero grace period"
                else:
                    reason = f"no traffic for {idle_for:.0f}s: scaling to zero"
            else:
                state.zero_since = None
        else:
            low, high = bounds(record.spec)
            case = hpa_case(record.spec, previous, replicas, state.recommendations, state.scale_events, now)
            decision = hpa_decide(parse_hpa_case(case), 0.0)
            desired = decision.desired_replicas
            reason = decision.reason
            if decision.recommendation is not None:
                state.recommendations.append((now, decision.recommendation))
            inputs["conditions"] = [
                {"type": c.type, "status": c.status, "reason": c.reason, "message": c.message}
                for c in decision.conditions
            ]
            inputs["pods"] = [
                {
                    "name": r.name,
                    "ready": r.ready,
                    "cpu": r.cpu_cores,
                    "memory": r.memory_bytes,
                    "rps": r.requests_per_second,
                    "inflight": r.inflight,
                }  # fmt: skip
                for r in replicas
            ]

        floor, floor_reason = scheduled_floor(windows(record.spec), now)
        if floor > desired:
            desired, reason = floor, floor_reason
        predictive = prewarm.get("predictive")
        if predictive and state.policy == "kpa" and state.kpa_config is not None:
            ahead = forecast(
                list(state.series),
                now,
                float(predictive.get("lookbackSeconds", 300.0)),
                float(predictive.get("horizonSeconds", 60.0)),
            )
            needed = predictive_replicas(ahead, state.kpa_config.target)
            inputs["forecast"] = ahead.value
            if needed is not None and needed > desired:
                desired, reason = (
                    needed,
                    f"forecast {ahead.value:.1f} in {predictive.get('horizonSeconds', 60)}s",
                )
        bounded = clamp(desired, low, high)
        if bounded != desired:
            reason = f"{reason}; clamped to [{low}, {high}]"
        desired = bounded

        state.recommendations = [(t, n) for t, n in state.recommendations if now - t <= HISTORY_SECONDS]
        state.scale_events = [(t, c) for t, c in state.scale_events if now - t <= HISTORY_SECONDS]
        state.decision = {
            "policy": state.policy,
            "desiredReplicas": desired,
            "previousReplicas": previous,
            "reason": reason,
            "inputs": inputs,
            "at": now,
        }
        if desired != previous:
            state.desired = desired
            state.scale_events.append((now, desired - previous))
            direction = "ScaledUp" if desired > previous else "ScaledDown"
            self._event(
                record.namespace,
                record.name,
                direction,
                f"{previous} -> {desired} replicas ({state.policy}): {reason}",
                {"inputs": inputs, "previous": previous, "desired": desired, "reason": reason},
            )
            self.on_change()

    def _event(
        self, namespace: str, name: str, reason: str, message: str, data: dict[str, Any] | None = None
    ) -> None:
        """Record off the event loop: `activate` runs on the gateway's request path."""
        args = (namespace, "Service", name, "autoscaler", reason, message, _jsonable(data))
        self.writer.submit(lambda: self.store.add_event(*args))
        logging.getLogger("gs_engine.events").info("%s/%s %s: %s", namespace, name, reason, message)


def _jsonable(value: Any) -> Any:
    if isinstance(value, float):
        return None if math.isinf(value) or math.isnan(value) else value
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    return value
