"""The VPA recommender: histogram percentiles, decay, margin, confidence, minimum resources."""

from __future__ import annotations

import math

import pytest

from gs_engine.autoscaling.simulate import cpu_cores_out
from gs_engine.autoscaling.vpa import (
    DAY_SECONDS,
    ContainerUsage,
    CpuSample,
    ExponentialBuckets,
    MemoryPeak,
    Resources,
    VpaConfig,
    confidence,
    decay_weight,
    histogram,
    min_resources_per_container,
    percentile,
    recommend,
    with_confidence,
    with_margin,
)

CPU = ExponentialBuckets(0.01, 1.05, 1000.0)


def test_margin_step_is_exact() -> None:
    estimate = with_margin(Resources(3.14, 3.14e9), 0.1)
    assert cpu_cores_out(estimate.cpu) == 3.454
    assert estimate.memory == pytest.approx(3.454e9, rel=1e-12)


def test_bucket_edges_grow_by_ratio() -> None:
    assert CPU.start(0) == 0
    assert CPU.start(1) == pytest.approx(0.01)
    assert CPU.start(2) - CPU.start(1) == pytest.approx(0.0105)
    for value in (0.0, 0.005, 0.01, 0.5, 3.14, 999.0):
        i = CPU.index(value)
        assert CPU.start(i) <= value < CPU.start(i + 1)


def test_percentile_is_the_upper_edge_of_the_reaching_bucket() -> None:
    totals = histogram(CPU, [(float(v), 1.0) for v in range(1, 11)])
    for fraction, value in ((0.5, 5.0), (0.9, 9.0), (0.95, 10.0)):
        got = percentile(CPU, totals, fraction)
        assert got == CPU.start(CPU.index(value) + 1)
        assert value < got <= value * 1.05 + 0.01
    assert percentile(CPU, {}, 0.9) == 0.0


def test_decay_halves_weight_every_half_life() -> None:
    assert decay_weight(0, DAY_SECONDS) == 1.0
    assert decay_weight(DAY_SECONDS, DAY_SECONDS) == pytest.approx(0.5)
    assert decay_weight(3 * DAY_SECONDS, DAY_SECONDS) == pytest.approx(0.125)


def test_decay_shifts_percentiles_toward_recent_samples() -> None:
    now = 10 * DAY_SECONDS
    recent = CpuSample(now, 1.0)
    old = CpuSample(now - DAY_SECONDS, 10.0)
    config = VpaConfig(target_percentile=0.6)
    # equal weights: 60 % of the weight is only reached by the 10-core sample
    same_age = recommend([ContainerUsage("c", (recent, CpuSample(now, 10.0)))], config, now)["c"]
    decayed = recommend([ContainerUsage("c", (recent, old))], config, now)["c"]
    assert same_age.target.cpu > 10
    assert decayed.target.cpu < 1.2


def test_cpu_samples_weighted_by_request() -> None:
    now = 0.0
    light = CpuSample(now, 1.0, request_cores=0.5)
    heavy = CpuSample(now, 8.0, request_cores=4.0)
    rec = recommend([ContainerUsage("c", (light, heavy))], VpaConfig(target_percentile=0.5), now)["c"]
    assert rec.target.cpu > 8  # 4/4.5 of the weight sits at 8 cores


def test_confidence_is_min_of_history_days_and_sample_count() -> None:
    per_minute = [CpuSample(i * 60.0, 1.0) for i in range(720)]  # 12 h, one a minute
    assert confidence(per_minute, (), 1440) == pytest.approx(0.5, rel=0.01)
    sparse = [CpuSample(0, 1.0), CpuSample(7 * DAY_SECONDS, 1.0)]
    assert confidence(sparse, (), 1440) == pytest.approx(2 / 1440)
    assert confidence((), [MemoryPeak(0, 1), MemoryPeak(DAY_SECONDS, 1)], 2) == pytest.approx(1.0)


def test_confidence_multiplier_shapes() -> None:
    base = Resources(1.0, 1e9)
    assert with_confidence(base, 1.0, 1.0, 0.5).cpu == pytest.approx(3.0)
    assert with_confidence(base, 1.0, 1.0, 1.0).cpu == pytest.approx(2.0)
    assert with_confidence(base, 0.001, -2.5, 1.0).cpu == pytest.approx(1.001**-2.5)
    assert math.isinf(with_confidence(base, 1.0, 1.0, 0.0).cpu)
    assert with_confidence(base, 0.001, -2.5, 0.0).cpu == 0.0


