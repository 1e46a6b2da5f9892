"""Inline SVG charts for the HTML report: no JavaScript, no fonts or files to fetch.

Each function returns one ``<svg>`` element as text. Values go in raw (seconds, bytes,
ratios); a formatter turns tick values into labels. Latency and budget-use axes are
logarithmic, so a budget 100x beyond the measured figures still shows on the same chart.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from mlfit.report.svgkit import (
    BOTTOM,
    MEASURED,
    PHASE_ROW,
    PROJECTED,
    STATUS_COLOUR,
    TOP,
    WIDTH,
    Chart,
    Formatter,
    Marker,
    Scale,
    _label_rows,
    _markers,
    clip,
    padded_range,
)


def _latency_axis(chart: Chart, values: np.ndarray, markers: Sequence[Marker]) -> Scale:
    """A log x axis covering the samples and every marker, for the histogram and the CDF alike."""
    ends = [float(values.min()), float(values.max())] if len(values) else [1.0, 1.0]
    lo, hi = padded_range([*ends, *(m.value for m in markers)], log=True)
    return Scale(lo, hi, chart.plot_left, chart.plot_right, log=True)


def latency_histogram(
    samples_s: Sequence[float],
    markers: Sequence[Marker],
    fmt: Formatter,
    tags: Sequence[Marker] = (),
    bins: int = 40,
) -> str:
    """Counts of warm latency samples on a log axis, with budgets (legend) and percentiles (tags) as lines."""
    values = np.asarray(samples_s, dtype=float)
    values = values[values > 0]
    chart = Chart(
        "Latency histogram: this host, measured (warm, single inference)",
        280,
        "Histogram of warm latency samples with each latency budget as a vertical line",
        markers,
    )
    x = _latency_axis(chart, values, [*markers, *tags])
    lo, hi = x.lo, x.hi
    data_lo, data_hi = (float(values.min()), float(values.max())) if len(values) else (lo, hi)
    if data_hi <= data_lo:
        data_lo, data_hi = data_lo / 1.05, data_hi * 1.05
    edges = np.geomspace(data_lo, data_hi, bins + 1)
    counts, _ = np.histogram(values, bins=edges)
    top = max(1, int(counts.max()) if len(counts) else 1)
    y = Scale(0, top * 1.1, chart.plot_bottom, chart.plot_top + 40)
    chart.y_axis(y, lambda v: f"{v:g}", "samples")
    chart.x_axis(x, fmt, "latency (log scale)")
    for count, left, right in zip(counts, edges[:-1], edges[1:], strict=True):
        if count:
            chart.rect(
                x(left),
                y(count),
                x(right) - x(left) - 0.5,
                y(0) - y(count),
                MEASURED,
                0.85,
                f"{fmt(left)} – {fmt(right)}: {count} samples",
            )
    _markers(chart, x, markers, tags)
    return chart.svg()


def latency_cdf(
    samples_s: Sequence[float], markers: Sequence[Marker], fmt: Formatter, points: int = 400
) -> str:
    """The empirical CDF of warm latency on a log axis. A budget ``pXX <= L`` is met where the
    curve has reached XX% by L: each budget is drawn with a dot at (L, XX%)."""
    values = np.sort(np.asarray(samples_s, dtype=float))
    values = values[values > 0]
    chart = Chart(
        "Latency CDF: this host, measured" + (" (a dot marks where a budget needs the curve)" if markers else ""),
        280,
        "Cumulative distribution of warm latency with each latency budget",
        markers,
    )
    x = _latency_axis(chart, values, markers)
    lo, hi = x.lo, x.hi
    y = Scale(0.0, 1.0, chart.plot_bottom, chart.plot_top + 40)
    chart.y_axis(y, lambda v: f"{v:.0%}", "fraction of samples ≤ x")
    chart.x_axis(x, fmt, "latency (log scale)")
    n = len(values)
    if n:
        idx = np.unique(np.linspace(0, n - 1, min(points, n)).astype(int))
        pts = [(x(lo), y(0.0))]
        for i in idx:
            pts.append((x(float(values[i])), pts[-1][1]))
            pts.append((x(float(values[i])), y((i + 1) / n)))
        pts.append((x(hi), y(1.0)))
        chart.polyline(pts, MEASURED)
    _markers(chart, x, markers)
    for marker in markers:
        if marker.quantile is not None:
            chart.circle(
                x(marker.value),
                y(marker.quantile),
                4,
                marker.colour,
                f"{marker.label}: the curve must reach {marker.quantile:.0%} here",
            )
    return chart.svg()


def horizontal_bars(
    title: str,
    rows: Sequence[tuple[str, float]],
    fmt: Formatter,
    markers: Sequence[Marker] = (),
    label: str = "",
    colour: str = MEASURED,
    tick_unit: float = 1.0,
) -> str:
    """One bar per row (linear axis from zero); markers beyond 4x the largest bar are listed, not drawn."""
    height = TOP + BOTTOM + 26 * max(1, len(rows)) + 10
    largest = max([v for _, v in rows] + [1.0])
    shown = [m for m in markers if m.value <= largest * 4]
    off = [
        Marker(m.value, f"{m.label} (off scale →)", m.colour, None) for m in markers if m.value > largest * 4
    ]
    chart = Chart(title, height, legend=[*shown, *off])
    x = Scale(
        0.0,
        max([largest, *(m.value for m in shown)]) * 1.08,
        chart.plot_left,
        chart.plot_right,
        tick_unit=tick_unit,
    )
    chart.x_axis(x, fmt, label)
    for i, (name, value) in enumerate(rows):
        top = chart.plot_top + 8 + i * 26
        chart.rect(x(0), top, x(value) - x(0), 18, colour, 0.85, f"{name}: {fmt(value)}")
        chart.text(chart.plot_left - 6, top + 13, clip(name, 22), "end", 11)
        inside = x(value) - x(0) > 90
        chart.text(
            x(value) + (-4 if inside else 4),
            top + 13,
            fmt(value),
            "end" if inside else "start",
            10,
            "#fff" if inside else "#333",
        )
    _markers(chart, x, shown)
    return chart.svg()


@dataclass(frozen=True)
class BudgetUse:
    """One check drawn as the fraction of its budget it uses (1 = exactly at the limit)."""

    label: str
    value: float
    low: float | None
    high: float | None
    projected: bool
    verdict: str
    tooltip: str


def budget_use(rows: Sequence[BudgetUse]) -> str:
    """Measured and projected figures of every budget on one log axis, as a share of their limit,
    with the projection's [optimistic – conservative] band as a whisker."""
    height = TOP + BOTTOM + 22 * max(1, len(rows)) + 12
    chart = Chart(
        "Budget use (share of each limit)",
        height,
        "Each check's value as a fraction of its budget; left of the red line fits",
    )
    everything = [v for r in rows for v in (r.value, r.low, r.high) if v is not None] + [1.0]
    lo, hi = padded_range(everything, log=True)
    x = Scale(min(lo, 0.5), max(hi, 2.0), chart.plot_left, chart.plot_right, log=True)
    chart.x_axis(x, lambda v: f"{v:g}×", "share of the budget (log scale; 1× = at the limit)")
    limit = x(1.0)
    chart.rect(
        limit, chart.plot_top, chart.plot_right - limit, chart.plot_bottom - chart.plot_top, "#d62728", 0.05
    )
    chart.line(limit, chart.plot_top, limit, chart.plot_bottom, "#d62728", 1.5)
    chart.text(limit + 4, chart.plot_top + 10, "budget", "start", 10, "#d62728")
    for i, row in enumerate(rows):
        cy = chart.plot_top + 18 + i * 22
        chart.text(chart.plot_left - 6, cy + 4, clip(row.label, 26), "end", 10)
        colour = PROJECTED if row.projected else MEASURED
        if row.low is not None and row.high is not None and row.low != row.high:
            chart.line(x(row.low), cy, x(row.high), cy, colour, 3)
            for end in (row.low, row.high):
                chart.line(x(end), cy - 5, x(end), cy + 5, colour, 1.5)
        chart.circle(x(row.value), cy, 5, colour, row.tooltip, STATUS_COLOUR.get(row.verdict, "#fff"))
    lx, ly = WIDTH - 330, 14  # legend top right, beside the title
    chart.circle(lx, ly, 4, MEASURED)
    chart.text(lx + 8, ly + 4, "measured", size=10)
    chart.circle(lx + 72, ly, 4, PROJECTED)
    chart.text(lx + 80, ly + 4, "projected (whisker: optimistic – conservative)", size=10)
    return chart.svg()


