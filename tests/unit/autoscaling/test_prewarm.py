"""Scheduled floors and the short-horizon forecast, with explicit times."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from gs_engine.autoscaling.kpa import Sample
from gs_engine.autoscaling.prewarm import (
    Window,
    forecast,
    predictive_replicas,
    scheduled_floor,
    window_active,
)
from gs_engine.spec.cron import parse_cron

SEOUL = ZoneInfo("Asia/Seoul")


def at(text: str, zone: ZoneInfo = SEOUL) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=zone).timestamp()


def weekday_morning(min_replicas: int = 4, minutes: int = 60) -> Window:
    return Window(parse_cron("0 8 * * 1-5"), SEOUL, min_replicas, minutes * 60)


def test_window_open_from_firing_for_its_duration() -> None:
    window = weekday_morning()
    assert not window_active(window, at("2026-12-03T07:59:59"))  # a Thursday
    assert window_active(window, at("2026-12-03T08:00:00"))
    assert window_active(window, at("2026-12-03T08:59:59"))
    assert not window_active(window, at("2026-12-03T09:00:00"))
    assert not window_active(window, at("2026-12-05T08:30:00"))  # Saturday


def test_window_uses_its_own_timezone() -> None:
    window = weekday_morning()
    # 08:30 in Seoul is 23:30 UTC the day before
    assert window_active(window, at("2026-12-02T23:30:00", ZoneInfo("UTC")))
    assert not window_active(window, at("2026-12-03T08:30:00", ZoneInfo("UTC")))


def test_short_window_inside_a_minute() -> None:
    window = Window(parse_cron("30 12 * * *"), ZoneInfo("UTC"), 2, 20)
    assert window_active(window, at("2026-12-03T12:30:19", ZoneInfo("UTC")))
    assert not window_active(window, at("2026-12-03T12:30:21", ZoneInfo("UTC")))


def test_floor_is_the_largest_open_window() -> None:
    windows = [weekday_morning(3), Window(parse_cron("30 8 * * *"), SEOUL, 6, 600), weekday_morning(1)]
    assert scheduled_floor(windows, at("2026-12-03T08:10:00")) == (3, "schedule[0] window open")
    assert scheduled_floor(windows, at("2026-12-03T08:35:00"))[0] == 6
    assert scheduled_floor(windows, at("2026-12-03T10:00:00")) == (0, "")


def test_forecast_follows_a_rising_line() -> None:
    samples = [Sample(float(t), 10.0 + 2.0 * t) for t in range(0, 30)]
    result = forecast(samples, now=29.0, lookback=30.0, horizon=10.0)
    assert result.slope_per_second == pytest.approx(2.0)
    assert result.value == pytest.approx(10.0 + 2.0 * 39.0)
    assert predictive_replicas(result, target_per_replica=10.0) == 9


def test_forecast_needs_history() -> None:
    assert forecast([Sample(0.0, 5.0), Sample(1.0, 6.0)], 1.0, 60.0, 10.0).value is None
    assert forecast([Sample(0.0, 5.0), Sample(0.5, 6.0), Sample(1.0, 7.0)], 1.0, 60.0, 10.0).value is None
    assert predictive_replicas(forecast([], 0.0, 60.0, 10.0), 10.0) is None


def test_forecast_never_predicts_below_the_latest_on_a_fall() -> None:
    samples = [Sample(float(t), 100.0 - 3.0 * t) for t in range(20)]
    result = forecast(samples, now=19.0, lookback=60.0, horizon=30.0)
    assert result.slope_per_second < 0
    assert result.value == pytest.approx(samples[-1].value)


def test_forecast_ignores_samples_outside_the_lookback() -> None:
    old = [Sample(float(t), 1000.0) for t in range(0, 10)]
    flat = [Sample(float(t), 5.0) for t in range(100, 120)]
    assert forecast(old + flat, now=119.0, lookback=30.0, horizon=10.0).value == pytest.approx(5.0)
