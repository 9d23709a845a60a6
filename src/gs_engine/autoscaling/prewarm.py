"""Pre-warming decisions: scheduled floors (cron windows) and a short-horizon forecast. Pure.

`scheduled_floor` answers "how many replicas must be up now because of a known peak?";
`forecast` answers "what will the metric be `horizon` seconds from now if the recent trend holds?".
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from gs_engine.autoscaling.kpa import Sample
from gs_engine.spec.cron import CronSchedule


@dataclass(frozen=True)
class Window:
    """From each time `schedule` fires (in `zone`), keep `min_replicas` for `duration_seconds`."""

    schedule: CronSchedule
    zone: ZoneInfo
    min_replicas: int
    duration_seconds: float


def window_active(window: Window, now: float) -> bool:
    """Whether a firing of the window's cron lies within the last `duration_seconds` (minute resolution)."""
    local = datetime.fromtimestamp(now, tz=UTC).astimezone(window.zone).replace(second=0, microsecond=0)
    minutes = max(1, math.ceil(window.duration_seconds / 60))
    for back in range(minutes):
        moment = local - timedelta(minutes=back)
        if window.schedule.matches(moment):
            # the window opened at `moment` and lasts duration_seconds from then
            return now < moment.timestamp() + window.duration_seconds
    return False


def scheduled_floor(windows: Sequence[Window], now: float) -> tuple[int, str]:
    """The largest min_replicas of the windows open at `now`, with which window set it."""
    best, reason = 0, ""
    for index, window in enumerate(windows):
        if window.min_replicas > best and window_active(window, now):
            best, reason = window.min_replicas, f"schedule[{index}] window open"
    return best, reason


@dataclass(frozen=True)
class Forecast:
    value: float | None  # None: not enough history to say
    slope_per_second: float
    samples: int


def forecast(samples: Sequence[Sample], now: float, lookback: float, horizon: float) -> Forecast:
    """Least-squares line through the samples of the last `lookback` seconds, read at now + horizon.

    Needs at least 3 samples spread over at least 3 seconds; the forecast never goes below 0 and,
    for a falling trend, never below the latest value (pre-warming scales ahead of rises only).
    """
    recent = [s for s in samples if now - lookback < s.at <= now]
    if len(recent) < 3 or recent[-1].at - recent[0].at < 3:
        return Forecast(None, 0.0, len(recent))
    n = len(recent)
    mean_t = sum(s.at for s in recent) / n
    mean_v = sum(s.value for s in recent) / n
    spread = sum((s.at - mean_t) ** 2 for s in recent)
    slope = sum((s.at - mean_t) * (s.value - mean_v) for s in recent) / spread if spread else 0.0
    predicted = mean_v + slope * (now + horizon - mean_t)
    latest = recent[-1].value
    return Forecast(max(0.0, predicted, latest if slope < 0 else 0.0), slope, n)


def predictive_replicas(prediction: Forecast, target_per_replica: float) -> int | None:
    """Replicas needed for the forecast load at the per-replica target; None without a forecast."""
    if prediction.value is None or target_per_replica <= 0:
        return None
    return math.ceil(prediction.value / target_per_replica)
