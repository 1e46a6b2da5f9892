"""The verdict rule: three-way verdicts from confidence bounds (the order-statistic bounds
themselves are computed beside the statistics, in :mod:`mlfit.measure.bounds`).
"""

from __future__ import annotations

from mlfit.result import Verdict


def three_way(
    lower: float | None, upper: float | None, limit: float, higher_is_better: bool = False
) -> Verdict:
    """PASS when the conservative bound is within the limit, FAIL when even the optimistic
    bound is not, INCONCLUSIVE otherwise (or when a bound is missing)."""
    if higher_is_better:
        if lower is not None and lower >= limit:
            return Verdict.PASS
        if upper is not None and upper < limit:
            return Verdict.FAIL
        return Verdict.INCONCLUSIVE
    if upper is not None and upper <= limit:
        return Verdict.PASS
    if lower is not None and lower > limit:
        return Verdict.FAIL
    return Verdict.INCONCLUSIVE