def line_chart(
    title: str,
    xs: Sequence[float],
    ys: Sequence[float],
    x_label: str,
    y_label: str,
    y_fmt: Formatter,
    colour: str = MEASURED,
) -> str:
    """A curve over a log2 x axis (batch sizes)."""
    chart = Chart(title, 260)
    x_lo, x_hi = padded_range(list(xs), log=True, pad=0.04)
    x = Scale(x_lo, x_hi, chart.plot_left, chart.plot_right, log=True)
    y_hi = max([*ys, 1e-12]) * 1.15
    y = Scale(0.0, y_hi, chart.plot_bottom, chart.plot_top + 20)
    chart.y_axis(y, y_fmt, y_label)
    chart.line(chart.plot_left, chart.plot_bottom, chart.plot_right, chart.plot_bottom, "#666")
    for value in xs:
        chart.line(x(value), chart.plot_bottom, x(value), chart.plot_bottom + 4, "#666")
        chart.text(x(value), chart.plot_bottom + 16, f"{value:g}", "middle", 10, "#555")
    chart.text(
        (chart.plot_left + chart.plot_right) / 2, chart.plot_bottom + BOTTOM - 12, x_label, "middle", 11
    )
    points = [(x(a), y(b)) for a, b in zip(xs, ys, strict=True)]
    chart.polyline(points, colour)
    for (px, py), a, b in zip(points, xs, ys, strict=True):
        chart.circle(px, py, 3.5, colour, f"{x_label} {a:g}: {y_fmt(b)}")
    return chart.svg()


