"""The service controller: keeps each service's replicas, routes and status matching the store.

Level-triggered: every pass reads all desired state and all observed replicas and closes the
difference (`plan.plan_service` decides, this module acts). `poke()` forces a pass at once.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from gs_engine.autoscaling.live import service_doc
from gs_engine.controllers.plan import DesiredService, Draining, ServicePlan, plan_service
from gs_engine.controllers.tasks import cancel_and_wait
from gs_engine.controllers.writer import BackgroundWriter
from gs_engine.errors import GseError
from gs_engine.gateway.routes import Endpoint, RouteConfig
from gs_engine.runtimes.base import ReplicaObservation, ReplicaRequest, ReplicaState, Runtime
from gs_engine.store import Store

log = logging.getLogger("gs_engine.controllers.services")
events_log = logging.getLogger("gs_engine.events")  # one line per event, shown by `gse up`

ZYGOTE_REWARM_SECONDS = 30.0  # how often a service's zygote is asked for (restarts it after a crash)
CREATE_RETRY_BASE = 1.0
CREATE_RETRY_MAX = 30.0


class ReplicaTargets(Protocol):
    def target(self, record: Any) -> tuple[int, int] | None: ...

    def status(self, namespace: str, name: str) -> dict[str, Any] | None: ...


class Recommender(Protocol):
    def recommendation(self, namespace: str, name: str) -> dict[str, Any] | None: ...


class RoutePublisher(Protocol):
    def set_routes(self, routes: Sequence[RouteConfig]) -> None: ...

    def inflight(self, endpoint_id: str) -> int: ...


@dataclass
class _CreateFailure:
    count: int
    retry_at: float
    message: str


@dataclass
class ControllerMetrics:
    passes: int = 0
    errors: int = 0
    last_duration: float = 0.0
    durations: list[float] = field(default_factory=list)


def route_for(record: Any, endpoints: Sequence[ReplicaObservation], *, hold: bool = True) -> RouteConfig:
    """The gateway route of a service. `hold=False` turns off holding requests at zero replicas
    (a crash-looping service answers 503 at once instead of after the activation deadline)."""
    doc = service_doc(record.spec)
    route = doc.get("route") or {}
    prefix = route.get("pathPrefix") or f"/{record.namespace}/{record.name}"
    timeout = route.get("timeoutSeconds")
    scaling = doc.get("autoscaling") or {}
    extra: dict[str, Any] = {}
    if route.get("retries") is not None:
        extra["retries"] = int(route["retries"])
    return RouteConfig(
        name=f"{record.namespace}/{record.name}",
        namespace=record.namespace,
        service=record.name,
        path_prefix=prefix,
        host=route.get("host") or None,
        strip_prefix=route.get("stripPrefix", True),
        endpoints=tuple(Endpoint(r.replica_id, r.host, r.port) for r in endpoints),
        response_timeout=float(timeout) if timeout else 60.0,
        activate=hold and int(scaling.get("minReplicas", 1)) == 0,  # scale from zero: hold, don't refuse
        **extra,
    )


def replica_name(namespace: str, service: str, revision: str) -> str:
    return f"{namespace}.{service}-{revision[:6]}-{secrets.token_hex(3)}"


class ServiceController:
    def __init__(
        self,
        store: Store,
        runtime: Runtime,
        gateway: RoutePublisher,
        *,
        gateway_url: str = "",
        interval: float = 1.0,
        clock: Callable[[], float] = time.time,
        drain_timeout: float = 30.0,
        stop_grace: float = 10.0,
    ) -> None:
        self.store = store
        self.runtime = runtime
        self.gateway = gateway
        self.gateway_url = gateway_url.rstrip("/")
        self.interval = interval
        self.clock = clock
        self.drain_timeout = drain_timeout
        self.stop_grace = stop_grace
        self.metrics = ControllerMetrics()
        self.targets: ReplicaTargets | None = None  # the autoscaler, when one runs
        self.recommender: Recommender | None = None  # right-sizing (VPA-style), when one runs
        self._draining: dict[str, Draining] = {}
        self._create_failures: dict[tuple[str, str], _CreateFailure] = {}
        self._last_status: dict[tuple[str, str], dict[str, Any]] = {}
        self._last_replicas: dict[tuple[str, str], list[tuple[Any, ...]]] = {}
        self._wake = asyncio.Event()
        self._stopping: set[str] = set()
        self._task: asyncio.Task[None] | None = None
        self._pass_lock = asyncio.Lock()
        self._background: set[asyncio.Task[None]] = set()
        self._standby: set[str] = set()
        self._zygote_warmed: dict[tuple[str, str, str], float] = {}
        self._records: list[Any] | None = None
        self._reread = True
        self._observed_generation: dict[tuple[str, str], int] = {}
        self.writer = BackgroundWriter("service-controller-writes")

    def draining_ids(self) -> set[str]:
        return set(self._draining)

    def resting_ids(self) -> set[str]:
        """Replicas that serve no traffic: draining, or warm standbys out of rotation."""
        return set(self._draining) | self._standby

    # --- loop -----------------------------------------------------------------------------
    def poke(self, reread: bool = True) -> None:
        """Run a pass now instead of at the next tick. `reread=False` when only observed state
        changed (a replica's readiness, an autoscaler target): the pass reuses the records it has."""
        if reread:
            self._reread = True
        self._wake.set()

    def observed_changed(self) -> None:
        self.poke(reread=False)

    async def flush(self) -> None:
        """Wait until every status, event and replica row decided so far is in the store."""
        await self.writer.flush()

    def start(self) -> None:
        self.runtime.watch(self.observed_changed)
        self._task = asyncio.create_task(self._run(), name="service-controller")

    async def close(self) -> None:
        await cancel_and_wait(self._task)
        for task in list(self._background):
            task.cancel()
        if self._background:
            await asyncio.gather(*self._background, return_exceptions=True)
        await self.writer.close()

    async def _run(self) -> None:
        delay = 0.0
        while True:
            try:
                await asyncio.wait_for(self._wake.wait(), timeout=delay)
            except TimeoutError:
                self._reread = True  # the periodic pass reads desired state afresh
            self._wake.clear()
            requeue = await self.reconcile_once()
            delay = self.interval if requeue is None else max(0.05, min(self.interval, requeue))

    async def reconcile_once(self) -> float | None:
        """One level-triggered pass over every service. Returns the soonest requested requeue."""
        async with self._pass_lock:
            started = time.perf_counter()
            try:
                return await self._reconcile()
            except Exception:
                self.metrics.errors += 1
                log.exception("service reconcile pass failed")
                return None
            finally:
                self.metrics.passes += 1
                self.metrics.last_duration = time.perf_counter() - started

    # --- one pass -------------------------------------------------------------------------
    async def _reconcile(self) -> float | None:
        if self._reread or self._records is None:
            self._reread = False
            self._records = await asyncio.to_thread(self.store.all_services)
        records = self._records
        observed_by_service: dict[tuple[str, str], list[ReplicaObservation]] = defaultdict(list)
        for replica in self.runtime.replicas():
            if replica.replica_id in self._stopping:
                continue
            observed_by_service[(replica.namespace, replica.service)].append(replica)

        known = {(r.namespace, r.name) for r in records}
        for key, replicas in observed_by_service.items():
            if key not in known:  # left by a previous engine for a service that no longer exists
                for replica in replicas:
                    self._stop_in_background(replica.replica_id, "orphan")

        now = self.clock()
        standby: set[str] = set()
        routes: list[RouteConfig] = []
        requeues: list[float] = []
        plans: list[tuple[Any, DesiredService, ServicePlan, list[ReplicaObservation]]] = []
        for record in records:
            key = (record.namespace, record.name)
            observed = observed_by_service.get(key, [])
            target = self.targets.target(record) if self.targets else None
            replicas, warm = target if target else (int(service_doc(record.spec).get("replicas", 1)), 0)
            desired = DesiredService(
                namespace=record.namespace,
                name=record.name,
                revision=record.revision,
                replicas=replicas,
                generation=record.generation,
                deleting=record.deleting,
                warm=warm,
            )
            plan = plan_service(
                desired,
                observed,
                self._draining,
                self.gateway.inflight,
                lambda d=desired: replica_name(d.namespace, d.name, d.revision),  # type: ignore[misc]
                now,
                drain_timeout=self.drain_timeout,
            )
            standby.update(r.replica_id for r in plan.standby)
            if not record.deleting:
                failing = key in self._create_failures or any(
                    c.type == "ReplicaFailure" and c.status for c in plan.conditions
                )
                routes.append(route_for(record, plan.endpoints, hold=not failing))
            plans.append((record, desired, plan, observed))

        # Publish before acting: a draining replica leaves rotation before it is stopped, and a
        # slow start (a zygote importing its modules) does not hold back other services' routes.
        self._standby = standby
        self.gateway.set_routes(routes)
        self._keep_zygotes_warm(records, now)
        for record, desired, plan, observed in plans:
            requeue = await self._act(record, desired, plan, observed, now)
            if requeue is not None:
                requeues.append(requeue)
            if plan.requeue_after is not None:
                requeues.append(plan.requeue_after)
        return min(requeues) if requeues else None

    async def _act(
        self,
        record: Any,
        desired: DesiredService,
        plan: ServicePlan,
        observed: Sequence[ReplicaObservation],
        now: float,
    ) -> float | None:
        key = (record.namespace, record.name)
        for event in plan.events:
            await self._event(record, event.reason, event.message)

        for replica_id in plan.drain:
            self._draining.setdefault(replica_id, Draining(replica_id, now))
        for replica_id in plan.stop + plan.forget:
            self._draining.pop(replica_id, None)
            self._stop_in_background(replica_id, "drained")

        requeue: float | None = None
        if plan.start:
            requeue = await self._start_replicas(record, desired, plan)

        # a replica still being stopped keeps the service (and its event history) until it is gone
        if plan.finished_deleting and not any(
            (r.namespace, r.service) == key for r in self.runtime.replicas()
        ):
            await self.writer.flush()
            await asyncio.to_thread(self.store.remove_service, record.namespace, record.name)
            self._reread = True
            retire = getattr(self.runtime, "retire_zygotes", None)
            if retire is not None:
                await retire(record.namespace, record.name)
            await self._event(record, "Deleted", "all replicas stopped; service removed")
            self._last_status.pop(key, None)
            self._last_replicas.pop(key, None)
            self._observed_generation.pop(key, None)
            self._create_failures.pop(key, None)
            return requeue

        await self._write_status(record, plan, observed)
        return requeue

    async def _start_replicas(self, record: Any, desired: DesiredService, plan: ServicePlan) -> float | None:
        key = (record.namespace, record.name)
        failure = self._create_failures.get(key)
        now = self.clock()
        fresh = [s for s in plan.start if not s.restart]
        if failure and fresh and now < failure.retry_at:
            return failure.retry_at - now
        for slot in plan.start:
            if slot.restart:
                await self.runtime.stop_replica(slot.replica_id, grace_seconds=0)
            request = ReplicaRequest(
                replica_id=slot.replica_id,
                namespace=record.namespace,
                service=record.name,
                revision=desired.revision,
                spec=record.spec,
                attempt=slot.attempt,
            )
            try:
                await self.runtime.run_replica(request)
            except GseError as exc:
                count = failure.count + 1 if failure else 1
                delay = min(CREATE_RETRY_MAX, CREATE_RETRY_BASE * 2 ** (count - 1))
                failure = _CreateFailure(count, now + delay, str(exc))
                self._create_failures[key] = failure
                await self._event(record, "FailedCreate", f"replica {slot.replica_id}: {exc}")
                return delay
            await self._event(record, "Started", f"replica {slot.replica_id} (attempt {slot.attempt})")
        self._create_failures.pop(key, None)
        return None

    def _keep_zygotes_warm(self, records: Sequence[Any], now: float) -> None:
        """A service with a zygote keeps its warm parent even at zero replicas: scale from zero forks."""
        warm = getattr(self.runtime, "warm_zygote", None)
        if warm is None:
            return
        wanted = set()
        for record in records:
            prewarm = service_doc(record.spec).get("prewarm") or {}
            if record.deleting or not prewarm.get("zygote"):
                continue
            key = (record.namespace, record.name, record.revision)
            wanted.add(key)
            if now - self._zygote_warmed.get(key, float("-inf")) < ZYGOTE_REWARM_SECONDS:
                continue
            self._zygote_warmed[key] = now

            async def warm_up(record: Any = record) -> None:
                try:
                    await warm(record.spec, record.revision)
                except GseError as exc:
                    await self._event(record, "ZygoteFailed", str(exc))

            task = asyncio.create_task(warm_up(), name=f"zygote-{record.namespace}.{record.name}")
            self._background.add(task)
            task.add_done_callback(self._background.discard)
        for key in set(self._zygote_warmed) - wanted:
            del self._zygote_warmed[key]

    def _stop_in_background(self, replica_id: str, why: str) -> None:
        if replica_id in self._stopping:
            return
        self._stopping.add(replica_id)

        async def stop() -> None:
            try:
                await self.runtime.stop_replica(replica_id, grace_seconds=self.stop_grace)
            except Exception:
                log.exception("stopping replica %s (%s) failed", replica_id, why)
            finally:
                self._stopping.discard(replica_id)
                self.poke()

        task = asyncio.create_task(stop(), name=f"stop-{replica_id}")
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _event(
        self, record: Any, reason: str, message: str, data: dict[str, Any] | None = None
    ) -> None:
        args = (record.namespace, "Service", record.name, "service-controller", reason, message, data)
        self.writer.submit(lambda: self.store.add_event(*args))
        events_log.info("%s/%s %s: %s", record.namespace, record.name, reason, message)

    async def _write_status(
        self, record: Any, plan: ServicePlan, observed: Sequence[ReplicaObservation]
    ) -> None:
        key = (record.namespace, record.name)
        failure = self._create_failures.get(key)
        conditions = [
            {
                "type": c.type,
                "status": "True" if c.status else "False",
                "reason": c.reason,
                "message": c.message,
            }
            for c in plan.conditions
        ]
        if failure:
            conditions = [c for c in conditions if c["type"] != "ReplicaFailure"]
            conditions.append(
                {
                    "type": "ReplicaFailure",
                    "status": "True",
                    "reason": "FailedCreate",
                    "message": failure.message,
                }
            )
        route = route_for(record, ())
        url = (
            self.gateway_url + route.path_prefix
            if not route.host
            else f"http://{route.host}{route.path_prefix}"
        )
        status = {
            "revision": record.revision,
            "desiredReplicas": plan.desired_replicas,
            "readyReplicas": plan.ready_replicas,
            "updatedReplicas": plan.updated_replicas,
            "replicas": len(observed),
            "warmReplicas": len(plan.standby),
            "standby": [r.replica_id for r in plan.standby],
            "endpoints": [{"replica": r.replica_id, "host": r.host, "port": r.port} for r in plan.endpoints],
            "url": url,
            "route": {"pathPrefix": route.path_prefix, "host": route.host},
            "conditions": conditions,
        }
        decision = self.targets.status(record.namespace, record.name) if self.targets else None
        if decision:
            status["autoscaler"] = {k: v for k, v in decision.items() if k not in ("inputs", "at")}
        recommendation = self.recommender.recommendation(*key) if self.recommender else None
        if recommendation:
            status["recommendation"] = recommendation
        namespace, name, generation = record.namespace, record.name, record.generation
        written = self._observed_generation.get(key, record.observed_generation)
        if self._last_status.get(key) != status or written != generation:
            self.writer.submit(lambda: self.store.update_status(namespace, name, status, generation))
            self._last_status[key] = status
            self._observed_generation[key] = generation
        rows = [_replica_row(r, self._draining) for r in observed]
        signature = [tuple(sorted(row.items())) for row in rows]
        if self._last_replicas.get(key) != signature:
            self.writer.submit(lambda: self._sync_replicas(namespace, name, rows))
            self._last_replicas[key] = signature

    def _sync_replicas(self, namespace: str, service: str, rows: list[dict[str, Any]]) -> None:
        from gs_engine.store import ReplicaRecord

        self.store.sync_replicas(namespace, service, [ReplicaRecord(**row) for row in rows])


def _replica_row(replica: ReplicaObservation, draining: dict[str, Draining]) -> dict[str, Any]:
    state = replica.state.value
    if replica.replica_id in draining and replica.state != ReplicaState.EXITED:
        state = "Draining"
    return {
        "replica_id": replica.replica_id,
        "namespace": replica.namespace,
        "service": replica.service,
        "revision": replica.revision,
        "state": state,
        "ready": replica.ready,
        "host": replica.host,
        "port": replica.port,
        "pid": replica.pid,
        "node": replica.node,
        "attempt": replica.attempt,
        "message": replica.message,
    }
