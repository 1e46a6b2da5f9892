"""Combined variants: two changes at once (int8 + 2 threads, int8 + batch 1, 2 threads + a smaller
input), tried only when no single change was recommended, within what is left of the time budget
(pure: which pairs, in which order; the engine measures them).

A pair takes one change from each of two groups (a build, a thread count, a batch, one input dim)
among the single variants that were measured and neither passed nor failed to build. Each pair
is predicted from its parts' measured effects, multiplied (a part that made the original's
failing figure 0.5x and another 0.8x predict 0.4x), only to choose the order: pairs predicted to
fit first, the cheapest of them first (their parts' places in the single plan, which is cheapest
first), then the others, the largest predicted gain first; pairs predicted no better than the
original are not tried. The prediction is never reported as a figure: every pair tried is
measured, projected and judged like any variant.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from mlfit.advise.variants import BUILT, Kind, Variant
from mlfit.records import Suggestion, VariantCheck

# Pairs worth measuring at most (the search stops sooner at the first recommended one or the deadline).
MAX_COMBOS = 6
# Single variants whose effect can be combined: measured, judged, not passing.
_PARTS = ("inconclusive", "does-not-fit")


def _group(variant: Variant) -> str:
    if variant.kind in BUILT:
        return "build"
    if variant.kind is Kind.DIM:
        return f"dim:{variant.dims[0][0]}"
    return variant.kind.value


def combine(first: Variant, second: Variant) -> Variant:
    """One variant with both changes (a build first in its label: int8-dynamic+threads=2)."""
    a, b = (second, first) if second.kind in BUILT else (first, second)
    return Variant(Kind.COMBO, f"{a.label}+{b.label}", f"{a.change}; and {b.change}",
                   threads=a.threads if a.threads is not None else b.threads,
                   batch=a.batch if a.batch is not None else b.batch, dims=(*a.dims, *b.dims),
                   build=a.file_kind or b.file_kind)


def _higher_is_better(check: VariantCheck) -> bool:
    """A lower bound (throughput): its margin is (value - limit) / limit."""
    if check.margin is None or not check.limit or check.value is None or check.value == check.limit:
        return False
    return math.isclose(check.margin, (check.value - check.limit) / check.limit, rel_tol=1e-6)


def _log_ratios(suggestion: Suggestion, wanted: Sequence[VariantCheck]) -> list[float] | None:
    """log(variant / original) per figure the original did not pass; None when one is missing."""
    got = {c.metric: c.value for c in suggestion.checks}
    out: list[float] = []
    for check in wanted:
        value = got.get(check.metric)
        if value is None or check.value is None or value <= 0 or check.value <= 0:
            return None
        out.append(math.log(value / check.value))
    return out


def _fits(wanted: Sequence[VariantCheck], logs: Sequence[float]) -> bool:
    """Would the original's figures, scaled by the predicted ratios, meet their limits?"""
    for check, log in zip(wanted, logs, strict=True):
        if check.value is None or check.limit is None:
            return False
        predicted = check.value * math.exp(log)
        if (predicted < check.limit) if _higher_is_better(check) else (predicted > check.limit):
            return False
    return True


def plan_combos(tried: Sequence[tuple[Variant, Suggestion]], original: Sequence[VariantCheck]) -> list[Variant]:
    """The pairs worth measuring, in the order to try them (at most MAX_COMBOS)."""
    wanted = [c for c in original if c.verdict != "PASS"]
    if not wanted:
        return []
    parts: list[tuple[int, Variant, list[float]]] = []
    for order, (variant, suggestion) in enumerate(tried):
        logs = _log_ratios(suggestion, wanted) if suggestion.status in _PARTS else None
        if logs is not None and variant.kind is not Kind.COMBO:
            parts.append((order, variant, logs))
    ranked: list[tuple[bool, int, float, Variant]] = []
    for i, (order_a, a, logs_a) in enumerate(parts):
        for order_b, b, logs_b in parts[i + 1:]:
            if _group(a) == _group(b):
                continue
            logs = [x + y for x, y in zip(logs_a, logs_b, strict=True)]
            gain = sum(-x if _higher_is_better(c) else x for c, x in zip(wanted, logs, strict=True))
            if gain >= 0:  # predicted no better than the original: not worth a measurement
                continue
            fits = _fits(wanted, logs)  # among those predicted to fit the cheapest first, else the closest
            ranked.append((not fits, order_a + order_b if fits else 0, gain, combine(a, b)))
    ranked.sort(key=lambda row: row[:3])
    return [row[3] for row in ranked[:MAX_COMBOS]]