@dataclass(frozen=True)
class ChangeRow:
    label: str
    change: float
    low: float | None
    high: float | None
    status: str


CHANGE_COLOUR = {
    "regression": "#d62728",
    "improvement": "#2ca02c",
    "inconclusive": "#d4a000",
    "unchanged": "#1f77b4",
    "not-tested": "#999999",
}


def change_forest(rows: Sequence[ChangeRow], effect: float) -> str:
    """Relative change of each metric with its interval; the band of ±effect is 'no change'."""
    height = TOP + BOTTOM + 22 * max(1, len(rows)) + 10
    chart = Chart(
        "Change against the baseline (new / base − 1)",
        height,
        "Relative change per metric with its confidence interval",
    )
    values = [v for r in rows for v in (r.change, r.low, r.high) if v is not None] + [effect * 2, -effect * 2]
    lo, hi = padded_range(values, log=False)
    x = Scale(lo, hi, chart.plot_left, chart.plot_right)
    chart.x_axis(x, lambda v: f"{v * 100:+.0f}%", "relative change (right = larger)")
    chart.rect(
        x(-effect), chart.plot_top, x(effect) - x(-effect), chart.plot_bottom - chart.plot_top, "#888", 0.12
    )
    chart.line(x(0), chart.plot_top, x(0), chart.plot_bottom, "#666")
    chart.text(x(effect) + 3, chart.plot_top + 10, f"±{effect:.0%} minimum effect", "start", 10, "#666")
    for i, row in enumerate(rows):
        cy = chart.plot_top + 18 + i * 22
        colour = CHANGE_COLOUR.get(row.status, "#333")
        chart.text(chart.plot_left - 6, cy + 4, clip(row.label, 26), "end", 10)
        if row.low is not None and row.high is not None:
            chart.line(x(row.low), cy, x(row.high), cy, colour, 3)
        chart.circle(x(row.change), cy, 5, colour, f"{row.label}: {row.change * 100:+.1f}% ({row.status})")
    return chart.svg()


def timeline(
    title: str,
    points: Sequence[tuple[float, float]],
    phases: Sequence[tuple[str, float]],
    fmt: Formatter,
    limits: Sequence[Marker] = (),
    tick_unit: float = 1.0,
) -> str:
    """Memory over time: a polled curve, phase starts as tagged vertical lines, and limits that fall
    near the curve as horizontal lines (the legend lists every limit)."""
    largest = max([v for _, v in points] + [1.0])
    near = [m for m in limits if m.value <= largest * 1.5]
    far = [Marker(m.value, f"{m.label} (off scale ↑)", m.colour, None) for m in limits if m.value > largest * 1.5]
    t_end = max([t for t, _ in points] + [t for _, t in phases] + [1e-3])
    chart = Chart(title, 260, "Resident memory of the worker over time with phase starts", [*near, *far])
    x = Scale(0.0, t_end * 1.02, chart.plot_left, chart.plot_right)
    names = [name.replace("_", " ") for name, _ in phases]
    rows = _label_rows([(name, x(start)) for name, (_, start) in zip(names, phases, strict=True)], 9)
    extra = (max(r for r, _ in rows) + 1) * PHASE_ROW if rows else 0
    chart.height += extra  # the phase labels sit above the plot, one row per overlap
    chart.plot_top += extra
    chart.plot_bottom += extra
    y = Scale(0.0, max([largest, *(m.value for m in near)]) * 1.1, chart.plot_bottom, chart.plot_top + 6,
              tick_unit=tick_unit)
    chart.y_axis(y, fmt, "resident memory")
    chart.x_axis(x, lambda v: f"{v:g} s", "time since the worker started")
    for marker in near:
        chart.line(chart.plot_left, y(marker.value), chart.plot_right, y(marker.value), marker.colour, 1.5,
                   marker.dash)
    # Phases a few milliseconds apart would overprint: each label has its row (see _label_rows), and
    # the line of a phase reaches up to its own label.
    for name, (_, start), (row, before) in zip(names, phases, rows, strict=True):
        px = x(start)
        label_y = chart.plot_top - extra + 4 + row * PHASE_ROW
        chart.line(px, label_y - 7, px, chart.plot_bottom, "#888", 1, "2 3")
        chart.text(px - 3 if before else px + 3, label_y, name, "end" if before else "start", 9, "#555")
    chart.polyline([(x(t), y(v)) for t, v in points], MEASURED)
    return chart.svg()


