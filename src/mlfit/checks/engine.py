"""Evaluate every budget of a target against what was measured, projected and read statically.

Pure: no I/O, no printing. Each budget becomes one :class:`Check` with its provenance and
a three-way verdict from its bounds: PASS only when the conservative bound fits, FAIL when
even the optimistic bound does not, INCONCLUSIVE otherwise with the reason. A measured
percentile's bounds are distribution-free order-statistic bounds at 95% confidence; a
projected figure's are the projection's band. Noise widens a band; it never decides a verdict
by itself (host contention is taken out of projected figures in ``mlfit.analysis.uncontended``,
and a measured figure is judged by its order-statistic bounds alone). For a latency FAIL or
INCONCLUSIVE the check names the costliest nodes and op types on the target; for memory, the
largest initializers and activations.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

from mlfit.analysis.compat import compat_checks
from mlfit.analysis.project import Band, Projection
from mlfit.catalog.loader import Target, is_gpu_target
from mlfit.catalog.schema import MIN_SAMPLES, Percentile
from mlfit.catalog.units import format_duration, format_rate, format_size
from mlfit.checks.container import describe_limits, emulation_notes
from mlfit.checks.load import load_checks, load_not_judged
from mlfit.checks.verdict import three_way
from mlfit.measure.bounds import percentile_bounds
from mlfit.measure.stats import nearest_rank
from mlfit.records import NodeProfile, ProjectionSummary
from mlfit.report.common import COLD_START_NAMES
from mlfit.result import (
    Check,
    ColdStart,
    CostItem,
    Emulation,
    Measurement,
    ModelInfo,
    Provenance,
    TargetReport,
    Verdict,
    worst,
)

Fmt = Callable[[float], str]
_FMT: dict[str, Fmt] = {"s": format_duration, "B": format_size, "/s": format_rate}


def _bounded_check(
    metric: str,
    value: float,
    lower: float | None,
    upper: float | None,
    limit: float,
    unit: str,
    provenance: Provenance,
    method: str,
    higher_is_better: bool = False,
) -> Check:
    fmt = _FMT[unit]
    verdict = three_way(lower, upper, limit, higher_is_better)
    margin = ((value - limit) if higher_is_better else (limit - value)) / limit
    reason = ""
    if verdict is Verdict.FAIL:
        bound = upper if higher_is_better else lower
        reason = (
            f"even the optimistic bound {fmt(bound if bound is not None else value)} is "
            f"{'under' if higher_is_better else 'over'} the limit {fmt(limit)}"
        )
    elif verdict is Verdict.INCONCLUSIVE:
        if lower is None or upper is None:
            reason = "no confidence bound: too few samples for one; raise --max-time"
        else:
            reason = f"the band [{fmt(lower)} – {fmt(upper)}] straddles the limit {fmt(limit)}"
    budget = f"{'>=' if higher_is_better else '<='} {fmt(limit)}"
    return Check(
        metric=metric,
        budget=budget,
        limit=limit,
        value=value,
        lower=lower,
        upper=upper,
        unit=unit,
        verdict=verdict,
        provenance=provenance,
        method=method,
        margin=margin,
        reason=reason,
    )


def _with_reason(
    check: Check, extra: str, top: list[CostItem] | None = None, verdict: Verdict | None = None
) -> Check:
    reason = "; ".join(r for r in (check.reason, extra) if r)
    update: dict[str, Any] = {"reason": reason}
    if top is not None:
        update["top"] = top
    if verdict is not None:
        update["verdict"] = verdict
    return check.model_copy(update=update)


def _latency_top(projection: Projection | None) -> tuple[list[CostItem], str]:
    if projection is None or not projection.top_nodes:
        return [], ""
    items = [
        CostItem(kind="node", name=n["name"], op=n["op"], value=n["seconds"], unit="s", share=n["share"])
        for n in projection.top_nodes
    ]
    items += [
        CostItem(kind="op", name=o["op"], op=o["op"], value=o["seconds"], unit="s", share=o["share"])
        for o in projection.top_ops
    ]
    text = "costliest on the target: " + ", ".join(f"{o['op']} {o['share']:.0%}" for o in projection.top_ops)
    return items, text


def _memory_top(static: dict[str, Any] | None) -> tuple[list[CostItem], str]:
    if not static:
        return [], ""
    items = [
        CostItem(kind="initializer", name=i["name"], value=float(i["bytes"]), unit="B")
        for i in static.get("top_initializers", [])
    ]
    items += [
        CostItem(kind="activation", name=a["name"], value=float(a["bytes"]), unit="B")
        for a in static.get("top_activations", [])
    ]
    if not items:
        return [], ""
    parts = [f"{i.name} {format_size(i.value)}" for i in items[:3]]
    return items, "largest initializers/activations: " + ", ".join(parts)


def _needs_detail(check: Check) -> bool:
    return check.verdict in (Verdict.FAIL, Verdict.INCONCLUSIVE)


def max_time_for(m: Measurement, percentile: Percentile) -> float:
    """The ``--max-time`` (seconds) that gives ``percentile`` its minimum sample count at the
    measured mean time per call, with a fifth to spare, rounded up to a tenth of a second."""
    per_call = m.latency.mean if m.latency.mean > 0 else m.latency.max
    return math.ceil(MIN_SAMPLES[percentile] * per_call * 1.2 * 10) / 10


def _insufficient(m: Measurement, percentile: Percentile) -> str:
    return (f"insufficient samples: {m.latency.n} collected, {percentile.value} needs {MIN_SAMPLES[percentile]}; "
            f"--max-time {max_time_for(m, percentile):g} would give them at "
            f"{format_duration(m.latency.mean)} per call")


def latency_checks(
    target: Target, m: Measurement, provenance: Provenance, method: str, projection: Projection | None = None
) -> list[Check]:
    """One check per latency budget: bounds decide, noise only widens them.

    A percentile below its MLPerf minimum sample count is still judged when its bounds decide:
    the order-statistic bounds of the samples (or the projection's band, whose conservative end
    needs an order-statistic upper bound to exist) PASS or FAIL it; otherwise it is
    INCONCLUSIVE and the reason names the ``--max-time`` that would give it enough samples."""
    checks: list[Check] = []
    samples = [s / 1e9 for s in m.latency.samples_ns]
    for percentile, limit in target.profile.budgets.latency.items():
        metric = f"latency.{percentile.value}"
        value = getattr(m.latency, percentile.value)
        # A roofline does not use this host's samples: their count cannot withhold its percentile.
        host_free = projection is not None and not projection.from_host_timings and percentile in projection.latency
        short = value is None and not host_free
        lower_os, upper_os = percentile_bounds(samples, percentile.quantile) if samples else (value, value)
        if projection is not None and percentile not in projection.latency:
            check = Check(metric=metric, budget=f"<= {format_duration(limit)}", limit=limit, unit="s",
                          verdict=Verdict.INCONCLUSIVE, provenance=provenance, method=method, margin=None,
                          reason=f"no projected {percentile.value}: host figures are not judged against "
                                 f"{target.name}'s budget")
        elif projection is not None:
            band = projection.latency[percentile]
            # Too few samples for a conservative order-statistic bound: the band's upper end is a model
            # of the tail, not evidence for it, so it cannot PASS.
            upper = band.upper if upper_os is not None or not short else None
            check = _bounded_check(metric, band.value, band.lower, upper, limit, "s", provenance, method)
        elif samples:
            value = value if value is not None else nearest_rank(sorted(samples), percentile.quantile)
            check = _bounded_check(metric, value, lower_os, upper_os, limit, "s", provenance,
                                   f"{method}; bounds: order statistics at 95% confidence")
        else:
            check = Check(metric=metric, budget=f"<= {format_duration(limit)}", limit=limit, unit="s",
                          verdict=Verdict.INCONCLUSIVE, provenance=provenance, method=method, margin=None,
                          reason="no samples")
        if short:
            note = _insufficient(m, percentile)
            if check.verdict is Verdict.INCONCLUSIVE:
                check = check.model_copy(update={"reason": f"bounds do not decide yet: {note}"})
            else:
                check = _with_reason(check, f"decided by its bounds below the minimum sample count ({note})")
        if _needs_detail(check) and check.margin is not None:
            top, text = _latency_top(projection)
            check = _with_reason(check, f"margin {check.margin:+.0%}" + (f"; {text}" if text else ""), top)
        if check.verdict is not Verdict.PASS and (apart := _disagreement(projection)):
            check = _with_reason(check, apart)
        checks.append(check)
    return checks


def cold_start_parts(cold: ColdStart, parts: Sequence[str]) -> str:
    """'process start 0.31 s + runtime import 9.90 s + load 0.36 s + first inference 0.02 s': the parts a
    cold_start check counts, each with this host's figure (the ones a profile leaves out are named)."""
    counted = " + ".join(f"{COLD_START_NAMES[k]} {format_duration(v)}" for k, v in cold.parts().items() if k in parts)
    left = [COLD_START_NAMES[k] for k in cold.parts() if k not in parts]
    return (counted or "nothing") + (f" (the profile leaves out {', '.join(left)})" if left else "")


