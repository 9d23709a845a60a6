"""Per-route admission and retry limits: a token bucket and a retry budget. Pure: the caller passes `now`."""

from __future__ import annotations

import math


class TokenBucket:
    """`rate` tokens per second up to `burst`; one request takes one token.

    `take(now)` answers 0.0 when the request may go, else the seconds until a token is free
    (the Retry-After the client is told, rounded up by the caller).
    """

    __slots__ = ("rate", "burst", "_tokens", "_at")

    def __init__(self, rate: float, burst: float, now: float) -> None:
        self.rate = rate
        self.burst = burst
        self._tokens = burst
        self._at = now

    def take(self, now: float) -> float:
        elapsed = now - self._at
        if elapsed > 0:
            self._tokens = min(self.burst, self._tokens + elapsed * self.rate)
            self._at = now
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return 0.0
        return (1.0 - self._tokens) / self.rate


def retry_after_seconds(wait: float) -> int:
    """A Retry-After value in whole seconds (at least 1) for a wait in seconds."""
    return max(1, math.ceil(wait))


class RetryBudget:
    """Retries allowed in a one-second window: `min_per_second` plus `ratio` of the requests.

    Keeps a failing service from being hit with a multiple of its load: at most about
    `ratio` more attempts than requests once the floor is spent.
    """

    __slots__ = ("ratio", "min_per_second", "window", "requests", "_retries")

    def __init__(self, ratio: float = 0.2, min_per_second: int = 3) -> None:
        self.ratio = ratio
        self.min_per_second = min_per_second
        self.window = -1  # the whole second the counts are for
        self.requests = 0  # requests seen in that second (the proxy may count them inline)
        self._retries = 0

    def roll(self, now: float) -> None:
        """Start a new window if `now` is in another second."""
        window = int(now)
        if window != self.window:
            self.window = window
            self.requests = 0
            self._retries = 0

    def on_request(self, now: float) -> None:
        self.roll(now)
        self.requests += 1

    def try_retry(self, now: float) -> bool:
        """Spend one retry if the budget allows it."""
        self.roll(now)
        if self._retries < self.min_per_second + self.ratio * self.requests:
            self._retries += 1
            return True
        return False
