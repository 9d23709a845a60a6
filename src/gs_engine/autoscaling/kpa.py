"""The Knative-style (KPA) decider: windowed concurrency or rps in, a desired pod count out.

Per tick, with `ready = max(1, ready_pods)`:

- `max_up = ceil(max_scale_up_rate * ready)`; `max_down = floor(ready / max_scale_down_rate)`
  when the revision is reachable, else 0;
- `desired_stable = ceil(stable / target)`, `desired_panic = ceil(panic / target)`, each
  clamped into [max_down, max_up] and raised to `activation_scale` when above zero;
- panic starts when `ceil(panic / target) / ready >= panic_threshold`; each panicking tick
  extends it, and it ends once a full stable window has passed since the last one. In panic the
  count is the larger of both proposals and never decreases;
- with a scale-down delay, the count is the maximum seen over the delay window;
- excess burst capacity = `floor(ready_pods * total_value - target_burst_capacity - panic)`,
  0 when target_burst_capacity is 0 and -1 ("always keep the activator") when it is -1.

No data is a value (`valid=False`), not an exception. The decider holds only its own state:
the panic time, the highest count in panic, and the delay window.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from gs_engine.errors import InvalidInput, Problem


@dataclass(frozen=True)
class KpaConfig:
    """Per-pod `target` (after target utilization), `total_value` the per-pod capacity."""

    target: float
    total_value: float = 100.0
    panic_threshold: float = 2.0
    max_scale_up_rate: float = 1000.0
    max_scale_down_rate: float = 2.0
    stable_window_seconds: float = 60.0
    panic_window_percentage: float = 10.0
    scale_down_delay_seconds: float = 0.0
    activation_scale: int = 1
    target_burst_capacity: float = 211.0
    reachable: bool = True

    @property
    def panic_window_seconds(self) -> float:
        return self.stable_window_seconds * self.panic_window_percentage / 100.0

    def problems(self) -> list[Problem]:
        """What is wrong with this configuration (empty when it is usable)."""
        found: list[Problem] = []
        positive = {
            "target": self.target,
            "maxScaleUpRate": self.max_scale_up_rate,
            "maxScaleDownRate": self.max_scale_down_rate,
            "stableWindowSeconds": self.stable_window_seconds,
            "panicWindowPercentage": self.panic_window_percentage,
            "panicThreshold": self.panic_threshold,
        }
        for name, value in positive.items():
            if not value > 0:
                found.append(Problem(f"config.{name}", f"must be greater than 0, got {value}", "use e.g. 1"))
        if self.scale_down_delay_seconds < 0:
            found.append(
                Problem("config.scaleDownDelaySeconds", "must not be negative", "use 0 for no delay")
            )
        if self.activation_scale < 1:
            found.append(Problem("config.activationScale", "must be at least 1", "use 1 for no minimum"))
        if self.target_burst_capacity < 0 and self.target_burst_capacity != -1:
            found.append(
                Problem("config.targetBurstCapacity", "must be >= 0 or -1", "use 0 (none) or -1 (unlimited)")
            )
        return found


@dataclass(frozen=True)
class KpaResult:
    """`desired_pods` and `excess_burst_capacity` are -1 when `valid` is False."""

    desired_pods: int
    panic: bool
    excess_burst_capacity: int
    valid: bool
    reason: str


@dataclass(frozen=True)
class Sample:
    """One observation of the scaling metric (concurrency or rps) at an absolute time."""

    at: float
    value: float


def window_average(samples: Sequence[Sample], now: float, window_seconds: float) -> float | None:
    """Mean of the samples with `now - window < at <= now`; None when there are none."""
    values = [s.value for s in samples if now - window_seconds < s.at <= now]
    if not values:
        return None
    return sum(values) / len(values)


def rate_bounds(config: KpaConfig, ready_pods: int) -> tuple[int, int]:
    """(max scale-down, max scale-up) pod counts allowed this tick."""
    ready = max(1, ready_pods)
    max_up = math.ceil(config.max_scale_up_rate * ready)
    max_down = math.floor(ready / config.max_scale_down_rate) if config.reachable else 0
    return max_down, max_up


def clamp_desired(config: KpaConfig, raw: int, bounds: tuple[int, int]) -> int:
    """A raw ceil(value/target) count, clamped to the rate bounds and raised to activation scale."""
    low, high = bounds
    desired = min(max(raw, low), high)
    if config.activation_scale > 1 and raw > 0 and desired < config.activation_scale:
        desired = config.activation_scale
    return desired


def excess_burst_capacity(config: KpaConfig, ready_pods: int, panic_value: float) -> int:
    if config.target_burst_capacity == 0:
        return 0
    if config.target_burst_capacity < 0:
        return -1
    total = ready_pods * config.total_value
    return math.floor(total - config.target_burst_capacity - panic_value)


class KpaDecider:
    """One revision's decider. `scale()` is called once per tick with the clock passed in."""

    def __init__(self, config: KpaConfig) -> None:
        problems = config.problems()
        if problems:
            raise InvalidInput("the KPA configuration is not usable", problems=problems)
        self.config = config
        self._panic_time: float | None = None
        self._max_panic_pods = 0
        self._delay: list[tuple[float, int]] = []

    @property
    def in_panic(self) -> bool:
        return self._panic_time is not None

    def _update_panic(self, now: float, over_threshold: bool) -> None:
        if over_threshold:
            self._panic_time = now
        elif self._panic_time is not None and self._panic_time + self.config.stable_window_seconds < now:
            self._panic_time = None
            self._max_panic_pods = 0

    def _delayed(self, now: float, desired: int) -> int:
        delay = self.config.scale_down_delay_seconds
        if delay <= 0:
            return desired
        self._delay = [(t, v) for t, v in self._delay if now - t < delay]
        self._delay.append((now, desired))
        return max(v for _, v in self._delay)

    def scale(self, now: float, stable: float | None, panic: float | None, ready_pods: int) -> KpaResult:
        """The desired pod count for this tick; stable/panic None means no data yet."""
        if stable is None or panic is None:
            return KpaResult(-1, self.in_panic, -1, False, "no data to scale on yet")
        config = self.config
        ready = max(1, ready_pods)
        bounds = rate_bounds(config, ready_pods)
        raw_stable = math.ceil(stable / config.target)
        raw_panic = math.ceil(panic / config.target)
        desired_stable = clamp_desired(config, raw_stable, bounds)
        desired_panic = clamp_desired(config, raw_panic, bounds)
        self._update_panic(now, raw_panic / ready >= config.panic_threshold)
        desired = desired_stable
        if self._panic_time is not None:
            desired = max(desired, desired_panic)
            self._max_panic_pods = max(self._max_panic_pods, desired)
            desired = self._max_panic_pods
            reason = f"panic mode: {desired} pods (never decreasing while panicking)"
        else:
            reason = f"stable mode: {desired} pods for {stable:.2f} at target {config.target:g} per pod"
        delayed = self._delayed(now, desired)
        if delayed != desired:
            reason = f"scale-down delayed: keeping {delayed} pods, the highest in the delay window"
        return KpaResult(
            delayed,
            self._panic_time is not None,
            excess_burst_capacity(config, ready_pods, panic),
            True,
            reason,
        )