def _disagreement(projection: Projection | None) -> str:
    """The two estimators' disagreement, when the projection's band spans both (issue 21): the reason
    a verdict only the optimistic one would give is not PASS."""
    est = projection.details.get("estimators") if projection is not None else None
    if not isinstance(est, dict) or est.get("agree") is not False:
        return ""
    dm, host = est.get("device_model") or {}, est.get("host_scaled") or {}
    ops = est.get("ops") or []
    return (f"the device model ({dm.get('value', 0) * 1e3:.3g} ms) and the host-scaled estimate "
            f"({host.get('value', 0) * 1e3:.3g} ms) disagree beyond their bands; the band spans both"
            + (f"; ops behind it: {', '.join(ops)}" if ops else ""))


def _measured_checks(
    target: Target, m: Measurement, static: dict[str, Any] | None, provenance: Provenance, method: str
) -> list[Check]:
    budgets, profile = target.profile.budgets, target.profile
    checks = latency_checks(target, m, provenance, method)
    if budgets.cold_start is not None:
        v = m.cold_start.counted(budgets.cold_start_parts)
        checks.append(
            _bounded_check("cold_start", v, v, v, budgets.cold_start, "s", provenance,
                           f"{cold_start_parts(m.cold_start, budgets.cold_start_parts)}; {method}")
        )
    if budgets.peak_memory is not None:
        limit = budgets.peak_memory.limit_bytes(target.hardware)
        v = float(m.memory.peak_bytes)
        check = _bounded_check(
            "memory.peak", v, v, v, limit, "B", provenance, "process high-water mark; " + method
        )
        if _needs_detail(check):
            top, text = _memory_top(static)
            check = _with_reason(check, text, top)
        checks.append(check)
    if budgets.throughput is not None:
        tp = m.throughput
        value = tp.batched_per_s if tp.batched_per_s and tp.batch_size == profile.batch_size else None
        basis = f"batch {profile.batch_size}"
        if value is None:
            value = tp.single_stream_per_s
            basis = "single stream (batch dim not free)" if profile.batch_size > 1 else "single stream"
        checks.append(
            _bounded_check(
                "throughput",
                value,
                value,
                value,
                budgets.throughput,
                "/s",
                provenance,
                f"{basis}; {method}",
                higher_is_better=True,
            )
        )
    return checks


