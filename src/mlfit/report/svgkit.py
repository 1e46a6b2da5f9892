"""The chart kit under :mod:`mlfit.report.svg`: text measure, scales and ticks, markers and the
``Chart`` canvas every chart kind draws on (no JavaScript, no fonts or files to fetch)."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from html import escape as _html_escape

from mlfit.errors import printable


def escape(text: str) -> str:
    """HTML-escaped, with control and bidi characters shown as '?': names reach chart labels."""
    return _html_escape(printable(text, keep_lines=True))


WIDTH = 760
LEFT, RIGHT, TOP, BOTTOM = 150, 24, 34, 46
LEGEND_COLUMNS, LEGEND_ROW = 2, 15
PALETTE = ["#d62728", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf", "#bcbd22", "#7f7f7f"]
MEASURED = "#1f77b4"
PROJECTED = "#ff7f0e"
STATUS_COLOUR = {"PASS": "#2ca02c", "FAIL": "#d62728", "INCONCLUSIVE": "#d4a000", "ERROR": "#9467bd"}

Formatter = Callable[[float], str]


PHASE_ROW = 11


def _text_width(text: str, size: int) -> float:
    """A generous estimate of a label's width in pixels (no font metrics without a browser)."""
    return len(text) * size * 0.62


def _label_rows(labels: Sequence[tuple[str, float]], size: int) -> list[tuple[int, bool]]:
    """For each label at x (pixels): its row, such that no label overprints another (each goes into
    the first row where it clears the label before it), and whether it ends at x rather than starting
    there (near the right edge, so it stays inside the chart)."""
    ends: list[float] = []
    placed = []
    for text, px in labels:
        width = _text_width(text, size)
        before = px + 3 + width > WIDTH - 2
        start = px - 3 - width if before else px + 3
        row = next((r for r, end in enumerate(ends) if start >= end + 4), len(ends))
        if row == len(ends):
            ends.append(-math.inf)
        ends[row] = start + width
        placed.append((row, before))
    return placed


