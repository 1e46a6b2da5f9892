"""HTML page primitives: escaping, badges, tables, and generic tables for extras (any list of rows)."""

from __future__ import annotations

import math
from html import escape
from importlib import resources
from string import Template
from typing import Any

from mlfit.catalog.units import format_duration, format_rate, format_size
from mlfit.errors import printable
from mlfit.report import svg

_QUANTILE = {"p50": 0.50, "p90": 0.90, "p95": 0.95, "p99": 0.99}


def _template() -> Template:
    text = resources.files("mlfit.report").joinpath("templates/report.html").read_text(encoding="utf-8")
    return Template(text)


def e(value: object) -> str:
    """Text from a result, inert in HTML: markup escaped, control and bidi characters shown as '?'."""
    return escape(printable(value, keep_lines=True), quote=True)


def badge(text: str, css: str, big: bool = False) -> str:
    return f'<span class="badge {e(css)}{" big" if big else ""}">{e(text)}</span>'


def table(
    header: list[str],
    rows: list[list[str]],
    numeric: set[int] | None = None,
    row_class: list[str] | None = None,
    css: str = "",
) -> str:
    """An HTML table from already-escaped cells; ``numeric`` columns are right-aligned."""
    numeric = numeric or set()
    head = "".join(f"<th>{h}</th>" for h in header)
    body = []
    for i, row in enumerate(rows):
        row_css = f' class="{row_class[i]}"' if row_class and row_class[i] else ""
        cells = "".join(
            f'<td class="num">{c}</td>' if j in numeric else f"<td>{c}</td>" for j, c in enumerate(row)
        )
        body.append(f"<tr{row_css}>{cells}</tr>")
    klass = f' class="{css}"' if css else ""
    if not any(header):  # a key-value table: no header row
        return f"<table{klass}><tbody>{''.join(body)}</tbody></table>"
    return f"<table{klass}><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def tick_duration(seconds: float) -> str:
    """Short axis labels: '500 µs', '1 ms', '2.5 s'."""
    if seconds <= 0:
        return "0"
    for unit, scale in (("s", 1.0), ("ms", 1e-3), ("µs", 1e-6), ("ns", 1e-9)):
        if seconds >= scale or unit == "ns":
            return f"{seconds / scale:g} {unit}"
    return f"{seconds:g} s"  # pragma: no cover


def _plain(key: str, value: Any) -> str:
    """A value from an extra table, formatted by what its key says it is (``*_s``, ``*bytes``, ...)."""
    if isinstance(value, bool) or value is None:
        return str(value)
    if isinstance(value, (int, float)) and math.isfinite(value):
        lowered = key.lower()
        if lowered.endswith(("_s", "seconds", "latency")):
            return format_duration(float(value))
        if lowered.endswith(("bytes", "_b", "memory")):
            return format_size(float(value))
        if lowered.endswith(("share", "fraction")) and 0 <= value <= 1:
            return f"{value:.1%}"
        if lowered.endswith(("per_s", "/s")):
            return format_rate(float(value))
        return f"{value:,}" if isinstance(value, int) else f"{value:.4g}"
    if isinstance(value, (list, dict)):
        text = (
            ", ".join(map(str, value))
            if isinstance(value, list)
            else ", ".join(f"{k}={v}" for k, v in value.items())
        )
        return text if len(text) <= 80 else text[:77] + "…"
    return str(value)


def _cell(key: str, value: Any) -> str:
    return e(_plain(key, value))


def _as_rows(value: Any) -> tuple[list[str], list[dict[str, Any]]] | None:
    """Columns and rows from a list of dicts, a list of pairs or a name -> number mapping."""
    if isinstance(value, dict) and value and all(isinstance(v, (int, float)) for v in value.values()):
        pairs = sorted(value.items(), key=lambda kv: -float(kv[1]))
        return ["name", "value"], [{"name": k, "value": v} for k, v in pairs]
    if isinstance(value, list) and value:
        if all(isinstance(r, dict) for r in value):
            columns: list[str] = []
            for row in value:
                columns.extend(k for k in row if k not in columns)
            return columns[:8], value
        if all(isinstance(r, (list, tuple)) and len(r) == 2 for r in value):
            return ["name", "value"], [{"name": r[0], "value": r[1]} for r in value]
    return None


def _numeric_column(columns: list[str], rows: list[dict[str, Any]]) -> str | None:
    numeric = [
        c
        for c in columns
        if all(isinstance(r.get(c), (int, float)) and not isinstance(r.get(c), bool) for r in rows)
    ]
    preferred = [
        c
        for c in numeric
        if any(w in c.lower() for w in ("share", "fraction", "time", "_s", "flops", "bytes", "value", "cost"))
    ]
    chosen = preferred or numeric
    return chosen[0] if chosen else None


def _label_column(columns: list[str], rows: list[dict[str, Any]]) -> str | None:
    for c in columns:
        if all(isinstance(r.get(c), str) for r in rows):
            return c
    return None


def _extra_table(title: str, value: Any, limit: int = 20) -> str:
    parsed = _as_rows(value)
    if parsed is None:
        return f"<h3>{e(title)}</h3><pre>{e(value)}</pre>"
    columns, rows = parsed
    rows = rows[:limit]
    out = f"<h3>{e(title)}</h3>"
    number, label = _numeric_column(columns, rows), _label_column(columns, rows)
    if number and label and len(rows) > 1:
        bars = [(str(r[label])[:24], float(r[number])) for r in rows[:15]]

        def fmt(v: float, key: str = number) -> str:
            return _plain(key, v)

        out += svg.horizontal_bars(f"{title} by {number}", bars, fmt, label=number)
    out += table([e(c) for c in columns], [[_cell(c, r.get(c)) for c in columns] for r in rows])
    return out
