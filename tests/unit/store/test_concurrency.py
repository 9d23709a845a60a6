"""Store methods called from several threads at once lose no writes."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from gs_engine.errors import Conflict
from gs_engine.store import Store

THREADS = 6
PER_THREAD = 8


def test_parallel_applies_of_one_service_lose_no_generation(store: Store) -> None:
    store.apply_service("default", "digits", {"n": -1}, {}, "r", [("", "/d")])

    def work(thread: int) -> list[str]:
        return [
            store.apply_service("default", "digits", {"n": thread * 100 + i}, {}, "r", [("", "/d")])[1]
            for i in range(PER_THREAD)
        ]

    with ThreadPoolExecutor(THREADS) as pool:
        outcomes = [o for batch in pool.map(work, range(THREADS)) for o in batch]
    assert outcomes == ["updated"] * (THREADS * PER_THREAD)
    # every apply changed the spec, so every one of them must show in the generation
    assert store.get_service("default", "digits").generation == 1 + THREADS * PER_THREAD


def test_parallel_creates_in_a_new_namespace(store: Store) -> None:
    def work(thread: int) -> None:
        for i in range(PER_THREAD):
            store.apply_service("fresh", f"s{thread}-{i}", {}, {}, "r", [("", f"/{thread}/{i}")])
            store.add_event("fresh", "Service", f"s{thread}-{i}", "test", "Created", "")

    with ThreadPoolExecutor(THREADS) as pool:
        list(pool.map(work, range(THREADS)))
    page, total = store.list_services(namespace="fresh", limit=1000)
    assert total == THREADS * PER_THREAD == len(page)
    assert len(store.list_routes()) == THREADS * PER_THREAD
    assert len(store.list_events(limit=1000)) == THREADS * PER_THREAD


def test_racing_claims_on_one_route_leave_one_winner(store: Store) -> None:
    def claim(thread: int) -> str:
        try:
            store.apply_service("default", f"s{thread}", {}, {}, "r", [("", "/shared")])
        except Conflict as exc:
            return f"conflict: {exc.message}"
        return "won"

    with ThreadPoolExecutor(THREADS) as pool:
        results = list(pool.map(claim, range(THREADS)))
    assert results.count("won") == 1
    winner = store.list_routes()[0].service
    assert all(winner in r for r in results if r != "won")
    assert [s.name for s in store.all_services()] == [winner]