def clip(text: str, limit: int) -> str:
    """Shorten a label to ``limit`` characters so it stays inside its column (tooltips keep it whole)."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _num(v: float) -> str:
    return f"{v:.1f}"


@dataclass(frozen=True)
class Scale:
    """Maps data values in [lo, hi] to pixels in [start, end], linearly or logarithmically."""

    lo: float
    hi: float
    start: float
    end: float
    log: bool = False
    tick_unit: float = 1.0  # linear ticks are round numbers of this unit (2**20 for MiB)

    def __call__(self, value: float) -> float:
        if self.log:
            value = max(value, self.lo * 1e-3)
            t = (math.log10(value) - math.log10(self.lo)) / (math.log10(self.hi) - math.log10(self.lo))
        else:
            t = (value - self.lo) / (self.hi - self.lo)
        return self.start + t * (self.end - self.start)

    def ticks(self) -> list[float]:
        if self.log:
            return _log_ticks(self.lo, self.hi)
        u = self.tick_unit
        return [t * u for t in _linear_ticks(self.lo / u, self.hi / u)]


def _linear_ticks(lo: float, hi: float, count: int = 5) -> list[float]:
    span = hi - lo
    raw = span / count
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw)
    first = math.ceil(lo / step) * step
    return [first + i * step for i in range(int((hi - first) / step + 1e-9) + 1)]


def _log_ticks(lo: float, hi: float) -> list[float]:
    decades = range(math.floor(math.log10(lo)), math.ceil(math.log10(hi)) + 1)
    mults = (1, 2, 5) if len(decades) <= 4 else (1,)
    ticks = [m * 10.0**d for d in decades for m in mults]
    inside = [t for t in ticks if lo <= t <= hi]
    if len(inside) >= 2:
        return inside
    # A narrow range (5.4 to 6.7 ms: a quiet run with no budget on the axis) has at most one
    # 1-2-5 tick: use linear round numbers inside it instead, so the axis is never unlabelled.
    return [t for t in _linear_ticks(lo, hi, 4) if lo <= t <= hi and t > 0]


def padded_range(values: Sequence[float], log: bool, pad: float = 0.08) -> tuple[float, float]:
    """A data range with some air around it; never empty, never non-positive on a log axis."""
    finite = [v for v in values if v is not None and math.isfinite(v) and (v > 0 or not log)]
    if not finite:
        return (0.1, 10.0) if log else (0.0, 1.0)
    lo, hi = min(finite), max(finite)
    if log:
        if hi <= lo * 1.0001:
            return lo / 1.5, hi * 1.5
        factor = (hi / lo) ** pad
        return lo / factor, hi * factor
    if hi <= lo:
        return lo - 1.0, hi + 1.0
    span = hi - lo
    return lo - span * pad, hi + span * pad


@dataclass(frozen=True)
class Marker:
    """A vertical line at ``value`` with a label, e.g. a budget ("edge p95 <= 80 ms")."""

    value: float
    label: str
    colour: str = "#d62728"
    dash: str | None = "6 3"
    quantile: float | None = None  # for a CDF: where the curve must be at this value to meet the budget


class Chart:
    """An SVG canvas with a plot area and helpers to draw into it."""

    def __init__(
        self, title: str, height: int, label: str | None = None, legend: Sequence[Marker] = ()
    ) -> None:
        self.title = title
        self.legend_entries = list(legend)
        self.legend_rows = math.ceil(len(self.legend_entries) / LEGEND_COLUMNS)
        self.height = height + self.legend_rows * LEGEND_ROW + (6 if self.legend_rows else 0)
        self.parts: list[str] = []
        self.label = label or title
        self.plot_left, self.plot_right = LEFT, WIDTH - RIGHT
        self.plot_top, self.plot_bottom = TOP, height - BOTTOM

    def add(self, element: str) -> None:
        self.parts.append(element)

    def text(
        self,
        x: float,
        y: float,
        text: str,
        anchor: str = "start",
        size: int = 11,
        colour: str = "#333",
        weight: str = "normal",
        rotate: float | None = None,
    ) -> None:
        transform = f' transform="rotate({rotate} {_num(x)} {_num(y)})"' if rotate is not None else ""
        self.add(
            f'<text x="{_num(x)}" y="{_num(y)}" text-anchor="{anchor}" font-size="{size}" fill="{colour}" '
            f'font-weight="{weight}"{transform}>{escape(text)}</text>'
        )

    def line(
        self,
        x1: float,
        y1: float,
        x2: float,
        y2: float,
        colour: str = "#999",
        width: float = 1,
        dash: str | None = None,
    ) -> None:
        dashed = f' stroke-dasharray="{dash}"' if dash else ""
        self.add(
            f'<line x1="{_num(x1)}" y1="{_num(y1)}" x2="{_num(x2)}" y2="{_num(y2)}" stroke="{colour}" '
            f'stroke-width="{width}"{dashed}/>'
        )

    def rect(
        self,
        x: float,
        y: float,
        w: float,
        h: float,
        colour: str,
        opacity: float = 1.0,
        tooltip: str | None = None,
    ) -> None:
        tip = f"<title>{escape(tooltip)}</title>" if tooltip else ""
        self.add(
            f'<rect x="{_num(x)}" y="{_num(y)}" width="{_num(max(w, 0.0))}" height="{_num(max(h, 0.0))}" '
            f'fill="{colour}" fill-opacity="{opacity}">{tip}</rect>'
        )

    def circle(
        self, x: float, y: float, r: float, colour: str, tooltip: str | None = None, stroke: str = "#fff"
    ) -> None:
        tip = f"<title>{escape(tooltip)}</title>" if tooltip else ""
        self.add(
            f'<circle cx="{_num(x)}" cy="{_num(y)}" r="{r}" fill="{colour}" stroke="{stroke}">{tip}</circle>'
        )

    def polyline(self, points: Sequence[tuple[float, float]], colour: str, width: float = 2) -> None:
        coords = " ".join(f"{_num(x)},{_num(y)}" for x, y in points)
        self.add(
            f'<polyline points="{coords}" fill="none" stroke="{colour}" stroke-width="{width}" '
            'stroke-linejoin="round"/>'
        )

    def x_axis(self, scale: Scale, fmt: Formatter, label: str) -> None:
        y = self.plot_bottom
        self.line(self.plot_left, y, self.plot_right, y, "#666")
        for tick in scale.ticks():
            x = scale(tick)
            self.line(x, self.plot_top, x, y, "#eee")
            self.line(x, y, x, y + 4, "#666")
            self.text(x, y + 16, fmt(tick), "middle", 10, "#555")
        self.text(
            (self.plot_left + self.plot_right) / 2,
            self.plot_bottom + BOTTOM - 12,
            label,
            "middle",
            11,
            "#333",
        )

    def y_axis(self, scale: Scale, fmt: Formatter, label: str) -> None:
        x = self.plot_left
        self.line(x, self.plot_top, x, self.plot_bottom, "#666")
        for tick in scale.ticks():
            y = scale(tick)
            self.line(x, y, self.plot_right, y, "#eee")
            self.text(x - 6, y + 3, fmt(tick), "end", 10, "#555")
        self.text(16, (self.plot_top + self.plot_bottom) / 2, label, "middle", 11, "#333", rotate=-90)

    def legend(self) -> None:
        """Marker lines explained below the x axis, in columns, so labels never overlap."""
        column_width = (WIDTH - LEFT) / LEGEND_COLUMNS
        for i, marker in enumerate(self.legend_entries):
            row, col = divmod(i, LEGEND_COLUMNS)
            x = LEFT + col * column_width
            y = self.plot_bottom + BOTTOM + row * LEGEND_ROW + 6
            self.line(x, y - 4, x + 22, y - 4, marker.colour, 2, marker.dash)
            self.text(x + 27, y, clip(marker.label, 48), "start", 10, "#333")

    def svg(self) -> str:
        self.legend()
        head = (
            f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {self.height}" width="{WIDTH}" '
            f'height="{self.height}" role="img" aria-label="{escape(self.label)}" class="chart">'
            f"<title>{escape(self.label)}</title>"
        )
        title = (
            f'<text x="{LEFT}" y="18" font-size="13" font-weight="bold" fill="#222">'
            f"{escape(self.title)}</text>"
        )
        return head + title + "".join(self.parts) + "</svg>"


def _markers(chart: Chart, scale: Scale, markers: Sequence[Marker], tags: Sequence[Marker] = ()) -> None:
    """Vertical marker lines (explained in the legend); ``tags`` also get a short label on the line."""
    for marker in markers:
        x = scale(marker.value)
        chart.line(x, chart.plot_top, x, chart.plot_bottom, marker.colour, 1.5, marker.dash)
    placed = _label_rows([(m.label, scale(m.value)) for m in tags], 10)
    for marker, (row, before) in zip(tags, placed, strict=True):
        x = scale(marker.value)
        chart.line(x, chart.plot_top, x, chart.plot_bottom, marker.colour, 1.2, marker.dash)
        y = chart.plot_top + 10 + row * PHASE_ROW  # close percentiles go on rows of their own
        chart.text(x - 3 if before else x + 3, y, marker.label, "end" if before else "start", 10, marker.colour)
