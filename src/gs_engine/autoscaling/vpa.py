"""A VPA-style recommender: per container, decaying histograms of usage → target and bounds.

Published defaults of the Kubernetes VPA recommender:

- cpu usage samples and memory peaks go into exponential histograms (first bucket 0.01 cores /
  1e7 bytes, each bucket 5 % wider than the last); a sample's weight halves every half-life
  (24 h) of age, and a cpu sample is also weighted by its request (at least 0.1 core) if given;
- a percentile is the upper edge of the bucket where the cumulative weight reaches it;
  target = p90, lower bound = p50, upper bound = p95;
- each estimate gets the safety margin (+15 %), then the bounds a confidence multiplier
  `(1 + multiplier / confidence) ** exponent` with confidence = min(history in days, samples /
  samples-per-day): upper x (1 + 1/c), lower x (1 + 0.001/c) ** -2.5;
- finally each is raised to the minimum resources (25m cpu, 250Mi memory per pod) split evenly
  across the pod's containers, and capped at the largest amount the recommender represents.

All pure: samples carry absolute timestamps and `now` is an argument.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

DAY_SECONDS = 24 * 3600.0
# the recommender's largest representable amount (1e14 in its units: millicores, bytes)
MAX_CPU_CORES = 1e11
MAX_MEMORY_BYTES = 1e14


@dataclass(frozen=True)
class CpuSample:
    at: float
    cores: float
    request_cores: float | None = None


@dataclass(frozen=True)
class MemoryPeak:
    at: float
    bytes: float


@dataclass(frozen=True)
class ContainerUsage:
    name: str
    cpu_samples: tuple[CpuSample, ...] = ()
    memory_peaks: tuple[MemoryPeak, ...] = ()


@dataclass(frozen=True)
class Resources:
    """cpu in cores, memory in bytes."""

    cpu: float
    memory: float


@dataclass(frozen=True)
class Recommendation:
    target: Resources
    lower_bound: Resources
    upper_bound: Resources


@dataclass(frozen=True)
class VpaConfig:
    half_life_seconds: float = DAY_SECONDS
    target_percentile: float = 0.9
    lower_bound_percentile: float = 0.5
    upper_bound_percentile: float = 0.95
    safety_margin_fraction: float = 0.15
    pod_min_cpu_cores: float = 0.025
    pod_min_memory_bytes: float = 250 * 2**20
    cpu_first_bucket: float = 0.01
    memory_first_bucket: float = 1e7
    bucket_ratio: float = 1.05
    cpu_max_value: float = 1000.0
    memory_max_value: float = 1e12
    min_cpu_sample_weight: float = 0.1
    samples_per_day: float = 24 * 60.0
    upper_confidence_multiplier: float = 1.0
    upper_confidence_exponent: float = 1.0
    lower_confidence_multiplier: float = 0.001
    lower_confidence_exponent: float = -2.5


@dataclass(frozen=True)
class ExponentialBuckets:
    """Bucket i spans [start(i), start(i+1)); start(i) = first * (ratio**i - 1) / (ratio - 1)."""

    first_bucket: float
    ratio: float
    max_value: float

    @property
    def count(self) -> int:
        return math.ceil(math.log(self.max_value * (self.ratio - 1) / self.first_bucket + 1, self.ratio)) + 1

    def start(self, index: int) -> float:
        if index == 0:
            return 0.0
        return self.first_bucket * (self.ratio**index - 1) / (self.ratio - 1)

    def index(self, value: float) -> int:
        if value < self.first_bucket:
            return 0
        found = math.floor(math.log(value * (self.ratio - 1) / self.first_bucket + 1, self.ratio))
        # guard the float log against landing one bucket off at an edge
        while found > 0 and self.start(found) > value:
            found -= 1
        while found + 1 < self.count and self.start(found + 1) <= value:
            found += 1
        return min(found, self.count - 1)


def decay_weight(age_seconds: float, half_life_seconds: float) -> float:
    """A sample's weight by age: 1 now, 1/2 one half-life ago, 1/4 two half-lives ago."""
    return float(2.0 ** (-age_seconds / half_life_seconds))


def histogram(buckets: ExponentialBuckets, weighted: Iterable[tuple[float, float]]) -> dict[int, float]:
    """(value, weight) pairs as total weight per bucket index."""
    totals: dict[int, float] = {}
    for value, weight in weighted:
        if weight <= 0:
            continue
        index = buckets.index(value)
        totals[index] = totals.get(index, 0.0) + weight
    return totals


def percentile(buckets: ExponentialBuckets, totals: dict[int, float], fraction: float) -> float:
    """The upper edge of the bucket where the cumulative weight reaches `fraction`; 0 if empty."""
    total = sum(totals.values())
    if total <= 0:
        return 0.0
    threshold = fraction * total
    running = 0.0
    chosen = max(totals)
    for index in sorted(totals):
        running += totals[index]
        if running >= threshold:
            chosen = index
            break
    if chosen < buckets.count - 1:
        return buckets.start(chosen + 1)
    return buckets.start(chosen)


