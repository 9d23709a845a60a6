"""Namespaces, the replica mirror, events and tokens."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from gs_engine.errors import Conflict, InvalidInput, NotFound
from gs_engine.store import ReplicaRecord, Store

from .conftest import StepClock


def test_namespaces_create_get_list(store: Store, clock: StepClock) -> None:
    created = store.create_namespace("team", {"owner": "ml"})
    assert (created.name, created.labels, created.created_at) == ("team", {"owner": "ml"}, clock.now)
    assert store.get_namespace("team") == created
    with pytest.raises(Conflict, match="team"):
        store.create_namespace("team")
    assert store.ensure_namespace("team") == created  # existing one returned as it is
    store.ensure_namespace("default")
    assert [ns.name for ns in store.list_namespaces()] == ["default", "team"]
    with pytest.raises(NotFound, match="nowhere"):
        store.get_namespace("nowhere")
    with pytest.raises(InvalidInput):
        store.create_namespace("")


def test_namespace_with_services_cannot_be_deleted(store: Store) -> None:
    store.apply_service("team", "digits", {}, {}, "r1", [])
    with pytest.raises(Conflict) as err:
        store.delete_namespace("team")
    assert "digits" in err.value.message and "delete its services first" in err.value.fix
    assert store.get_namespace("team").name == "team"

    store.remove_service("team", "digits")
    store.delete_namespace("team")
    with pytest.raises(NotFound):
        store.get_namespace("team")
    with pytest.raises(NotFound):
        store.delete_namespace("team")


def replica(rid: str, service: str = "digits", state: str = "Running", **kw: object) -> ReplicaRecord:
    return ReplicaRecord(rid, "default", service, "r1", state, **kw)  # type: ignore[arg-type]


def test_sync_replicas_replaces_one_services_rows(store: Store, clock: StepClock) -> None:
    started = datetime(2025, 3, 1, 11, 0, tzinfo=UTC)
    store.sync_replicas(
        "default",
        "digits",
        [replica("d1", ready=True, host="127.0.0.1", port=9001, pid=42, started_at=started), replica("d2")],
    )
    store.sync_replicas("default", "other", [replica("o1", service="other")])

    listed = store.list_replicas(service="digits")
    assert [r.replica_id for r in listed] == ["d1", "d2"]
    first = listed[0]
    assert (first.ready, first.host, first.port, first.pid, first.started_at) == (
        True,
        "127.0.0.1",
        9001,
        42,
        started,
    )
    assert first.updated_at == clock.now  # filled in by the store

    store.sync_replicas("default", "digits", [replica("d3", state="Starting", attempt=2, message="probing")])
    assert [r.replica_id for r in store.list_replicas(namespace="default")] == ["d3", "o1"]
    assert store.list_replicas(service="digits")[0].attempt == 2
    store.sync_replicas("default", "digits", [])
    assert [r.replica_id for r in store.list_replicas()] == ["o1"]


def test_sync_replicas_rejects_rows_of_another_service(store: Store) -> None:
    with pytest.raises(InvalidInput, match="other"):
        store.sync_replicas("default", "digits", [replica("o1", service="other")])
    with pytest.raises(InvalidInput):
        store.sync_replicas("default", "digits", [replica("d1"), replica("d1")])
    assert store.list_replicas() == []


def test_remove_service_drops_its_replica_rows(store: Store) -> None:
    store.apply_service("default", "digits", {}, {}, "r1", [])
    store.sync_replicas("default", "digits", [replica("d1")])
    store.remove_service("default", "digits")
    assert store.list_replicas() == []


def test_events_newest_first_with_filters(store: Store, clock: StepClock) -> None:
    store.add_event("default", "Service", "a", "services", "Created", "created a", {"replicas": 1})
    clock.advance()
    store.add_event("team", "Service", "b", "services", "Created", "created b")
    clock.advance()
    store.add_event("default", "Service", "a", "autoscaler", "Scaled", "1 -> 3", {"from": 1, "to": 3})

    events = store.list_events()
    assert [e.message for e in events] == ["1 -> 3", "created b", "created a"]
    assert events[0].at == clock.now and events[0].data == {"from": 1, "to": 3}
    assert events[1].data == {}
    assert [e.reason for e in store.list_events(namespace="default")] == ["Scaled", "Created"]
    assert [e.message for e in store.list_events(object_name="b")] == ["created b"]
    assert [e.message for e in store.list_events(limit=1)] == ["1 -> 3"]


def test_prune_events_keeps_the_newest(store: Store, clock: StepClock) -> None:
    for i in range(7):
        store.add_event("default", "Service", "a", "services", "Tick", f"event {i}")
        clock.advance()
    assert store.prune_events(keep=3) == 4
    assert [e.message for e in store.list_events()] == ["event 6", "event 5", "event 4"]
    assert store.prune_events(keep=3) == 0
    assert store.prune_events(keep=0) == 3
    assert store.list_events() == []


def test_tokens_store_hashes_and_track_use(store: Store, clock: StepClock) -> None:
    assert store.has_tokens() is False
    store.add_token("admin", "sha256:aaa")
    assert store.has_tokens() is True
    with pytest.raises(Conflict, match="admin"):
        store.add_token("admin", "sha256:bbb")
    with pytest.raises(Conflict):
        store.add_token("ci", "sha256:aaa")

    created_at = clock.now
    clock.advance(60)
    found = store.find_token("sha256:aaa")
    assert found is not None
    assert (found.name, found.created_at, found.last_used_at) == ("admin", created_at, clock.now)
    assert store.find_token("sha256:nope") is None

    store.add_token("ci", "sha256:ccc")
    assert [t.name for t in store.list_tokens()] == ["admin", "ci"]
    store.delete_token("ci")
    assert store.find_token("sha256:ccc") is None
    with pytest.raises(NotFound):
        store.delete_token("ci")
