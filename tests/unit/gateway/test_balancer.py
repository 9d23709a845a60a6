from gs_engine.gateway import Balancer


def fixed(*values: float):  # a scripted random source
    it = iter(values)
    return lambda: next(it)


def test_zero_endpoints() -> None:
    assert Balancer().pick(()) == -1


def test_one_endpoint_needs_no_randomness() -> None:
    def boom() -> float:
        raise AssertionError("random used for one endpoint")

    assert Balancer(boom).pick(("a",)) == 0


def test_p2c_picks_the_less_loaded_of_the_two_drawn() -> None:
    b = Balancer(fixed(0.0, 0.0))  # draws index 0, then index 1 (the second skips the first)
    b.start("a")
    b.start("a")
    b.start("b")
    assert b.pick(("a", "b", "c")) == 1
    b2 = Balancer(fixed(0.0, 0.0))
    b2.start("b")
    assert b2.pick(("a", "b", "c")) == 0


def test_two_draws_are_distinct() -> None:
    # 0.5 * 2 -> index 1; 0.0 * 1 -> 0, which is below 1 so stays 0: the pair (1, 0)
    b = Balancer(fixed(0.5, 0.0))
    b.start("b")
    assert b.pick(("a", "b")) == 0
    # (0, 1): the second draw is shifted past the first
    b = Balancer(fixed(0.0, 0.0))
    b.start("a")
    assert b.pick(("a", "b")) == 1


def test_tie_goes_to_the_first_drawn() -> None:
    assert Balancer(fixed(0.9, 0.0)).pick(("a", "b", "c")) == 2


def test_release_decrements_and_forgets_idle_endpoints() -> None:
    b = Balancer()
    b.start("a")
    b.start("a")
    assert b.inflight("a") == 2
    b.finish("a")
    assert b.inflight("a") == 1
    b.finish("a")
    assert b.inflight("a") == 0
    assert b.snapshot() == {}
    b.finish("a")  # an extra release never goes negative
    assert b.inflight("a") == 0


def test_load_spreads_to_the_idle_endpoint_with_real_randomness() -> None:
    import random

    rng = random.Random(7)
    b = Balancer(rng.random)
    ids = ("a", "b")
    for _ in range(3):
        b.start("a")
    # with two endpoints both are always drawn, so the less loaded always wins
    assert all(b.pick(ids) == 1 for _ in range(50))


def test_spread_is_roughly_even_when_requests_finish() -> None:
    import random

    b = Balancer(random.Random(1).random)
    ids = ("a", "b", "c", "d")
    counts = dict.fromkeys(ids, 0)
    held: list[str] = []
    for _ in range(4000):
        i = ids[b.pick(ids)]
        counts[i] += 1
        b.start(i)
        held.append(i)
        if len(held) > 8:
            b.finish(held.pop(0))
    assert min(counts.values()) > 700, counts
