"""Distribution-free confidence bounds of a percentile from order statistics.

A measured percentile is a sample statistic: with n samples the true p95 may lie above
the observed one. The distribution-free bound comes from order statistics: the number of
samples below the true q-quantile is Binomial(n, q), so the k-th smallest sample is
above the quantile with probability P(Bin(n, q) <= k - 1). The upper bound is the
smallest such k with probability >= the confidence; the lower bound mirrors it.

Beside the other statistics of a measurement, so projection (analysis) and checks both use
them without analysis importing checks.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

CONFIDENCE = 0.95


def _binom_cdf(k: int, n: int, q: float) -> float:
    """P(Bin(n, q) <= k), exact in log space for moderate n, normal approximation beyond."""
    if k < 0:
        return 0.0
    if k >= n:
        return 1.0
    if n > 5000:
        mean, sd = n * q, math.sqrt(n * q * (1 - q))
        return 0.5 * (1 + math.erf((k + 0.5 - mean) / (sd * math.sqrt(2))))
    log_q, log_p = math.log(q), math.log1p(-q)
    total = 0.0
    for i in range(k + 1):
        total += math.exp(
            math.lgamma(n + 1) - math.lgamma(i + 1) - math.lgamma(n - i + 1) + i * log_q + (n - i) * log_p
        )
    return min(1.0, total)


def order_statistic_ranks(n: int, q: float, confidence: float = CONFIDENCE) -> tuple[int | None, int | None]:
    """1-based ranks ``(lower, upper)`` of the one-sided ``confidence`` bounds of the q-quantile
    among n sorted samples; None where n is too small for that bound."""
    upper = None
    lo_k, hi_k = 1, n
    # smallest k with P(Bin(n,q) <= k-1) >= confidence: binary search (the CDF is monotone in k)
    if _binom_cdf(n - 1, n, q) >= confidence:
        while lo_k < hi_k:
            mid = (lo_k + hi_k) // 2
            if _binom_cdf(mid - 1, n, q) >= confidence:
                hi_k = mid
            else:
                lo_k = mid + 1
        upper = lo_k
    lower = None
    # largest k with P(X_(k) <= quantile) = P(Bin(n,q) >= k) >= confidence
    if 1 - _binom_cdf(0, n, q) >= confidence:
        lo_k, hi_k = 1, n
        while lo_k < hi_k:
            mid = (lo_k + hi_k + 1) // 2
            if 1 - _binom_cdf(mid - 1, n, q) >= confidence:
                lo_k = mid
            else:
                hi_k = mid - 1
        lower = lo_k
    return lower, upper


def percentile_bounds(
    samples: Sequence[float], q: float, confidence: float = CONFIDENCE
) -> tuple[float | None, float | None]:
    """Distribution-free ``(lower, upper)`` confidence bounds of the q-quantile of ``samples``."""
    values = sorted(samples)
    lower, upper = order_statistic_ranks(len(values), q, confidence)
    return (values[lower - 1] if lower else None, values[upper - 1] if upper else None)
