"""Least outstanding requests with power-of-two choices (pure, random source injected).

Two distinct endpoints are drawn at random and the one with fewer requests in flight wins
(the first drawn on a tie). The balancer owns the in-flight counts: `start` when a request
is sent to an endpoint, `finish` when it is over, whatever the outcome.
"""

from __future__ import annotations

import random as _random
from collections.abc import Callable, Sequence


class Balancer:
    __slots__ = ("random", "_inflight", "outstanding")

    def __init__(self, random: Callable[[], float] | None = None) -> None:
        """`random` returns a float in [0, 1) (like `random.random`); inject one in tests."""
        self.random: Callable[[], float] = random if random is not None else _random.random
        self._inflight: dict[str, int] = {}
        # the same dict, public: the proxy's hot path does `start`/`finish` on it inline
        self.outstanding = self._inflight

    def pick(self, endpoint_ids: Sequence[str]) -> int:
        """The index into `endpoint_ids` to send to, or -1 when there is none."""
        n = len(endpoint_ids)
        if n < 2:
            return n - 1
        rnd = self.random
        first = int(rnd() * n)
        second = int(rnd() * (n - 1))
        if second >= first:
            second += 1
        get = self._inflight.get
        if get(endpoint_ids[second], 0) < get(endpoint_ids[first], 0):
            return second
        return first

    def start(self, endpoint_id: str) -> None:
        self._inflight[endpoint_id] = self._inflight.get(endpoint_id, 0) + 1

    def finish(self, endpoint_id: str) -> None:
        left = self._inflight.get(endpoint_id, 0) - 1
        if left > 0:
            self._inflight[endpoint_id] = left
        else:
            self._inflight.pop(endpoint_id, None)

    def inflight(self, endpoint_id: str) -> int:
        return self._inflight.get(endpoint_id, 0)

    def snapshot(self) -> dict[str, int]:
        return dict(self._inflight)