def test_short_history_widens_the_bounds() -> None:
    def usage(days: float) -> ContainerUsage:
        count = 20
        step = days * DAY_SECONDS / (count - 1)
        return ContainerUsage("c", tuple(CpuSample(i * step, 1.0 + (i % 5) * 0.1) for i in range(count)))

    config = VpaConfig(samples_per_day=1)
    short = recommend([usage(0.5)], config, 0.5 * DAY_SECONDS)["c"]
    long = recommend([usage(7)], config, 7 * DAY_SECONDS)["c"]
    assert short.upper_bound.cpu > long.upper_bound.cpu
    assert short.lower_bound.cpu <= long.lower_bound.cpu
    for rec in (short, long):
        assert rec.lower_bound.cpu <= rec.target.cpu <= rec.upper_bound.cpu


def test_bounds_with_a_week_of_history() -> None:
    config = VpaConfig(samples_per_day=1)
    samples = tuple(CpuSample(d * DAY_SECONDS, 2.0) for d in range(8))  # 7 days, conf = 7
    rec = recommend([ContainerUsage("c", samples)], config, 7 * DAY_SECONDS)["c"]
    edge = min(CPU.start(CPU.index(2.0) + 1), 2.0) * 1.15  # the bucket edge, capped at the largest sample
    assert rec.target.cpu == pytest.approx(edge)
    assert rec.upper_bound.cpu == pytest.approx(edge * (1 + 1 / 7))
    assert rec.lower_bound.cpu == pytest.approx(edge * (1 + 0.001 / 7) ** -2.5)


def test_min_resources_split_across_containers() -> None:
    minimum = min_resources_per_container(VpaConfig(), 2)
    assert minimum == Resources(0.0125, 125 * 2**20)
    tiny = CpuSample(0, 0.001)
    recs = recommend(
        [
            ContainerUsage("a", (tiny,), (MemoryPeak(0, 1e6),)),
            ContainerUsage("b", (tiny,), (MemoryPeak(0, 1e6),)),
        ]
    )
    for rec in recs.values():
        assert rec.target == minimum


def test_no_history_upper_bound_is_capped_not_infinite() -> None:
    rec = recommend([ContainerUsage("c", (CpuSample(0, 1.0),), (MemoryPeak(0, 1e9),))])["c"]
    assert math.isfinite(rec.upper_bound.cpu) and math.isfinite(rec.upper_bound.memory)
    assert rec.upper_bound.cpu > rec.target.cpu
    assert rec.lower_bound.cpu == pytest.approx(0.025)  # x 0 with no history, then the minimum


def test_memory_uses_peaks() -> None:
    peaks = tuple(MemoryPeak(0, float(v) * 1e8) for v in range(1, 11))
    rec = recommend([ContainerUsage("c", (), peaks)], VpaConfig(safety_margin_fraction=0))["c"]
    assert 9e8 < rec.target.memory <= 9e8 * 1.05 + 1e7


def test_single_sample_target_is_the_sample_plus_margin_through_simulate() -> None:
    from gs_engine.autoscaling.simulate import simulate

    case = {
        "policy": "vpa",
        "containers": [
            {
                "name": "c",
                "cpuSamples": [{"ageSeconds": 60, "cores": 3.14}],
                "memoryPeaks": [{"ageSeconds": 60, "bytes": 3140000000}],
            }
        ],
        "config": {"safetyMarginFraction": 0.1},
    }
    target = simulate(case)["containers"]["c"]["target"]
    assert target["cpu"] == pytest.approx(3.454, abs=0.001)
    assert target["memory"] == pytest.approx(3.454e9, rel=1e-6)


def test_percentile_never_exceeds_the_largest_sample() -> None:
    from gs_engine.autoscaling.vpa import ContainerUsage, CpuSample, recommend

    samples = tuple(CpuSample(at=-i, cores=0.5 + 0.001 * i) for i in range(100))
    rec = recommend([ContainerUsage("c", samples, ())], now=0.0)["c"]
    assert rec.target.cpu <= max(s.cores for s in samples) * 1.15 + 1e-9