def with_margin(estimate: Resources, fraction: float) -> Resources:
    """The estimate with a safety margin added: x (1 + fraction)."""
    return Resources(estimate.cpu * (1 + fraction), estimate.memory * (1 + fraction))


def confidence(
    cpu_samples: Sequence[CpuSample], memory_peaks: Sequence[MemoryPeak], samples_per_day: float
) -> float:
    """min(history length in days, sample count / samples per day), from the cpu samples.

    Falls back to the memory peaks for a container that has no cpu samples.
    """
    times = [s.at for s in cpu_samples] or [p.at for p in memory_peaks]
    if not times:
        return 0.0
    lifespan_days = (max(times) - min(times)) / DAY_SECONDS
    return min(lifespan_days, len(times) / samples_per_day)


def with_confidence(estimate: Resources, multiplier: float, exponent: float, conf: float) -> Resources:
    """estimate x (1 + multiplier / confidence) ** exponent (confidence 0: x inf or x 0)."""

    def scale(amount: float) -> float:
        if amount == 0:
            return 0.0
        if conf <= 0:
            return math.inf if exponent > 0 else 0.0
        return float(amount * (1 + multiplier / conf) ** exponent)

    return Resources(scale(estimate.cpu), scale(estimate.memory))


def min_resources_per_container(config: VpaConfig, containers: int) -> Resources:
    """The pod minimum split evenly across its containers."""
    share = 1 / max(1, containers)
    return Resources(config.pod_min_cpu_cores * share, config.pod_min_memory_bytes * share)


def at_least(estimate: Resources, minimum: Resources) -> Resources:
    return Resources(max(estimate.cpu, minimum.cpu), max(estimate.memory, minimum.memory))


def capped(estimate: Resources) -> Resources:
    return Resources(min(estimate.cpu, MAX_CPU_CORES), min(estimate.memory, MAX_MEMORY_BYTES))


def container_percentiles(usage: ContainerUsage, config: VpaConfig, now: float) -> dict[float, Resources]:
    """The raw (no margin) cpu and memory percentiles the recommendation uses."""
    cpu_buckets = ExponentialBuckets(config.cpu_first_bucket, config.bucket_ratio, config.cpu_max_value)
    memory_buckets = ExponentialBuckets(
        config.memory_first_bucket, config.bucket_ratio, config.memory_max_value
    )
    cpu = histogram(
        cpu_buckets,
        (
            (
                s.cores,
                decay_weight(now - s.at, config.half_life_seconds)
                * (1.0 if s.request_cores is None else max(s.request_cores, config.min_cpu_sample_weight)),
            )
            for s in usage.cpu_samples
        ),
    )
    memory = histogram(
        memory_buckets,
        ((p.bytes, decay_weight(now - p.at, config.half_life_seconds)) for p in usage.memory_peaks),
    )
    # A bucket's upper edge can lie above every sample in it; never estimate more than was seen.
    cpu_seen = max((s.cores for s in usage.cpu_samples), default=0.0)
    memory_seen = max((float(p.bytes) for p in usage.memory_peaks), default=0.0)
    fractions = (config.target_percentile, config.lower_bound_percentile, config.upper_bound_percentile)
    return {
        f: Resources(
            min(percentile(cpu_buckets, cpu, f), cpu_seen),
            min(percentile(memory_buckets, memory, f), memory_seen),
        )
        for f in fractions
    }


def recommend(
    containers: Sequence[ContainerUsage], config: VpaConfig | None = None, now: float = 0.0
) -> dict[str, Recommendation]:
    """Target, lower and upper bound per container (cpu in cores, memory in bytes)."""
    config = config or VpaConfig()
    minimum = min_resources_per_container(config, len(containers))
    result: dict[str, Recommendation] = {}
    for usage in containers:
        raw = container_percentiles(usage, config, now)
        margin = config.safety_margin_fraction
        target = with_margin(raw[config.target_percentile], margin)
        lower = with_margin(raw[config.lower_bound_percentile], margin)
        upper = with_margin(raw[config.upper_bound_percentile], margin)
        conf = confidence(usage.cpu_samples, usage.memory_peaks, config.samples_per_day)
        upper = with_confidence(
            upper, config.upper_confidence_multiplier, config.upper_confidence_exponent, conf
        )
        lower = with_confidence(
            lower, config.lower_confidence_multiplier, config.lower_confidence_exponent, conf
        )
        result[usage.name] = Recommendation(
            target=capped(at_least(target, minimum)),
            lower_bound=capped(at_least(lower, minimum)),
            upper_bound=capped(at_least(upper, minimum)),
        )
    return result
