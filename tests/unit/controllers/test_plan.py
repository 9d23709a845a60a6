"""The service controller's decisions, with an injected clock and no I/O."""

from __future__ import annotations

import itertools

import pytest

from gs_engine.controllers.plan import (
    CRASH_LOOP_ATTEMPTS,
    DesiredService,
    Draining,
    next_attempt,
    plan_service,
    restart_delay,
    scale_down_order,
)
from gs_engine.runtimes.base import ReplicaObservation, ReplicaState

REV = "aaaaaa111111"
OLD = "bbbbbb222222"


def replica(
    rid: str,
    *,
    revision: str = REV,
    state: ReplicaState = ReplicaState.RUNNING,
    ready: bool = True,
    started_at: float = 0.0,
    exited_at: float | None = None,
    attempt: int = 0,
) -> ReplicaObservation:
    return ReplicaObservation(
        replica_id=rid,
        namespace="default",
        service="web",
        revision=revision,
        state=state,
        ready=ready,
        host="127.0.0.1",
        port=10000 + hash(rid) % 1000,
        started_at=started_at,
        exited_at=exited_at,
        attempt=attempt,
        message="exited with code 1" if state == ReplicaState.EXITED else "",
    )


def desired(replicas: int = 2, revision: str = REV, deleting: bool = False) -> DesiredService:
    return DesiredService("default", "web", revision, replicas, generation=1, deleting=deleting)


def ids() -> object:
    counter = itertools.count()
    return lambda: f"new-{next(counter)}"


def plan(d, observed, now=100.0, draining=None, inflight=None):
    return plan_service(d, observed, draining or {}, inflight or (lambda _: 0), ids(), now)


def test_starts_missing_replicas() -> None:
    result = plan(desired(3), [replica("a")])
    assert [s.replica_id for s in result.start] == ["new-0", "new-1"]
    assert not any(s.restart for s in result.start)
    assert [e.replica_id for e in result.endpoints] == ["a"]


def test_nothing_to_do_when_matching() -> None:
    result = plan(desired(2), [replica("a"), replica("b")])
    assert result.start == () and result.drain == () and result.stop == ()
    assert result.ready_replicas == 2
    available = {c.type: c for c in result.conditions}["Available"]
    assert available.status and available.reason == "MinimumReplicasAvailable"


def test_unready_replicas_get_no_traffic() -> None:
    result = plan(desired(2), [replica("a"), replica("b", state=ReplicaState.STARTING, ready=False)])
    assert [e.replica_id for e in result.endpoints] == ["a"]
    assert {c.type: c for c in result.conditions}["Available"].status is False


def test_scale_down_drains_unready_then_youngest() -> None:
    observed = [
        replica("old", started_at=1.0),
        replica("young", started_at=50.0),
        replica("starting", state=ReplicaState.STARTING, ready=False, started_at=10.0),
    ]
    result = plan(desired(1), observed)
    assert set(result.drain) == {"starting", "young"}
    assert [e.replica_id for e in result.endpoints] == ["old"]
    assert [r.replica_id for r in scale_down_order(observed)] == ["starting", "young", "old"]


def test_draining_replica_stops_only_when_idle() -> None:
    observed = [replica("a"), replica("b")]
    draining = {"b": Draining("b", since=90.0)}
    busy = plan(desired(1), observed, draining=draining, inflight=lambda rid: 3 if rid == "b" else 0)
    assert busy.stop == ()
    assert busy.requeue_after == pytest.approx(90.0 + 30.0 - 100.0)
    idle = plan(desired(1), observed, draining=draining)
    assert idle.stop == ("b",)
    # the draining replica is never an endpoint
    assert [e.replica_id for e in idle.endpoints] == ["a"]


def test_drain_timeout_stops_a_busy_replica() -> None:
    observed = [replica("a"), replica("b")]
    result = plan(desired(1), observed, now=200.0, draining={"b": Draining("b", 100.0)}, inflight=lambda _: 1)
    assert result.stop == ("b",)
    assert any(e.reason == "DrainTimeout" for e in result.events)


def test_crashed_replica_restarts_after_backoff() -> None:
    crashed = replica("a", state=ReplicaState.EXITED, ready=False, started_at=99.0, exited_at=99.5, attempt=2)
    early = plan(desired(1), [crashed], now=99.6)
    assert early.start == ()
    assert early.requeue_after == pytest.approx(99.5 + restart_delay(3) - 99.6)
    late = plan(desired(1), [crashed], now=99.5 + restart_delay(3))
    assert [(s.replica_id, s.attempt, s.restart) for s in late.start] == [("a", 3, True)]


