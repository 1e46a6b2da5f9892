"""Evaluate every budget of a target against what was measured and read statically.

Pure: no I/O, no printing. Each budget becomes one :class:`Check` with its provenance.
A figure measured on this host is labelled as such: until a projection exists for a
target, host figures are not passed off as the target's.
"""

from __future__ import annotations

from typing import Any

from mlfit.catalog.loader import Target
from mlfit.catalog.schema import Percentile
from mlfit.catalog.units import format_duration, format_rate, format_size
from mlfit.checks.load import load_checks
from mlfit.result import Check, Measurement, ModelInfo, Provenance, TargetReport, Verdict, worst


def _upper_limit_check(metric: str, value: float, limit: float, unit: str, fmt: Any, provenance: Provenance,
                       method: str = "", reason: str = "") -> Check:
    verdict = Verdict.PASS if value <= limit else Verdict.FAIL
    return Check(metric=metric, budget=f"<= {fmt(limit)}", limit=limit, value=value, lower=value, upper=value,
                 unit=unit, verdict=verdict, provenance=provenance, method=method,
                 margin=(limit - value) / limit, reason=reason)


def latency_checks(target: Target, m: Measurement, provenance: Provenance, method: str) -> list[Check]:
    checks: list[Check] = []
    for percentile, limit in target.profile.budgets.latency.items():
        metric = f"latency.{percentile.value}"
        value = getattr(m.latency, percentile.value)
        if value is None:
            checks.append(Check(metric=metric, budget=f"<= {format_duration(limit)}", limit=limit, unit="s",
                                verdict=Verdict.INCONCLUSIVE, provenance=provenance, method=method,
                                reason=f"insufficient samples: {m.latency.n} collected, {percentile.value} needs "
                                       f"{_min_samples(percentile)}; raise --max-time"))
            continue
        check = _upper_limit_check(metric, value, limit, "s", format_duration, provenance, method)
        if check.verdict is Verdict.PASS and m.unstable:
            check = check.model_copy(update={
                "verdict": Verdict.INCONCLUSIVE,
                "reason": "measurement is unstable (" + "; ".join(m.warnings) + "); a noisy run cannot pass"})
        checks.append(check)
    return checks


def _min_samples(p: Percentile) -> int:
    from mlfit.catalog.schema import MIN_SAMPLES

    return MIN_SAMPLES[p]


def evaluate(target: Target, model: ModelInfo, measurement: Measurement | None,
             static: dict[str, Any] | None, on_target: bool = False) -> TargetReport:
    """All checks of one target. ``static`` holds file facts (opset, dtypes) where known.

    ``on_target``: the measurement was taken on the target's own hardware (a cluster worker
    that embodies it), so its figures are the target's, labelled measured-on-target.
    """
    profile = target.profile
    budgets = profile.budgets
    checks: list[Check] = []
    notes: list[str] = []

    if model.runtime not in [r.value for r in profile.runtimes]:
        checks.append(Check(metric="compat.runtime", budget=f"one of {', '.join(r.value for r in profile.runtimes)}",
                            verdict=Verdict.FAIL, provenance=Provenance.STATIC,
                            reason=f"the model runs on {model.runtime}, which {target.name} does not provide"))
    if static:
        opset = static.get("opset")
        if isinstance(opset, int):
            ok = profile.opset.min <= opset <= profile.opset.max
            checks.append(Check(metric="compat.opset", budget=f"{profile.opset.min}..{profile.opset.max}",
                                value=float(opset), verdict=Verdict.PASS if ok else Verdict.FAIL,
                                provenance=Provenance.STATIC,
                                reason="" if ok else f"opset {opset} is outside what {target.name} supports"))
        dtypes = static.get("dtypes")
        if isinstance(dtypes, list):
            unsupported = sorted(set(dtypes) - set(profile.dtypes))
            checks.append(Check(metric="compat.dtypes", budget=", ".join(profile.dtypes),
                                verdict=Verdict.FAIL if unsupported else Verdict.PASS,
                                provenance=Provenance.STATIC,
                                reason=f"unsupported dtypes: {', '.join(unsupported)}" if unsupported else ""))
    if budgets.model_size is not None:
        checks.append(_upper_limit_check("model.size", float(model.size_bytes), budgets.model_size, "B",
                                         format_size, Provenance.STATIC, "file size on disk"))

    if measurement is not None:
        host_method = "measured on this host, not on the target's hardware"
        provenance = Provenance.MEASURED_ON_HOST
        if on_target:
            host_method = "measured on the target's own hardware"
            provenance = Provenance.MEASURED_ON_TARGET
        checks.extend(latency_checks(target, measurement, provenance, host_method))
        if budgets.cold_start is not None:
            checks.append(_upper_limit_check("cold_start", measurement.cold_start.total_s, budgets.cold_start, "s",
                                             format_duration, provenance, "session creation + first inference; "
                                             + host_method))
        if budgets.peak_memory is not None:
            limit = budgets.peak_memory.limit_bytes(target.hardware)
            checks.append(_upper_limit_check("memory.peak", float(measurement.memory.peak_bytes), limit, "B",
                                             format_size, provenance, "process high-water mark; " + host_method))
        if budgets.throughput is not None:
            tp = measurement.throughput
            value = tp.batched_per_s if tp.batched_per_s and tp.batch_size == profile.batch_size else None
            basis = f"batch {profile.batch_size}"
            if value is None:
                value = tp.single_stream_per_s
                basis = "single stream (batch dim not free)" if profile.batch_size > 1 else "single stream"
            verdict = Verdict.PASS if value >= budgets.throughput else Verdict.FAIL
            checks.append(Check(metric="throughput", budget=f">= {format_rate(budgets.throughput)}",
                                limit=budgets.throughput, value=value, lower=value, upper=value, unit="/s",
                                verdict=verdict, provenance=provenance, method=f"{basis}; {host_method}",
                                margin=(value - budgets.throughput) / budgets.throughput))
        checks.extend(load_checks(target, measurement, provenance, host_method))
        where = (f"on {target.name}'s own hardware (a worker embodying the target)" if on_target
                 else f"on this host, not on {target.hardware.name}")
        notes.append(f"latency, memory and throughput were measured {where}")
    verdict = worst([c.verdict for c in checks]) if checks else Verdict.PASS
    return TargetReport(target=target.name, hardware=target.hardware.id, hardware_name=target.hardware.name,
                        source=target.source, verdict=verdict, checks=checks, notes=notes)