def _band_check(
    metric: str,
    band: Band,
    limit: float,
    unit: str,
    provenance: Provenance,
    method: str,
    higher_is_better: bool = False,
) -> Check:
    return _bounded_check(
        metric, band.value, band.lower, band.upper, limit, unit, provenance, method, higher_is_better
    )


def _projected_checks(
    target: Target, m: Measurement, static: dict[str, Any] | None, projection: Projection
) -> list[Check]:
    budgets = target.profile.budgets
    provenance = Provenance.MEASURED_ON_HOST if projection.measured else Provenance.PROJECTED
    method = projection.method
    checks = latency_checks(target, m, provenance, method, projection)
    if budgets.cold_start is not None and projection.cold_start is not None:
        checks.append(
            _band_check(
                "cold_start",
                projection.cold_start,
                budgets.cold_start,
                "s",
                provenance,
                f"{cold_start_parts(m.cold_start, budgets.cold_start_parts)}; {method}",
            )
        )
    if budgets.peak_memory is not None and projection.memory_peak is not None:
        limit = budgets.peak_memory.limit_bytes(target.hardware)
        check = _band_check(
            "memory.peak",
            projection.memory_peak,
            limit,
            "B",
            provenance,
            "process peak: host high-water mark carried to the target's architecture, "
            "never below runtime baseline + parameters + peak activations",
        )
        if _needs_detail(check):
            top, text = _memory_top(static)
            check = _with_reason(check, text, top)
        checks.append(check)
    if budgets.throughput is not None and projection.throughput is not None:
        checks.append(
            _band_check(
                "throughput",
                projection.throughput,
                budgets.throughput,
                "/s",
                provenance,
                f"{projection.throughput_basis}; {method}",
                higher_is_better=True,
            )
        )
    return checks


