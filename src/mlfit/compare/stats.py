"""The statistics of a regression compare: order statistics per resample, a vectorised block
bootstrap, the Mann-Whitney U test and the inverse error function. Pure numpy, no result types."""

from __future__ import annotations

import math

import numpy as np

# Blocks per resample: n/20 consecutive samples keep drift over a fraction of a run together.
BLOCKS_PER_RESAMPLE = 20


# Bound the memory of one vectorised bootstrap chunk (resamples x samples indices).
_CHUNK_ELEMENTS = 4_000_000


# Cap on resamples x samples sorted per side, so a 100k-sample run still compares in about a second.
MAX_WORK = 10_000_000
QUANTILES = {"p50": 0.50, "p90": 0.90, "p95": 0.95, "p99": 0.99}


def row_statistics(sorted_rows: np.ndarray) -> dict[str, np.ndarray]:
    """Every compared latency figure of each row (one run or one resample, sorted ascending, seconds).

    Percentiles use the nearest rank ceil(q * n), the same definition as the report's figures.
    """
    n = sorted_rows.shape[1]
    out = {f"latency.{name}": sorted_rows[:, max(1, math.ceil(q * n)) - 1] for name, q in QUANTILES.items()}
    mean = sorted_rows.mean(axis=1)
    out["latency.mean"] = mean
    out["throughput.single_stream"] = 1.0 / mean
    return out


def block_bootstrap(samples: np.ndarray, resamples: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Each figure of :func:`row_statistics` over circular moving-block resamples of ``samples``.

    Blocks of n/20 consecutive samples keep slow drift together; resampling single samples
    would treat correlated samples as independent and give intervals that are too narrow.
    """
    n = len(samples)
    block = max(1, n // BLOCKS_PER_RESAMPLE)
    blocks = math.ceil(n / block)
    offsets = np.arange(block)
    chunk = max(1, _CHUNK_ELEMENTS // (blocks * block))
    parts: list[dict[str, np.ndarray]] = []
    for start in range(0, resamples, chunk):
        rows = min(chunk, resamples - start)
        starts = rng.integers(0, n, size=(rows, blocks))
        idx = ((starts[:, :, None] + offsets) % n).reshape(rows, blocks * block)[:, :n]
        parts.append(row_statistics(np.sort(samples[idx], axis=1)))
    return {key: np.concatenate([p[key] for p in parts]) for key in parts[0]}


def mann_whitney_p(a: np.ndarray, b: np.ndarray) -> float:
    """Two-sided Mann-Whitney U p-value (normal approximation, tie and continuity corrected)."""
    n1, n2 = len(a), len(b)
    if n1 == 0 or n2 == 0:
        return 1.0
    combined = np.concatenate([a, b])
    order = np.argsort(combined, kind="mergesort")
    _, inverse, counts = np.unique(combined[order], return_inverse=True, return_counts=True)
    average_rank = np.cumsum(counts) - (counts - 1) / 2.0  # 1-based mean rank of each tie group
    ranks = np.empty(n1 + n2)
    ranks[order] = average_rank[inverse]
    u1 = ranks[:n1].sum() - n1 * (n1 + 1) / 2.0
    n = n1 + n2
    ties = float(np.sum(counts.astype(np.float64) ** 3 - counts))
    variance = n1 * n2 / 12.0 * ((n + 1) - ties / (n * (n - 1)))
    if variance <= 0:
        return 1.0
    z = max(0.0, abs(u1 - n1 * n2 / 2.0) - 0.5) / math.sqrt(variance)
    return math.erfc(z / math.sqrt(2.0))


def erfinv(p: float) -> float:
    """Inverse error function at ``p`` (two-sided normal quantile / sqrt 2), by bisection: no scipy."""
    lo, hi = 0.0, 6.0
    for _ in range(80):
        mid = (lo + hi) / 2
        if math.erf(mid) < p:
            lo = mid
        else:
            hi = mid
    return (lo + hi) / 2
