"""Services and routes: apply (create/update/unchanged), route conflicts, listing, scale, delete."""

from __future__ import annotations

from datetime import UTC

import pytest

from gs_engine.errors import Conflict, InvalidInput, NotFound
from gs_engine.store import RouteRecord, Store

from .conftest import StepClock


def spec(replicas: int = 1, image: str = "digits:1") -> dict[str, object]:
    return {"service": {"replicas": replicas}, "container": {"image": image}}


def test_apply_creates_then_reports_unchanged(store: Store, clock: StepClock) -> None:
    record, outcome = store.apply_service("default", "digits", spec(), {"app": "digits"}, "r1", [("", "/d")])
    assert outcome == "created"
    assert (record.namespace, record.name, record.generation, record.observed_generation) == (
        "default",
        "digits",
        1,
        0,
    )
    assert record.spec == spec() and record.labels == {"app": "digits"} and record.revision == "r1"
    assert record.created_at == clock.now and record.created_at.tzinfo == UTC
    assert store.get_namespace("default").name == "default"  # created on the way

    clock.advance()
    again, outcome = store.apply_service("default", "digits", spec(), {"app": "digits"}, "r1", [("", "/d")])
    assert outcome == "unchanged"
    assert again.generation == 1 and again.updated_at == record.updated_at


def test_generation_bumps_only_when_spec_changes(store: Store, clock: StepClock) -> None:
    store.apply_service("default", "digits", spec(), {"app": "digits"}, "r1", [("", "/d")])
    clock.advance()
    relabelled, outcome = store.apply_service("default", "digits", spec(), {"app": "x"}, "r1", [("", "/d")])
    assert outcome == "updated" and relabelled.generation == 1 and relabelled.labels == {"app": "x"}
    assert relabelled.updated_at == clock.now

    changed, outcome = store.apply_service(
        "default", "digits", spec(image="digits:2"), {}, "r2", [("", "/d")]
    )
    assert outcome == "updated" and changed.generation == 2 and changed.revision == "r2"
    assert store.get_service("default", "digits").spec == spec(image="digits:2")


def test_apply_replaces_routes(store: Store) -> None:
    store.apply_service("default", "digits", spec(), {}, "r1", [("", "/d"), ("a.example", "/")])
    record, outcome = store.apply_service("default", "digits", spec(), {}, "r1", [("b.example", "/v2")])
    assert outcome == "updated" and record.generation == 1
    assert store.list_routes() == [RouteRecord("default", "digits", "b.example", "/v2")]


def test_route_held_by_another_service_writes_nothing(store: Store) -> None:
    store.apply_service("default", "a", spec(), {}, "ra", [("", "/a")])
    store.apply_service("default", "b", spec(), {"v": "1"}, "rb", [("", "/b")])
    routes_before = store.list_routes()

    # a new service in a new namespace: neither the service nor its namespace may appear
    with pytest.raises(Conflict) as err:
        store.apply_service("team", "c", spec(), {}, "rc", [("", "/c"), ("", "/a")])
    assert "default/a" in str(err.value) and err.value.field == "routes"
    with pytest.raises(NotFound):
        store.get_service("team", "c")
    assert [ns.name for ns in store.list_namespaces()] == ["default"]

    # an existing service trying to take the route: its spec, labels and routes stay as they were
    with pytest.raises(Conflict, match="default/a"):
        store.apply_service("default", "b", spec(replicas=5), {"v": "2"}, "rb2", [("", "/a")])
    b = store.get_service("default", "b")
    assert (b.spec, b.labels, b.revision, b.generation) == (spec(), {"v": "1"}, "rb", 1)
    assert store.list_routes() == routes_before
    assert store.get_service("default", "a").generation == 1


def test_same_path_on_other_hosts_is_a_different_route(store: Store) -> None:
    store.apply_service("default", "a", spec(), {}, "ra", [("", "/")])
    store.apply_service("default", "b", spec(), {}, "rb", [("b.example", "/")])
    store.apply_service("default", "c", spec(), {}, "rc", [(None, "/c")])  # type: ignore[list-item]
    assert {(r.service, r.host, r.path_prefix) for r in store.list_routes()} == {
        ("a", "", "/"),
        ("b", "b.example", "/"),
        ("c", "", "/c"),
    }
    assert [r.service for r in store.list_routes(namespace="default", service="b")] == ["b"]


