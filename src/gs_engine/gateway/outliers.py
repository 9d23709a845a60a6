"""Passive outlier ejection: replicas that fail in a row are left out for a back-off period.

A failure is a connect error, a reset before the response or a 5xx answer; any other answer
is a success and resets the count. After `threshold` failures in a row a replica is ejected
for `base_seconds`, doubled for each ejection in a row (up to `max_seconds`). A success after
an ejection clears its history. Pure apart from the caller's `now`.
"""

from __future__ import annotations


class OutlierDetector:
    __slots__ = ("threshold", "base_seconds", "max_seconds", "fails", "ejections", "ejected")

    def __init__(self, threshold: int = 5, base_seconds: float = 5.0, max_seconds: float = 60.0) -> None:
        self.threshold = threshold
        self.base_seconds = base_seconds
        self.max_seconds = max_seconds
        self.fails: dict[str, int] = {}  # endpoint id -> failures in a row
        self.ejections: dict[str, int] = {}  # endpoint id -> ejections in a row
        self.ejected: dict[str, float] = {}  # endpoint id -> ejected until (empty on the fast path)

    def success(self, endpoint_id: str) -> None:
        if self.fails:
            self.fails.pop(endpoint_id, None)
        if self.ejections and endpoint_id not in self.ejected:
            self.ejections.pop(endpoint_id, None)

    def failure(self, endpoint_id: str, now: float) -> bool:
        """Count a failure; True when it ejects the replica."""
        n = self.fails.get(endpoint_id, 0) + 1
        if n < self.threshold or self.threshold <= 0:
            self.fails[endpoint_id] = n
            return False
        self.fails.pop(endpoint_id, None)
        times = self.ejections.get(endpoint_id, 0)
        self.ejections[endpoint_id] = times + 1
        self.ejected[endpoint_id] = now + min(self.max_seconds, self.base_seconds * (2**times))
        return True

    def is_ejected(self, endpoint_id: str, now: float) -> bool:
        until = self.ejected.get(endpoint_id)
        if until is None:
            return False
        if now >= until:
            del self.ejected[endpoint_id]  # back on probation: one more failure ejects it again
            self.fails[endpoint_id] = self.threshold - 1
            return False
        return True

    def forget(self, keep: set[str]) -> None:
        """Drop the state of endpoints no longer routed to."""
        for table in (self.fails, self.ejections, self.ejected):
            for ep in [e for e in table if e not in keep]:
                del table[ep]