def test_backoff_grows_and_is_capped() -> None:
    delays = [restart_delay(n) for n in range(1, 12)]
    assert delays == sorted(delays)
    assert delays[1] == 2 * delays[0]
    assert max(delays) == restart_delay(100)


def test_long_run_resets_backoff() -> None:
    long_run = replica("a", state=ReplicaState.EXITED, started_at=0.0, exited_at=1000.0, attempt=7)
    assert next_attempt(long_run) == 1
    short_run = replica("a", state=ReplicaState.EXITED, started_at=999.0, exited_at=1000.0, attempt=7)
    assert next_attempt(short_run) == 8


def test_crash_loop_shows_in_conditions() -> None:
    crashed = replica(
        "a",
        state=ReplicaState.EXITED,
        ready=False,
        started_at=99.0,
        exited_at=99.5,
        attempt=CRASH_LOOP_ATTEMPTS,
    )
    result = plan(desired(1), [crashed])
    failure = {c.type: c for c in result.conditions}["ReplicaFailure"]
    assert failure.status and failure.reason == "CrashLoopBackOff"
    assert "exited with code 1" in failure.message


def test_rollout_keeps_old_until_new_ready() -> None:
    old = [replica("o1", revision=OLD), replica("o2", revision=OLD)]
    first = plan(desired(2), old)
    assert len(first.start) == 2
    assert first.drain == ()
    assert {e.replica_id for e in first.endpoints} == {"o1", "o2"}
    assert {c.type: c for c in first.conditions}["Progressing"].reason == "RollingOut"

    half = old + [replica("n1"), replica("n2", state=ReplicaState.STARTING, ready=False)]
    second = plan(desired(2), half)
    assert second.start == () and second.drain == ()
    assert {e.replica_id for e in second.endpoints} == {"o1", "o2", "n1"}

    done = old + [replica("n1"), replica("n2")]
    third = plan(desired(2), done)
    assert set(third.drain) == {"o1", "o2"}
    assert {e.replica_id for e in third.endpoints} == {"n1", "n2"}
    assert any(e.reason == "RolloutComplete" for e in third.events)


def test_exited_old_revision_is_forgotten_not_restarted() -> None:
    result = plan(
        desired(1), [replica("o", revision=OLD, state=ReplicaState.EXITED, ready=False), replica("n")]
    )
    assert result.forget == ("o",)
    assert result.start == ()


def test_delete_drains_everything_then_finishes() -> None:
    observed = [replica("a"), replica("b")]
    result = plan(desired(2, deleting=True), observed)
    assert set(result.drain) == {"a", "b"}
    assert result.endpoints == ()
    assert not result.finished_deleting
    assert plan(desired(2, deleting=True), []).finished_deleting


def test_scale_to_zero_is_available() -> None:
    result = plan(desired(0), [replica("a")])
    assert result.drain == ("a",)
    assert {c.type: c for c in result.conditions}["Available"].reason == "ScaledToZero"


def test_warm_standbys_are_started_but_not_routed() -> None:
    d = DesiredService("default", "web", REV, replicas=1, generation=1, warm=2)
    starting = plan(d, [])
    assert len(starting.start) == 3
    observed = [replica("a", started_at=1.0), replica("b", started_at=2.0), replica("c", started_at=3.0)]
    steady = plan(d, observed)
    assert steady.start == () and steady.drain == ()
    assert [e.replica_id for e in steady.endpoints] == ["a"]
    assert [s.replica_id for s in steady.standby] == ["b", "c"]


def test_standby_is_promoted_at_once_when_load_rises() -> None:
    observed = [replica("a", started_at=1.0), replica("b", started_at=2.0), replica("c", started_at=3.0)]
    up = DesiredService("default", "web", REV, replicas=2, generation=1, warm=2)
    result = plan(up, observed)
    assert [e.replica_id for e in result.endpoints] == ["a", "b"]  # b serves in this very pass
    assert [s.replica_id for s in result.standby] == ["c"]
    assert len(result.start) == 1  # and the pool is refilled


def test_unready_standby_is_not_promoted() -> None:
    observed = [replica("a", started_at=1.0), replica("b", state=ReplicaState.STARTING, ready=False)]
    result = plan(DesiredService("default", "web", REV, replicas=2, generation=1, warm=0), observed)
    assert [e.replica_id for e in result.endpoints] == ["a"]