@dataclass(frozen=True)
class Lane:
    """One latency budget of one target: its figure with the band, and the budget it is judged by."""

    label: str  # "edge · p95"
    source: str  # "projected", "measured (target)", ...
    value: float | None
    lower: float | None
    upper: float | None
    limit: float | None
    verdict: str
    tooltip: str


LANE = 34


def latency_lanes(
    samples_s: Sequence[float], tags: Sequence[Marker], lanes: Sequence[Lane], fmt: Formatter
) -> str:
    """Host samples and each target's latency side by side on one log axis, each labelled with where
    it comes from: the top lane is this host's measured samples (a histogram strip with its
    percentiles); below it, one lane per latency budget with the target's figure, its [optimistic –
    conservative] band and the budget as a red line. Host samples are never drawn against a target's
    budget: a target is judged by its own lane."""
    values = np.asarray(samples_s, dtype=float)
    values = values[values > 0]
    legend = [
        Marker(0, "this host: warm samples, measured here", MEASURED, None),
        Marker(0, "target: projected, band optimistic–conservative", PROJECTED, None),
        Marker(0, "target's budget; its verdict on the right", "#d62728", "6 3"),
    ]
    height = TOP + BOTTOM + LANE * (1 + len(lanes)) + 12
    chart = Chart("Latency: this host's samples beside each target's projection and budget", height,
                  "Host latency samples and, per target, the projected latency band against its budget", legend)
    chart.plot_right = WIDTH - 112
    ends = [float(values.min()), float(values.max())] if len(values) else []
    for lane in lanes:
        ends += [v for v in (lane.value, lane.lower, lane.upper, lane.limit) if v is not None and v > 0]
    lo, hi = padded_range(ends or [1e-3], log=True)
    x = Scale(lo, hi, chart.plot_left, chart.plot_right, log=True)
    chart.x_axis(x, fmt, "latency (log scale)")
    top = chart.plot_top + 6
    # Lane 0: this host, measured.
    chart.text(chart.plot_left - 8, top + 13, "this host", "end", 11, "#222", "bold")
    chart.text(chart.plot_left - 8, top + 25, "measured", "end", 9, MEASURED)
    if len(values):
        edges = np.geomspace(float(values.min()), float(values.max()) * 1.0001, 41)
        counts, _ = np.histogram(values, bins=edges)
        peak = max(1, int(counts.max()))
        for count, left, right in zip(counts, edges[:-1], edges[1:], strict=True):
            if count:
                h = (LANE - 8) * count / peak
                chart.rect(x(left), top + LANE - 4 - h, x(right) - x(left) - 0.5, h, MEASURED, 0.85,
                           f"this host: {fmt(left)} – {fmt(right)}: {count} samples")
    for tag in tags:  # the histogram below labels them; here only the lines
        chart.line(x(tag.value), top, x(tag.value), top + LANE - 4, tag.colour, 1.2, tag.dash)
    for i, lane in enumerate(lanes, start=1):
        y0 = top + i * LANE
        mid = y0 + LANE / 2 - 2
        chart.line(chart.plot_left, y0 - 2, chart.plot_right, y0 - 2, "#eee")
        chart.text(chart.plot_left - 8, y0 + 13, clip(lane.label, 22), "end", 11, "#222", "bold")
        chart.text(chart.plot_left - 8, y0 + 25, lane.source, "end", 9,
                   PROJECTED if lane.source == "projected" else MEASURED)
        colour = PROJECTED if lane.source == "projected" else MEASURED
        if lane.lower is not None and lane.upper is not None and lane.lower > 0 and lane.upper > 0:
            chart.rect(x(lane.lower), mid - 6, max(x(lane.upper) - x(lane.lower), 2.0), 12, colour, 0.35,
                       lane.tooltip)
        if lane.value is not None and lane.value > 0:
            chart.circle(x(lane.value), mid, 4.5, colour, lane.tooltip)
        if lane.limit is not None and lane.limit > 0:
            chart.line(x(lane.limit), y0 + 1, x(lane.limit), y0 + LANE - 5, "#d62728", 2, "6 3")
            chart.text(x(lane.limit) + 4, y0 + 9, f"≤ {fmt(lane.limit)}", "start", 9, "#d62728")
        chart.text(chart.plot_right + 8, mid + 4, lane.verdict, "start", 10,
                   STATUS_COLOUR.get(lane.verdict, "#333"), "bold")
    return chart.svg()
