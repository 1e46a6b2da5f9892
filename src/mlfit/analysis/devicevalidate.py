"""Validating the device model (mlfit.analysis.devicemodel) the way a user meets it: leave-one-out,
leave-one-group-out (a device, or a source, the fit never saw), and the widenings those residuals set.

A user's device is a source the fit never saw: another build, runtime version, board and harness.
``leave_group_out`` predicts every source's rows by a fit without that source; ``calibrate_widenings``
sets, from those predictions, how much wider a projection's band must be for a source the fit never
saw: one widening where some column of the configuration is backed by a single source (or none: its
prior), a narrower one where two or more independent sources back every column (their agreement is
evidence), and the per-column widening for a column without a row. Used by
``benchmarks/bench_devices.py`` (item 9) to write the committed fit. Pure: no I/O.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import replace

from mlfit.analysis.devicemodel import (
    BAND_QUANTILE,
    MULTI_SOURCE_KEY,
    UNFITTED_COLUMN,
    UNFITTED_KEY,
    UNSEEN_SOURCE_KEY,
    WIDENING_FLOOR,
    Config,
    Params,
    Prediction,
    Structure,
    fit,
    log_residual,
    predict,
    quantile,
)


def loo(rows: Sequence[tuple[Structure, Config, float]], base: Params | None = None,
        nested: bool = True, sources: Sequence[str] | None = None) -> list[tuple[Prediction, float]]:
    """Leave-one-out: each row predicted by a fit on the others; its band from the residuals
    of a leave-one-out inside those others (so the band never saw the row it is judged on).
    ``sources``: each row's source (the fit on the others counts the sources behind each column)."""
    out: list[tuple[Prediction, float]] = []
    for i in range(len(rows)):
        others = [r for j, r in enumerate(rows) if j != i]
        params = fit(others, base, None if sources is None else [g for j, g in enumerate(sources) if j != i])
        band = params.band_log
        if nested and len(others) >= 3:
            inner = [abs(log_residual(t, predict(s, c, fit([r for k, r in enumerate(others) if k != j], base)).value))
                     for j, (s, c, t) in enumerate(others)]
            band = quantile(inner, BAND_QUANTILE)
        params = replace(params, band_log=band)
        s, c, t = rows[i]
        out.append((predict(s, c, params), t))
    return out


def leave_group_out(rows: Sequence[tuple[Structure, Config, float]], groups: Sequence[str],
                    base: Params | None = None, calibrate_source: bool = False,
                    sources: Sequence[str] | None = None) -> list[tuple[Prediction, float]]:
    """Each group's rows (e.g. every row of one device, or of one source) predicted by a fit that
    never saw the group, its band from a leave-one-out inside the other groups: how mlfit fares on a
    device or a source the table does not have (its columns then keep their priors unless another
    group shares them). ``calibrate_source``: the unseen-source widenings are set, inside the other
    groups only, from their own leave-one-group-out (so the band never saw the group it judges), the
    groups being the sources. ``sources``: each row's source, to count the sources behind each column."""
    if calibrate_source and sources is None:
        sources = groups
    out: list[tuple[Prediction, float] | None] = [None] * len(rows)
    for group in sorted(set(groups)):
        keep = [g != group for g in groups]
        others = [r for r, k in zip(rows, keep, strict=True) if k]
        other_sources = None if sources is None else [g for g, k in zip(sources, keep, strict=True) if k]
        params = fit(others, base, other_sources)
        inner = [abs(log_residual(t, p.value)) for p, t in loo(others, base, nested=False)]
        params = replace(params, band_log=quantile(inner, BAND_QUANTILE))
        if calibrate_source:
            other_groups = [g for g, k in zip(groups, keep, strict=True) if k]
            column, source, one, multi = calibrate_widenings(
                leave_group_out(others, other_groups, params, sources=other_groups))
            params = replace(params, unfitted_column_log=column, unseen_source_log=source, one_source_log=one,
                             multi_source_log=multi)
        for i, (s, c, t) in enumerate(rows):
            if groups[i] == group:
                out[i] = (predict(s, c, params), t)
    return [o for o in out if o is not None]


def calibrate_unseen(predictions: Sequence[tuple[Prediction, float]], device_key: str = "no truth-table row for device",
                     target: float = BAND_QUANTILE) -> float:
    """The smallest unseen-device widening (log half-width) with which ``target`` of the
    leave-one-device-out predictions fall inside their bands (their other widenings kept)."""
    for step in range(0, 61):
        u = max(WIDENING_FLOOR, step * 0.025)
        inside = 0
        for pred, t in predictions:
            half2 = sum(h * h for k, h in pred.widenings.items() if not k.startswith(device_key)) + u * u
            inside += abs(log_residual(t, pred.value)) <= math.sqrt(half2)
        if inside >= target * len(predictions):
            return u
    return 60 * 0.025


def calibrate_widenings(predictions: Sequence[tuple[Prediction, float]],
                        target: float = BAND_QUANTILE) -> tuple[float, float, float, float]:
    """The widening for a column without a row and the unseen-source widenings by the sources behind
    the configuration's least-backed column: none (a column keeps its prior), one, two or more (log
    half-widths). Each is the narrowest with which ``target`` of the leave-one-source-out
    ``predictions`` with that backing fall inside their bands (their other widenings kept); the first
    two as the pair with the narrowest median band over the unbacked rows (calibrating the per-column
    widening too keeps a source whose runtime the fit never saw from stacking guesses). A backing with
    no row takes the next weaker one's; more backing is never widened more than less, and less never
    narrower than more."""
    groups: dict[int, list[tuple[float, int, float]]] = {0: [], 1: [], 2: []}
    for pred, t in predictions:
        kept = sum(h * h for k, h in pred.widenings.items()
                   if not k.startswith((UNFITTED_KEY + " '", UNSEEN_SOURCE_KEY, MULTI_SOURCE_KEY)))
        columns = sum(1 for k in pred.widenings if k.startswith(UNFITTED_KEY + " '"))
        groups[min(pred.sources_behind, 2)].append((kept, columns, abs(log_residual(t, pred.value))))
    best: tuple[float, float, float] | None = None
    steps = [i * 0.025 for i in range(1, 61)]
    for column in sorted({max(WIDENING_FLOOR, c) for c in steps[:40]}):
        for source in steps:
            halves = sorted(math.sqrt(kept + n * column * column + source * source) for kept, n, _ in groups[0])
            inside = sum(r <= math.sqrt(kept + n * column * column + source * source) for kept, n, r in groups[0])
            if inside >= target * len(groups[0]):
                width = halves[len(halves) // 2] if halves else 0.0
                if best is None or width < best[0] - 1e-12:
                    best = (width, column, source)
                break  # a wider unseen-source widening only widens the band
    column, unbacked = (best[1], best[2]) if best else (UNFITTED_COLUMN, steps[-1])

    def narrowest(rows: list[tuple[float, int, float]], floor: float, fallback: float) -> float:
        if not rows:
            return fallback
        for u in sorted({max(floor, x) for x in steps}):
            if sum(r <= math.sqrt(kept + u * u) for kept, _, r in rows) >= target * len(rows):
                return u
        return steps[-1]

    one = narrowest(groups[1], steps[0], unbacked)
    multi = min(narrowest(groups[2], WIDENING_FLOOR, one), one)
    # knowing less never narrows a band: a column no source backs is widened at least as much as one
    # a single source backs (the unbacked rows of the table may have been easy; a user's need not be)
    return column, max(unbacked, one), one, multi
