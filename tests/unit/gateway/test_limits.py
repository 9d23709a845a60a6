"""Token bucket, retry budget and outlier ejection: pure, with a stepped clock."""

from hypothesis import given
from hypothesis import strategies as st

from gs_engine.gateway import OutlierDetector, RetryBudget, TokenBucket
from gs_engine.gateway.limits import retry_after_seconds


def test_bucket_allows_the_burst_then_refuses_with_the_wait() -> None:
    b = TokenBucket(rate=2.0, burst=3.0, now=0.0)
    assert [b.take(0.0) for _ in range(3)] == [0.0, 0.0, 0.0]
    wait = b.take(0.0)
    assert wait == 0.5  # one token at 2/s
    assert retry_after_seconds(wait) == 1
    assert b.take(0.5) == 0.0
    assert b.take(0.5) > 0


def test_bucket_refills_no_higher_than_the_burst() -> None:
    b = TokenBucket(rate=10.0, burst=2.0, now=0.0)
    b.take(0.0)
    b.take(0.0)
    allowed = sum(1 for _ in range(10) if b.take(100.0) == 0.0)
    assert allowed == 2


@given(st.lists(st.floats(min_value=0, max_value=0.5), min_size=1, max_size=200))
def test_bucket_never_admits_more_than_rate_times_time_plus_burst(steps: list[float]) -> None:
    rate, burst = 5.0, 2.0
    b = TokenBucket(rate, burst, now=0.0)
    now = 0.0
    admitted = 0
    for dt in steps:
        now += dt
        if b.take(now) == 0.0:
            admitted += 1
    assert admitted <= burst + rate * now + 1e-9


def test_retry_budget_has_a_floor_and_a_share() -> None:
    budget = RetryBudget(ratio=0.5, min_per_second=2)
    assert budget.try_retry(10.0) and budget.try_retry(10.1)
    assert not budget.try_retry(10.2)  # floor spent, no requests yet
    for _ in range(4):
        budget.on_request(10.3)
    assert budget.try_retry(10.4) and budget.try_retry(10.5)  # 2 + 0.5 * 4 = 4 in all
    assert not budget.try_retry(10.6)
    assert budget.try_retry(11.0)  # a new window


def test_consecutive_failures_eject_and_a_success_resets() -> None:
    o = OutlierDetector(threshold=3, base_seconds=5.0, max_seconds=60.0)
    assert not o.failure("a", 0.0)
    assert not o.failure("a", 0.0)
    o.success("a")
    assert not o.failure("a", 0.0) and not o.failure("a", 0.0)
    assert o.failure("a", 1.0)
    assert o.is_ejected("a", 5.9)
    assert not o.is_ejected("a", 6.0)  # back after 5 s
    assert not o.is_ejected("b", 0.0)


def test_ejection_backs_off_exponentially_up_to_the_cap() -> None:
    o = OutlierDetector(threshold=1, base_seconds=5.0, max_seconds=12.0)
    assert o.failure("a", 0.0)
    assert not o.is_ejected("a", 5.0)
    assert o.failure("a", 5.0)  # on probation: one failure ejects again, for 10 s
    assert o.is_ejected("a", 14.9) and not o.is_ejected("a", 15.0)
    assert o.failure("a", 15.0)  # 20 s capped at 12
    assert o.is_ejected("a", 26.9) and not o.is_ejected("a", 27.0)
    o.success("a")
    assert o.failure("a", 30.0)
    assert not o.is_ejected("a", 35.0)  # history cleared: 5 s again


def test_forget_drops_removed_endpoints() -> None:
    o = OutlierDetector(threshold=1)
    o.failure("a", 0.0)
    o.failure("b", 0.0)
    o.forget({"b"})
    assert set(o.ejected) == {"b"}
