"""What the service controller should do next: a pure function of desired and observed state.

No I/O and no clock reads here: `plan_service` takes `now` and returns a `ServicePlan` that the
controller (controllers/services.py) carries out.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from gs_engine.runtimes.base import ReplicaObservation, ReplicaState

RESTART_BASE_DELAY = 0.5
RESTART_MAX_DELAY = 30.0
RESTART_RESET_AFTER = 60.0  # a replica that ran this long before crashing starts its back-off anew
CRASH_LOOP_ATTEMPTS = 3
DRAIN_TIMEOUT = 30.0


@dataclass(frozen=True)
class DesiredService:
    namespace: str
    name: str
    revision: str
    replicas: int
    generation: int
    deleting: bool = False
    warm: int = 0  # standby replicas: started and ready, but out of rotation until promoted


@dataclass(frozen=True)
class Draining:
    replica_id: str
    since: float


@dataclass(frozen=True)
class ReplicaToStart:
    replica_id: str
    attempt: int
    restart: bool  # True: the slot's previous process exited and is replaced under the same id


@dataclass(frozen=True)
class PlanEvent:
    reason: str
    message: str


@dataclass(frozen=True)
class Condition:
    type: str
    status: bool
    reason: str
    message: str = ""


@dataclass(frozen=True)
class ServicePlan:
    start: tuple[ReplicaToStart, ...] = ()
    drain: tuple[str, ...] = ()  # take out of rotation now; stop once idle
    stop: tuple[str, ...] = ()  # drained (or never served): stop now
    forget: tuple[str, ...] = ()  # exited replicas of an old revision: remove without restart
    endpoints: tuple[ReplicaObservation, ...] = ()  # ready replicas that should receive traffic
    standby: tuple[ReplicaObservation, ...] = ()  # ready warm replicas kept out of rotation
    desired_replicas: int = 0
    ready_replicas: int = 0
    updated_replicas: int = 0
    conditions: tuple[Condition, ...] = ()
    events: tuple[PlanEvent, ...] = ()
    finished_deleting: bool = False
    requeue_after: float | None = None  # when a back-off or drain ends, if sooner than the next tick


def restart_delay(attempt: int) -> float:
    """Exponential back-off before restart number `attempt` (1-based), capped."""
    if attempt <= 0:
        return 0.0
    return min(RESTART_MAX_DELAY, RESTART_BASE_DELAY * (2 ** (attempt - 1)))


def next_attempt(replica: ReplicaObservation) -> int:
    """The attempt number a restart of this exited replica gets: back-off resets after a long run."""
    ran_for = (replica.exited_at or 0.0) - (replica.started_at or 0.0)
    if replica.started_at is not None and replica.exited_at is not None and ran_for >= RESTART_RESET_AFTER:
        return 1
    return replica.attempt + 1


def scale_down_order(replicas: Sequence[ReplicaObservation]) -> list[ReplicaObservation]:
    """Which replicas to remove first: not ready before ready, then the youngest."""
    return sorted(replicas, key=lambda r: (r.ready, -(r.started_at or 0.0)))


def plan_service(
    desired: DesiredService,
    observed: Sequence[ReplicaObservation],
    draining: Mapping[str, Draining],
    inflight: Callable[[str], int],
    new_replica_id: Callable[[], str],
    now: float,
    *,
    drain_timeout: float = DRAIN_TIMEOUT,
) -> ServicePlan:
    events: list[PlanEvent] = []
    start: list[ReplicaToStart] = []
    drain: list[str] = []
    stop: list[str] = []
    forget: list[str] = []
    wake: list[float] = []

    # Drains in progress: stop those that are idle or past the timeout.
    for replica in observed:
        entry = draining.get(replica.replica_id)
        if entry is None:
            continue
        busy = inflight(replica.replica_id)
        if busy == 0 or replica.state == ReplicaState.EXITED or now - entry.since >= drain_timeout:
            stop.append(replica.replica_id)
            if busy:
                events.append(
                    PlanEvent(
                        "DrainTimeout",
                        f"replica {replica.replica_id} still had {busy} requests after {drain_timeout:.0f}s",
                    )
                )
        else:
            wake.append(entry.since + drain_timeout)

    active = [r for r in observed if r.replica_id not in draining]

    if desired.deleting:
        for replica in active:
            drain.append(replica.replica_id)
        finished = not observed
        return ServicePlan(
            drain=tuple(drain),
            stop=tuple(stop),
            desired_replicas=0,
            events=tuple(events),
            finished_deleting=finished,
            conditions=(Condition("Deleting", True, "Draining", f"{len(observed)} replicas left"),),
        )

    current = [r for r in active if r.revision == desired.revision]
    old = [r for r in active if r.revision != desired.revision]

    # Old-revision replicas that exited are not restarted.
    for replica in old:
        if replica.state == ReplicaState.EXITED:
            forget.append(replica.replica_id)
    old = [r for r in old if r.state != ReplicaState.EXITED]

    # Crashed replicas of the current revision restart in place after a back-off.
    crash_looping: list[ReplicaObservation] = []
    for replica in current:
        if replica.state != ReplicaState.EXITED:
            if replica.attempt >= CRASH_LOOP_ATTEMPTS and not replica.ready:
                crash_looping.append(replica)
            continue
        attempt = next_attempt(replica)
        due = (replica.exited_at or now) + restart_delay(attempt)
        if attempt >= CRASH_LOOP_ATTEMPTS:
            crash_looping.append(replica)
        if now >= due:
            start.append(ReplicaToStart(replica.replica_id, attempt, restart=True))
            events.append(
                PlanEvent(
                    "Restarting",
                    f"replica {replica.replica_id} {replica.message or 'exited'}; restart #{attempt}",
                )
            )
        else:
            wake.append(due)

    # Scale the current revision to the desired count plus its warm standbys.
    missing = desired.replicas + desired.warm - len(current)
    for _ in range(max(0, missing)):
        replica_id = new_replica_id()
        start.append(ReplicaToStart(replica_id, 0, restart=False))
    if missing > 0:
        events.append(PlanEvent("ScalingUp", f"starting {missing} replica(s) of revision {desired.revision}"))
    surplus = -missing
    if surplus > 0:
        victims = scale_down_order(current)[:surplus]
        drain.extend(r.replica_id for r in victims)
        current = [r for r in current if r.replica_id not in {v.replica_id for v in victims}]
        events.append(PlanEvent("ScalingDown", f"draining {surplus} replica(s)"))

    ready_current = sorted(
        (r for r in current if r.ready and r.state == ReplicaState.RUNNING),
        key=lambda r: (r.started_at or 0.0, r.replica_id),
    )
    # The longest-running ready replicas serve; the rest wait warm, promoted as soon as more serve.
    standby = ready_current[desired.replicas :]
    ready_current = ready_current[: desired.replicas]
    ready_old = [r for r in old if r.ready and r.state == ReplicaState.RUNNING]

    # Rollout: old replicas leave only once the new revision is fully ready.
    if old and len(ready_current) >= desired.replicas:
        drain.extend(r.replica_id for r in old)
        events.append(
            PlanEvent(
                "RolloutComplete",
                f"revision {desired.revision} ready on {len(ready_current)} replica(s); "
                f"draining {len(old)} old replica(s)",
            )
        )
        ready_old = []

    endpoints = tuple(sorted(ready_current + ready_old, key=lambda r: r.replica_id))
    conditions = _conditions(desired, ready_current, ready_old, old, crash_looping)
    return ServicePlan(
        start=tuple(start),
        drain=tuple(drain),
        stop=tuple(stop),
        forget=tuple(forget),
        endpoints=endpoints,
        standby=tuple(standby),
        desired_replicas=desired.replicas,
        ready_replicas=len(endpoints),
        updated_replicas=len(current),
        conditions=conditions,
        events=tuple(events),
        requeue_after=(min(wake) - now) if wake else None,
    )


def _conditions(
    desired: DesiredService,
    ready_current: Sequence[ReplicaObservation],
    ready_old: Sequence[ReplicaObservation],
    old: Sequence[ReplicaObservation],
    crash_looping: Sequence[ReplicaObservation],
) -> tuple[Condition, ...]:
    serving = len(ready_current) + len(ready_old)
    if desired.replicas == 0:
        available = Condition("Available", True, "ScaledToZero", "no replicas requested")
    elif serving >= desired.replicas or (serving > 0 and old):
        available = Condition("Available", True, "MinimumReplicasAvailable", f"{serving} ready")
    elif serving > 0:
        available = Condition(
            "Available", False, "MinimumReplicasUnavailable", f"{serving}/{desired.replicas} ready"
        )
    else:
        available = Condition("Available", False, "NoReplicaReady", f"0/{desired.replicas} ready")

    if old:
        progressing = Condition(
            "Progressing",
            True,
            "RollingOut",
            f"revision {desired.revision}: {len(ready_current)}/{desired.replicas} ready",
        )
    elif len(ready_current) >= desired.replicas:
        progressing = Condition("Progressing", True, "RolloutComplete", f"revision {desired.revision}")
    else:
        progressing = Condition("Progressing", True, "StartingReplicas", f"revision {desired.revision}")

    if crash_looping:
        worst = max(crash_looping, key=lambda r: r.attempt)
        failure = Condition(
            "ReplicaFailure",
            True,
            "CrashLoopBackOff",
            f"replica {worst.replica_id} restarted {worst.attempt} times; last: {worst.message or 'exited'}",
        )
    else:
        failure = Condition("ReplicaFailure", False, "NoFailures")
    return (available, progressing, failure)
