"""Latency and memory: histograms, CDFs and lanes with budgets drawn, memory per phase and over time."""

from __future__ import annotations

from mlfit.catalog.units import format_duration, format_size
from mlfit.report import svg, svgkit
from mlfit.report.common import (
    PROVENANCE_LABEL,
    format_value,
    value_text,
)
from mlfit.report.html.page import e, table, tick_duration
from mlfit.result import Check, Provenance, RunResult


def _latency_table(result: RunResult) -> str:
    assert result.measurement is not None
    lat = result.measurement.latency
    names = ["n", "min", "mean", "p50", "p90", "p95", "p99", "max", "CV"]
    cells = [str(lat.n), *(e(format_value(getattr(lat, k), "s")) for k in names[1:-1]), f"{lat.cv:.1%}"]
    out = table(names, [cells], set(range(len(names))))
    if lat.insufficient:
        out += f'<p class="muted">Too few samples for {e(", ".join(lat.insufficient))} (MLPerf minimums).</p>'
    return out


def _target_colours(result: RunResult) -> dict[str, str]:
    return {t.target: svgkit.PALETTE[i % len(svgkit.PALETTE)] for i, t in enumerate(result.targets)}


def _latency_lanes(result: RunResult) -> list[svg.Lane]:
    """One lane per latency budget of every target, with the figure the target is judged by."""
    lanes = []
    for target in result.targets:
        for check in target.checks:
            if not check.metric.startswith("latency.") or check.unit != "s":
                continue
            name = check.metric.split(".", 1)[1]
            source = PROVENANCE_LABEL[check.provenance]
            budget = f"{target.target} {name} ≤ {format_duration(check.limit)}" if check.limit else target.target
            lanes.append(
                svg.Lane(
                    f"{target.target} · {name}",
                    source,
                    check.value,
                    check.lower,
                    check.upper,
                    check.limit,
                    check.verdict.value,
                    f"{budget}: {source} {value_text(check)} on {target.hardware_name} ({check.verdict.value})",
                )
            )
    return lanes


def _latency_charts(result: RunResult) -> str:
    """This host's samples (histogram, CDF) with this host's percentiles only, then the lanes chart
    that sets each target's own figure and band beside them against its budget."""
    assert result.measurement is not None
    lat = result.measurement.latency
    samples = [s / 1e9 for s in lat.samples_ns]
    if not samples:
        return '<p class="muted">No raw latency samples in this result: no histogram.</p>'
    measured = [
        svg.Marker(v, f"host {name}", "#555", "2 3")
        for name in ("p50", "p95", "p99")
        if (v := getattr(lat, name)) is not None
    ]
    out = '<div class="charts">'
    lanes = _latency_lanes(result)
    if lanes:
        out += svg.latency_lanes(samples, measured, lanes, tick_duration)
    out += svg.latency_histogram(samples, [], tick_duration, measured) + svg.latency_cdf(samples, [], tick_duration)
    out += "</div>"
    if lanes:
        out += (
            '<p class="muted">The histogram and the CDF are this host\'s warm samples, measured here: '
            "they are not any target's figures and carry no target's budget. Each target is judged by its "
            "own lane above (projected onto its hardware, with the band the verdict is decided on).</p>"
        )
    return out


def _memory_chart(result: RunResult) -> str:
    assert result.measurement is not None
    mem = result.measurement.memory
    rows = [
        ("interpreter", float(mem.interpreter_bytes)),
        ("runtime imported", float(mem.runtime_baseline_bytes)),
        ("model loaded (peak)", float(mem.load_peak_bytes)),
        ("inference (peak)", float(mem.inference_peak_bytes)),
        ("whole run (peak)", float(mem.peak_bytes)),
    ]
    colours = _target_colours(result)
    markers = [
        svg.Marker(c.limit, f"{t.target} memory budget ≤ {format_size(c.limit)}", colours[t.target])
        for t in result.targets
        for c in t.checks
        if c.metric == "memory.peak" and c.limit
    ]
    largest = max(v for _, v in rows)
    unit = 2.0**30 if largest >= 2 * 2**30 else 2.0**20
    chart = svg.horizontal_bars(
        "Peak resident memory per phase", rows, format_size, markers, "resident memory", tick_unit=unit
    )
    # Only onnxruntime has an arena (None for the other runtimes): no ONNX Runtime note on a TensorFlow run.
    arena = "" if mem.arena_enabled is None else f"; onnxruntime memory arena: {'on' if mem.arena_enabled else 'off'}"
    text = (
        f'<p class="muted">Method: {e(mem.method)}. The model adds {e(format_size(mem.model_cost))} over the '
        f"imported runtime (import +{e(format_size(mem.runtime_import_delta))}){arena}.</p>"
    )
    return chart + text + _memory_timeline(result, markers, unit)


def _memory_timeline(result: RunResult, limits: list[svg.Marker], unit: float) -> str:
    """The polled RSS curve (``measurement.memory_timeline``) with phase starts, when the run kept one."""
    data = result.measurement.memory_timeline if result.measurement is not None else None
    if data is None or len(data.samples) < 2:
        return ""
    points = [(float(t), float(size)) for t, size in data.samples]
    chart = svg.timeline("Memory over time (polled)", points, list(data.phases), format_size, limits, unit)
    return chart + (f'<p class="muted">{e(data.source)}</p>' if data.source else "")


def _is_lower_limit(check: Check) -> bool:
    return check.budget.lstrip().startswith(">")


def _budget_rows(result: RunResult) -> list[svg.BudgetUse]:
    rows: list[svg.BudgetUse] = []
    for target in result.targets:
        for check in target.checks:
            if (
                check.value is None
                or not check.limit
                or check.value <= 0
                or check.unit not in ("s", "B", "/s")
            ):
                continue

            def share(v: float | None, c: Check = check) -> float | None:
                if v is None or v <= 0 or c.limit is None:
                    return None
                return c.limit / v if _is_lower_limit(c) else v / c.limit

            value = share(check.value)
            assert value is not None
            low, high = share(check.lower), share(check.upper)
            if low is not None and high is not None and low > high:
                low, high = high, low
            tip = (
                f"{target.target} {check.metric}: {value_text(check)} vs {check.budget} "
                f"({PROVENANCE_LABEL[check.provenance]}, {check.verdict.value})"
            )
            rows.append(
                svg.BudgetUse(
                    f"{target.target} · {check.metric}",
                    value,
                    low,
                    high,
                    check.provenance is Provenance.PROJECTED,
                    check.verdict.value,
                    tip,
                )
            )
    return rows
