"""Latency statistics from raw samples, with MLPerf's minimum sample counts."""

from __future__ import annotations

import math
from collections.abc import Sequence

from mlfit.catalog.schema import MIN_SAMPLES, Percentile
from mlfit.result import LatencyStats


def nearest_rank(sorted_values: Sequence[float], quantile: float) -> float:
    """The sample at rank ceil(q * n): a percentile that is always an observed value."""
    rank = max(1, math.ceil(quantile * len(sorted_values)))
    return sorted_values[rank - 1]


def latency_stats(samples_ns: Sequence[int]) -> LatencyStats:
    if not samples_ns:
        raise ValueError("no samples")
    values = sorted(s / 1e9 for s in samples_ns)
    n = len(values)
    mean = sum(values) / n
    std = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1)) if n > 1 else 0.0
    pct: dict[Percentile, float | None] = {}
    insufficient: list[str] = []
    for p in Percentile:
        if n >= MIN_SAMPLES[p]:
            pct[p] = nearest_rank(values, p.quantile)
        else:
            pct[p] = None
            insufficient.append(p.value)
    return LatencyStats(
        n=n, min=values[0], mean=mean, std=std, cv=std / mean if mean > 0 else 0.0,
        p50=pct[Percentile.P50], p90=pct[Percentile.P90], p95=pct[Percentile.P95], p99=pct[Percentile.P99],
        max=values[-1], samples_ns=list(samples_ns), insufficient=insufficient,
    )


def quality_warnings(stats: LatencyStats, load_avg_1m: float, cores: int) -> list[str]:
    """pyperf-style checks: noisy samples or a busy machine make latency figures unreliable."""
    warnings: list[str] = []
    if stats.n >= 2 and stats.cv >= 0.10:
        warnings.append(f"unstable: coefficient of variation is {stats.cv:.0%} (>= 10%)")
    median = stats.p50 or stats.mean
    if median > 0 and stats.n >= 10:
        if stats.min < median * 0.5:
            warnings.append(f"minimum {stats.min * 1e3:.3f} ms is less than half the median")
        if stats.max > median * 10:
            warnings.append(f"maximum {stats.max * 1e3:.3f} ms is over 10x the median (outliers)")
    if load_avg_1m > cores * 0.9:
        warnings.append(f"busy machine: load average {load_avg_1m:.2f} on {cores} cores")
    return warnings
