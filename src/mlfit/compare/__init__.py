"""Regression compare: did NEW get slower or bigger than BASE, beyond noise and beyond a minimum effect?

:mod:`.stats` holds the statistics (block bootstrap, Mann-Whitney U, erfinv), :mod:`.rules` what
is judged and how (options, the status rule, comparability), :mod:`.engine` the compare of two
results and two reports. Pure: no I/O.
"""

from __future__ import annotations

from mlfit.compare.engine import compare_reports, compare_results, with_comparison
from mlfit.compare.rules import (
    DEFAULT_CONFIDENCE,
    DEFAULT_MIN_EFFECT,
    DEFAULT_RESAMPLES,
    DEFAULT_RUN_NOISE,
    CompareOptions,
    Method,
    not_comparable,
)
from mlfit.compare.stats import block_bootstrap, mann_whitney_p, row_statistics

__all__ = [
    "DEFAULT_CONFIDENCE", "DEFAULT_MIN_EFFECT", "DEFAULT_RESAMPLES", "DEFAULT_RUN_NOISE", "CompareOptions",
    "Method", "block_bootstrap", "compare_reports", "compare_results", "mann_whitney_p", "not_comparable",
    "row_statistics", "with_comparison",
]