def _not_judged(check: Check, target: Target, why: str) -> Check:
    """A host figure kept for the reader but never judged against ``target``'s budget."""
    reason = (f"measured on this host, not on {target.hardware.name}, and not projected ({why}); a host "
              f"figure never decides {target.name}'s budget")
    return check.model_copy(update={"verdict": Verdict.INCONCLUSIVE, "reason": reason, "top": []})


def evaluate(
    target: Target,
    model: ModelInfo,
    measurement: Measurement | None,
    static: dict[str, Any] | None,
    projection: Projection | None = None,
    node_profile: NodeProfile | None = None,
    on_target: bool = False,
    emulation: Emulation | None = None,
) -> TargetReport:
    """All checks of one target: compatibility (static), then latency, cold start, memory and
    throughput, projected onto the target's hardware when a projection is given.

    ``on_target``: the measurement was taken on the target's own hardware (a cluster worker
    that embodies it), so its figures are the target's, labelled measured-on-target, and no
    projection applies.

    ``emulation``: the measurement was taken on this host inside the target's container limits
    (a cgroup); its figures are the target's, labelled emulated, and no projection applies.
    """
    budgets = target.profile.budgets
    host_version = measurement.runtime_version if measurement is not None else None
    checks, notes = compat_checks(target, model, static, node_profile, host_version)
    if budgets.model_size is not None:
        v = float(model.size_bytes)
        checks.append(
            _bounded_check(
                "model.size", v, v, v, budgets.model_size, "B", Provenance.STATIC, "file size on disk"
            )
        )
    summary: ProjectionSummary | None = None
    if measurement is not None and emulation is not None:
        method = f"measured on this host under the container's limits ({describe_limits(emulation)})"
        checks.extend(_measured_checks(target, measurement, static, Provenance.EMULATED, method))
        checks.extend(load_checks(target, measurement, Provenance.EMULATED, method))
        notes.extend(emulation_notes(emulation))
    elif measurement is not None and on_target:
        method = "measured on the target's own hardware"
        checks.extend(_measured_checks(target, measurement, static, Provenance.MEASURED_ON_TARGET, method))
        checks.extend(load_checks(target, measurement, Provenance.MEASURED_ON_TARGET, method))
        notes.append(f"latency, memory and throughput were measured on {target.name}'s own hardware "
                     "(a worker embodying the target)")
    elif measurement is not None and projection is not None:
        checks.extend(_projected_checks(target, measurement, static, projection))
        notes.extend(projection.notes)
        summary = projection.summary()
        notes.extend(load_not_judged(target, measurement))  # host load figures never judge a target
        if not projection.measured:
            notes.append(
                f"latency, memory and throughput are projected onto {target.hardware.name} "
                f"({projection.method})"
            )
    elif measurement is not None:
        # Nothing projected this host's figures to the target (a GPU target without the static graph
        # a roofline needs, or no host calibration): they are shown, labelled, and never judged.
        why = ("no static graph for a GPU roofline" if is_gpu_target(target) and not (static or {}).get("nodes")
               else "host calibration unavailable")
        method = "measured on this host, not on the target's hardware"
        host_checks = _measured_checks(target, measurement, static, Provenance.MEASURED_ON_HOST, method)
        checks.extend(_not_judged(c, target, why) for c in host_checks)
        notes.extend(load_not_judged(target, measurement))
        notes.append(
            f"latency, memory and throughput were measured on this host, not on {target.hardware.name}, and not "
            f"projected ({why}): shown as this host's figures, INCONCLUSIVE against {target.name}'s budgets"
        )
    verdict = worst([c.verdict for c in checks]) if checks else Verdict.PASS
    return TargetReport(
        target=target.name,
        hardware=target.hardware.id,
        hardware_name=target.hardware.name,
        source=target.source,
        verdict=verdict,
        checks=checks,
        notes=notes,
        projection=summary,
        emulation=emulation,
    )


__all__ = ["Percentile", "evaluate", "latency_checks"]