def test_list_services_filters_by_label_and_pages(store: Store) -> None:
    for ns, name, tier in [
        ("default", "e", "gpu"),
        ("default", "a", "cpu"),
        ("team", "b", "gpu"),
        ("default", "c", "gpu"),
        ("team", "a", "cpu"),
    ]:
        store.apply_service(
            ns, name, spec(), {"tier": tier, "team": ns}, f"r-{name}", [("", f"/{ns}/{name}")]
        )

    page, total = store.list_services()
    assert total == 5
    assert [(s.namespace, s.name) for s in page] == [
        ("default", "a"),
        ("default", "c"),
        ("default", "e"),
        ("team", "a"),
        ("team", "b"),
    ]
    page, total = store.list_services(limit=2, offset=2)
    assert total == 5 and [(s.namespace, s.name) for s in page] == [("default", "e"), ("team", "a")]

    page, total = store.list_services(labels={"tier": "gpu"})
    assert total == 3 and [s.key for s in page] == ["default/c", "default/e", "team/b"]
    page, total = store.list_services(labels={"tier": "gpu"}, limit=1, offset=1)
    assert total == 3 and [s.key for s in page] == ["default/e"]
    page, total = store.list_services(namespace="team", labels={"tier": "gpu", "team": "team"})
    assert total == 1 and [s.key for s in page] == ["team/b"]
    assert store.list_services(labels={"tier": "tpu"}) == ([], 0)
    assert store.list_services(namespace="nowhere") == ([], 0)


@pytest.mark.parametrize("bad", [{"limit": 0}, {"limit": 100000}, {"offset": -1}])
def test_list_services_rejects_bad_paging(store: Store, bad: dict[str, int]) -> None:
    with pytest.raises(InvalidInput) as err:
        store.list_services(**bad)
    assert err.value.field in bad


def test_scale_sets_replicas_and_bumps_generation(store: Store) -> None:
    store.apply_service("default", "digits", spec(replicas=1), {}, "r1", [])
    scaled = store.scale_service("default", "digits", 4)
    assert scaled.spec["service"]["replicas"] == 4 and scaled.generation == 2
    assert scaled.spec["container"] == {"image": "digits:1"}
    assert store.get_service("default", "digits").spec["service"]["replicas"] == 4
    assert store.scale_service("default", "digits", 4).generation == 2  # no change, no new generation
    assert store.scale_service("default", "digits", 0).generation == 3

    with pytest.raises(InvalidInput) as err:
        store.scale_service("default", "digits", -1)
    assert err.value.field == "replicas"
    with pytest.raises(NotFound, match="default/nope"):
        store.scale_service("default", "nope", 1)


def test_delete_flow_cascades_routes(store: Store) -> None:
    store.apply_service("default", "a", spec(), {}, "ra", [("", "/a"), ("h.example", "/a")])
    store.apply_service("default", "b", spec(), {}, "rb", [("", "/b")])

    marked = store.mark_deleting("default", "a")
    assert marked.deleting is True
    assert store.mark_deleting("default", "a").deleting is True  # idempotent
    assert {s.key: s.deleting for s in store.all_services()} == {"default/a": True, "default/b": False}
    with pytest.raises(Conflict, match="being deleted"):
        store.apply_service("default", "a", spec(), {}, "ra", [("", "/a")])
    with pytest.raises(Conflict):
        store.scale_service("default", "a", 3)

    store.remove_service("default", "a")
    with pytest.raises(NotFound):
        store.get_service("default", "a")
    assert store.list_routes() == [RouteRecord("default", "b", "", "/b")]
    with pytest.raises(NotFound):
        store.remove_service("default", "a")
    store.update_status("default", "a", {"phase": "Gone"}, 1)  # a late controller write is harmless

    # the freed route can be claimed again
    _, outcome = store.apply_service("default", "c", spec(), {}, "rc", [("", "/a")])
    assert outcome == "created"


def test_update_status_records_observed_generation(store: Store) -> None:
    store.apply_service("default", "digits", spec(), {}, "r1", [])
    store.update_status("default", "digits", {"readyReplicas": 1, "conditions": [{"type": "Ready"}]}, 1)
    record = store.get_service("default", "digits")
    assert record.observed_generation == 1
    assert record.status == {"readyReplicas": 1, "conditions": [{"type": "Ready"}]}
    assert record.generation == 1


def test_records_are_independent_copies(store: Store) -> None:
    document = spec()
    record, _ = store.apply_service("default", "digits", document, {}, "r1", [])
    document["service"]["replicas"] = 9  # type: ignore[index]
    record.spec["service"]["replicas"] = 7
    assert store.get_service("default", "digits").spec["service"]["replicas"] == 1


def test_get_service_names_the_missing_object(store: Store) -> None:
    with pytest.raises(NotFound) as err:
        store.get_service("default", "ghost")
    assert "default/ghost" in err.value.message and err.value.fix
