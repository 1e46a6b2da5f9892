"""Regression compare: did NEW get slower or bigger than BASE, beyond noise and beyond a minimum effect?

Each latency figure (p50, p90, p95, p99, mean, single-stream throughput) gets a confidence
interval for its relative change from a *block* bootstrap of the raw samples
(``LatencyStats.samples_ns``): samples are resampled in runs of consecutive values, so slow
drift inside a run (a busy neighbour, a frequency change) widens the interval instead of
being mistaken for independent evidence. Each resampled ratio is also multiplied by a
log-normal run-to-run factor (``run_noise``), because one run per side cannot show how much
two runs of the same model on the same machine differ.

A change is a **regression** only when it is both significant and larger than the minimum
effect (default 5%): the whole interval lies beyond +min_effect on the worse side. With
``method="mannwhitney"`` a Mann-Whitney U test on all samples must also reject equality.
An estimate beyond the minimum effect that is not established is ``inconclusive``.

In a run flagged unstable, a tail figure (p90/p95/p99, mean, throughput) counts only when the
median moved the same way: a busy machine inflates tails, the median resists. Memory and file
size are single, repeatable readings per run, judged by the minimum effect (memory also by a
1 MiB floor); cold start and batched throughput are single noisy readings and only reported.

Pure: no I/O. The CLI reads the files (:func:`mlfit.resultfile.load_report`) and renders.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mlfit.analysis.uncontended import cost_figure
from mlfit.compare.rules import (
    _BETTER,
    _TAIL,
    _UNITS,
    MEMORY_FLOOR,
    CompareOptions,
    Method,
    _judged_by_cost,
    _notes,
    _pct,
    _same_setup,
    _status,
    not_comparable,
)
from mlfit.compare.stats import MAX_WORK, QUANTILES, block_bootstrap, erfinv, mann_whitney_p, row_statistics
from mlfit.errors import ConfigError
from mlfit.report.common import format_value
from mlfit.result import (
    ChangeStatus,
    Comparison,
    MetricChange,
    ModelComparison,
    Report,
    RunResult,
)


@dataclass(frozen=True)
class _Sides:
    """Point estimates and bootstrap distributions of both runs of one model."""

    base: dict[str, float]
    new: dict[str, float]
    base_boot: dict[str, np.ndarray]
    new_boot: dict[str, np.ndarray]
    run_noise: np.ndarray  # multiplicative run-to-run factor per resample
    resamples: int
    mw_p: float | None
    noisy: list[str]


def _sides(base: np.ndarray, new: np.ndarray, noisy: list[str], options: CompareOptions) -> _Sides:
    rng = np.random.default_rng(options.seed)
    resamples = max(200, min(options.resamples, MAX_WORK // max(len(base), len(new))))
    point = {
        side: {k: float(v[0]) for k, v in row_statistics(np.sort(x)[None, :]).items()}
        for side, x in (("base", base), ("new", new))
    }
    # Two runs of one model on one machine differ by more than their samples show (frequency,
    # placement, neighbours): each run gets an independent log-normal factor of that spread.
    noise = np.exp(rng.normal(0.0, math.sqrt(2.0) * options.run_noise, resamples))
    return _Sides(
        base=point["base"],
        new=point["new"],
        base_boot=block_bootstrap(base, resamples, rng),
        new_boot=block_bootstrap(new, resamples, rng),
        run_noise=noise,
        resamples=resamples,
        mw_p=mann_whitney_p(base, new) if options.method is Method.MANN_WHITNEY else None,
        noisy=noisy,
    )


def _sampled_change(
    metric: str, sides: _Sides, options: CompareOptions, median: ChangeStatus | None = None
) -> MetricChange:
    """One latency figure; ``median`` is the median's status, which a noisy run's tail may only follow."""
    base_value, new_value = sides.base[metric], sides.new[metric]
    change = new_value / base_value - 1.0
    ratios = sides.new_boot[metric] / sides.base_boot[metric] * sides.run_noise - 1.0
    alpha = 1.0 - options.confidence
    ci_low, ci_high = (float(v) for v in np.quantile(ratios, [alpha / 2, 1 - alpha / 2]))
    better = _BETTER.get(metric, "lower")
    sign = 1.0 if better == "lower" else -1.0
    worse = sign * change
    worse_lo, worse_hi = sorted((sign * ci_low, sign * ci_high))
    conf = f"{options.confidence:.0%}"
    method = (
        f"{conf} block bootstrap ({sides.resamples} resamples) with {options.run_noise:.0%} run-to-run noise"
    )
    significant = worse_lo > 0 or worse_hi < 0
    if options.method is Method.MANN_WHITNEY and sides.mw_p is not None:
        significant = significant and sides.mw_p < alpha
        method = f"Mann-Whitney U (p = {sides.mw_p:.2g}) and " + method
    status = _status(worse, worse_lo, worse_hi, significant, options.min_effect)
    effect = f"{options.min_effect:.0%}"
    reason = {
        ChangeStatus.REGRESSION: f"worse by {_pct(worse)[1:]}, beyond the {effect} minimum effect at {conf}",
        ChangeStatus.IMPROVEMENT: f"better by {_pct(-worse)[1:]}, beyond the {effect} minimum effect "
        f"at {conf}",
        ChangeStatus.INCONCLUSIVE: f"{_pct(change)} is beyond {effect}, but the {conf} interval is not",
        ChangeStatus.UNCHANGED: f"no change beyond {effect}",
    }[status]
    # A busy machine inflates tails and means; the median resists. In a noisy run a tail change
    # counts only when the median moved the same way, i.e. when the model itself changed.
    directed = (ChangeStatus.REGRESSION, ChangeStatus.IMPROVEMENT)
    if metric in _TAIL and sides.noisy and status in directed and median is not status:
        status = ChangeStatus.INCONCLUSIVE
        who = "both runs were" if len(sides.noisy) == 2 else f"the {sides.noisy[0]} run was"
        reason = (
            f"{_pct(change)}, but {who} flagged unstable and the median did not move the same way: "
            "a noisy run's tail cannot establish a change on its own (re-run on a quiet machine)"
        )
    return MetricChange(
        metric=metric,
        unit=_UNITS.get(metric, "s"),
        better=better,
        base=base_value,
        new=new_value,
        change=change,
        ci_low=ci_low,
        ci_high=ci_high,
        p_value=sides.mw_p,
        method=method,
        status=status,
        reason=reason,
    )


def _single_change(
    name: str,
    unit: str,
    base: float | None,
    new: float | None,
    options: CompareOptions,
    repeatable: bool,
    method: str,
    floor: float = 0.0,
) -> MetricChange | None:
    """A metric with one reading per run. ``floor``: an absolute change that must also be exceeded."""
    if base is None or new is None:
        return None
    if base <= 0:
        return MetricChange(
            metric=name,
            unit=unit,
            base=base,
            new=new,
            method=method,
            status=ChangeStatus.NOT_TESTED,
            reason="base value is zero",
        )
    change = new / base - 1.0
    effect = f"{options.min_effect:.0%}"
    if not repeatable:
        status, reason = ChangeStatus.NOT_TESTED, "one reading per run: the change is shown, not tested"
    elif floor > 0 and abs(new - base) <= floor:
        status, reason = ChangeStatus.UNCHANGED, f"within the {format_value(floor, unit)} reading granularity"
    elif change > options.min_effect:
        status, reason = (
            ChangeStatus.REGRESSION,
            f"larger by {_pct(change)[1:]}, beyond the {effect} minimum effect",
        )
    elif change < -options.min_effect:
        status, reason = (
            ChangeStatus.IMPROVEMENT,
            f"smaller by {_pct(-change)[1:]}, beyond the {effect} minimum effect",
        )
    else:
        status, reason = ChangeStatus.UNCHANGED, f"within the {effect} minimum effect"
    return MetricChange(
        metric=name, unit=unit, base=base, new=new, change=change, method=method, status=status, reason=reason
    )


def _cost_change(base: RunResult, new: RunResult, options: CompareOptions) -> MetricChange | None:
    """The contention-proof figure: each run's uncontended cost per call, the new one carried to the
    base run's host speed by the reference kernel both timed, judged against the noise each run
    measured in itself (the same figure from its even and its odd runs), never below ``run_noise``."""
    b = cost_figure(base.measurement, base.node_profile)
    n = cost_figure(new.measurement, new.node_profile)
    if b is None or n is None or b.basis != n.basis or b.seconds <= 0 or n.seconds <= 0:
        return None
    new_value = n.seconds
    method = f"uncontended cost per call ({b.basis})"
    if b.reference_flops_per_s and n.reference_flops_per_s:
        new_value *= n.reference_flops_per_s / b.reference_flops_per_s
        method += (f"; new run carried to the base run's host speed by the reference kernel "
                   f"(x{n.reference_flops_per_s / b.reference_flops_per_s:.3f})")
    sigma = math.hypot(max(options.run_noise, b.noise), max(options.run_noise, n.noise))
    z = float(np.sqrt(2.0) * erfinv(options.confidence))
    log_ratio = math.log(new_value / b.seconds)
    ci_low, ci_high = math.expm1(log_ratio - z * sigma), math.expm1(log_ratio + z * sigma)
    change = math.expm1(log_ratio)
    significant = ci_low > 0 or ci_high < 0
    status = _status(change, ci_low, ci_high, significant, options.min_effect)
    conf, effect = f"{options.confidence:.0%}", f"{options.min_effect:.0%}"
    reason = {
        ChangeStatus.REGRESSION: f"worse by {_pct(change)[1:]}, beyond the {effect} minimum effect and the runs' "
        f"own noise ({sigma:.1%}) at {conf}",
        ChangeStatus.IMPROVEMENT: f"better by {_pct(-change)[1:]}, beyond the {effect} minimum effect and the runs' "
        f"own noise ({sigma:.1%}) at {conf}",
        ChangeStatus.INCONCLUSIVE: f"{_pct(change)} is beyond {effect}, but not beyond the runs' own noise "
        f"({sigma:.1%}) at {conf}",
        ChangeStatus.UNCHANGED: f"no change beyond {effect}",
    }[status]
    return MetricChange(metric="cost.uncontended", unit="s", better="lower", base=b.seconds, new=new_value,
                        change=change, ci_low=ci_low, ci_high=ci_high, method=f"{method}; noise {sigma:.1%}",
                        status=status, reason=reason)


def _samples_s(result: RunResult) -> np.ndarray:
    assert result.measurement is not None
    return np.asarray(result.measurement.latency.samples_ns, dtype=np.float64) / 1e9


def compare_results(base: RunResult, new: RunResult, options: CompareOptions) -> ModelComparison:
    """Every metric both runs of one model have, with its change and verdict."""
    notes = _notes(base, new)
    changes: list[MetricChange] = []
    bm, nm = base.measurement, new.measurement
    if bm is not None and nm is not None:
        noisy = [side for side, m in (("base", bm), ("new", nm)) if m.unstable]
        base_s, new_s = _samples_s(base), _samples_s(new)
        if len(base_s) >= 2 and len(new_s) >= 2:
            sides = _sides(base_s, new_s, noisy, options)
            for metric in sides.base:
                field = metric.split(".", 1)[1]
                if field in QUANTILES and (
                    getattr(bm.latency, field) is None or getattr(nm.latency, field) is None
                ):
                    continue  # too few samples for this percentile in one of the runs
                median = changes[0].status if changes and changes[0].metric == "latency.p50" else None
                changes.append(_sampled_change(metric, sides, options, median))
        else:
            notes.append("raw latency samples are missing: latency is not compared")
        single = [
            _single_change(
                "memory.peak",
                "B",
                bm.memory.peak_bytes,
                nm.memory.peak_bytes,
                options,
                True,
                "kernel high-water mark, one reading per run (repeatable to well under 1%)",
                MEMORY_FLOOR,
            ),
            _single_change(
                "memory.model_cost",
                "B",
                bm.memory.model_cost,
                nm.memory.model_cost,
                options,
                True,
                "peak minus the runtime's import baseline, one reading per run",
                MEMORY_FLOOR,
            ),
            _single_change(
                "cold_start",
                "s",
                bm.cold_start.model_s,  # the model's part: the runtime's import is not the model's change
                nm.cold_start.model_s,
                options,
                False,
                "load + first inference, one reading per run",
            ),
        ]
        if (
            bm.throughput.batched_per_s
            and nm.throughput.batched_per_s
            and bm.throughput.batch_size == nm.throughput.batch_size
        ):
            single.append(
                _single_change(
                    f"throughput.batch{nm.throughput.batch_size}",
                    "/s",
                    bm.throughput.batched_per_s,
                    nm.throughput.batched_per_s,
                    options,
                    False,
                    "batched loop, raw samples not kept",
                )
            )
        changes.extend(c for c in single if c is not None)
    size = _single_change(
        "model.size",
        "B",
        float(base.model.size_bytes),
        float(new.model.size_bytes),
        options,
        True,
        "file size on disk",
    )
    if size is not None:
        changes.append(size)
    cost = _cost_change(base, new, options)
    same = _same_setup(base, new)
    if cost is not None:
        changes.insert(0, cost)
    changes = _judged_by_cost(changes, cost, same)
    if same:
        notes.append("the same file, inputs, configuration and runtime: only the host differs between the runs")
    return ModelComparison(
        model=new.model.path,
        base_model=base.model.path,
        same_file=base.model.sha256 == new.model.sha256,
        changes=changes,
        notes=notes,
    )


def _pairs(base: Report, new: Report) -> tuple[list[tuple[RunResult, RunResult]], list[str]]:
    """Match results by model: one against one, else by file name, else by content hash."""
    if len(base.results) == 1 and len(new.results) == 1:
        return [(base.results[0], new.results[0])], []
    pairs: list[tuple[RunResult, RunResult]] = []
    warnings: list[str] = []
    by_name = {Path(r.model.path).name: r for r in base.results}
    by_hash = {r.model.sha256: r for r in base.results}
    for result in new.results:
        match = by_name.get(Path(result.model.path).name) or by_hash.get(result.model.sha256)
        if match is None:
            warnings.append(f"{result.model.path}: no run of this model in the baseline; not compared")
        else:
            pairs.append((match, result))
    return pairs, warnings


def _fingerprint(report: Report) -> tuple[str | None, str]:
    for result in report.results:
        if result.host is not None:
            host = result.host
            return host.fingerprint, f"{host.cpu_model}, {host.cores_logical} cores on {host.hostname}"
    return None, "unknown host"


def compare_reports(
    base: Report, new: Report, base_path: str, options: CompareOptions | None = None
) -> Comparison:
    """Compare every model of ``new`` with its run in ``base``.

    Different host fingerprints give a warning, or a :class:`ConfigError` under ``strict``:
    latency measured on two machines says more about the machines than about the model.
    """
    options = options or CompareOptions()
    base_fp, base_host = _fingerprint(base)
    new_fp, new_host = _fingerprint(new)
    same_host = base_fp is not None and base_fp == new_fp
    warnings: list[str] = []
    if not same_host:
        text = (
            f"the runs were measured on different machines (base: {base_host} [{base_fp}], new: {new_host} "
            f"[{new_fp}]): latency and memory changes may come from the machines, not the model"
        )
        if options.strict:
            raise ConfigError(
                text + "; refusing under --strict",
                "re-run the baseline on this machine, or drop --strict to compare anyway",
            )
        warnings.append(text)
    pairs, unmatched = _pairs(base, new)
    warnings.extend(unmatched)
    refused = [f"{Path(n.model.path).name}: {'; '.join(why)}" for b, n in pairs
               if b.error is None and n.error is None and (why := not_comparable(b, n))]
    if refused:
        raise ConfigError(
            "the runs are not comparable, so no difference is reported: " + " | ".join(refused),
            "measure both with the same --shape/--dim/--data, --threads, --batch-sizes and targets",
        )
    targets = {side: sorted({t.target for r in rep.results for t in r.targets}) for side, rep in
               (("base", base), ("new", new))}
    if targets["base"] != targets["new"]:
        warnings.append(f"the runs were checked against different targets ({', '.join(targets['base']) or '-'} -> "
                        f"{', '.join(targets['new']) or '-'}): their verdicts are not compared")
    models: list[ModelComparison] = []
    for b, n in pairs:
        failed = [
            f"{side} run failed ({r.error.kind}: {r.error.message})"
            for side, r in (("base", b), ("new", n))
            if r.error is not None
        ]
        if failed:
            warnings.append(f"{n.model.path}: not compared: {'; '.join(failed)}")
            continue
        models.append(compare_results(b, n, options))
        for side, r in (("base", b), ("new", n)):
            if r.measurement is not None and r.measurement.unstable:
                warnings.append(
                    f"{Path(n.model.path).name}: the {side} run was noisy "
                    f"({'; '.join(r.measurement.warnings)}): its tail figures count only where the median agrees"
                )
    if not models:
        raise ConfigError(
            f"nothing to compare between {base_path} and the new result",
            "both files need a successful run of the same model",
        )
    method = (
        f"{options.method.value}; minimum effect {options.min_effect:.0%}; confidence "
        f"{options.confidence:.0%}"
    )
    return Comparison(
        base_path=base_path,
        base_created=base.created,
        min_effect=options.min_effect,
        confidence=options.confidence,
        method=method,
        same_host=same_host,
        base_fingerprint=base_fp,
        new_fingerprint=new_fp,
        models=models,
        warnings=warnings,
    )


def with_comparison(report: Report, comparison: Comparison) -> Report:
    """The new report carrying its comparison, for every reporter to render."""
    return report.model_copy(update={"comparison": comparison})
