"""The HTML reporter: one self-contained file a release manager can attach to a sign-off.

Per model: the verdict table per target, a latency histogram and CDF with each budget drawn
as a line, memory per phase, measured and projected figures with their bands, the costliest
ops or the op histogram, a batch sweep when one was measured, and the environment. Charts are
inline SVG (:mod:`mlfit.report.svg`); there is no script and nothing is fetched, so the file
opens offline. Every text from the result is escaped.
"""

from __future__ import annotations

import math
from html import escape
from importlib import resources
from string import Template
from typing import Any

from mlfit.catalog.units import format_duration, format_rate, format_size
from mlfit.errors import printable
from mlfit.records import CostlyOp
from mlfit.report import svg
from mlfit.report.common import (
    PROVENANCE_LABEL,
    budget_text,
    change_text,
    describe_input,
    error_text,
    format_value,
    interval_text,
    margin_text,
    model_name,
    value_text,
)
from mlfit.result import Check, Comparison, Provenance, Report, RunResult, TargetReport, Verdict

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


# --- verdicts ----------------------------------------------------------------------------------


def _verdict_table(result: RunResult) -> str:
    rows: list[list[str]] = []
    classes: list[str] = []
    for target in result.targets:
        for i, check in enumerate(target.checks):
            rows.append(
                [
                    e(target.target) if i == 0 else "",
                    f"<code>{e(check.metric)}</code>",
                    e(budget_text(check)),
                    e(value_text(check)),
                    e(margin_text(check)),
                    e(PROVENANCE_LABEL[check.provenance]),
                    badge(check.verdict.value, check.verdict.value),
                    e(check.reason),
                ]
            )
            classes.append("")
        rows.append(
            [
                "",
                "overall",
                f"on {e(target.hardware_name)}",
                "",
                "",
                "",
                badge(target.verdict.value, target.verdict.value),
                "",
            ]
        )
        classes.append("overall")
    return table(
        ["target", "check", "budget", "value [band]", "margin", "source", "verdict", "reason"],
        rows,
        {3, 4},
        classes,
        "verdicts",
    )


def _notes(result: RunResult) -> str:
    """The notes of each target under its own name: a band widened for the Pi is not the VM's."""
    out = []
    for target in result.targets:
        if target.notes:
            out.append(
                f'<div class="notes"><h4>Notes for {e(target.target)} <span class="muted">on '
                f"{e(target.hardware_name)}</span></h4>"
                '<ul class="reasons muted">' + "".join(f"<li>{e(n)}</li>" for n in target.notes) + "</ul></div>"
            )
    return "".join(out)


def tick_duration(seconds: float) -> str:
    """Short axis labels: '500 µs', '1 ms', '2.5 s'."""
    if seconds <= 0:
        return "0"
    for unit, scale in (("s", 1.0), ("ms", 1e-3), ("µs", 1e-6), ("ns", 1e-9)):
        if seconds >= scale or unit == "ns":
            return f"{seconds / scale:g} {unit}"
    return f"{seconds:g} s"  # pragma: no cover


# --- measurement -------------------------------------------------------------------------------


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
    return {t.target: svg.PALETTE[i % len(svg.PALETTE)] for i, t in enumerate(result.targets)}


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


def _projection_table(result: RunResult) -> str:
    rows = []
    for target in result.targets:
        for check in target.checks:
            if check.provenance is Provenance.PROJECTED:
                band = (
                    f"{format_value(check.lower, check.unit)} – {format_value(check.upper, check.unit)}"
                    if check.lower is not None and check.upper is not None
                    else "-"
                )
                rows.append(
                    [
                        e(target.target),
                        f"<code>{e(check.metric)}</code>",
                        e(format_value(check.value, check.unit)),
                        e(band),
                        e(check.budget),
                        badge(check.verdict.value, check.verdict.value),
                        e(check.method),
                    ]
                )
    if not rows:
        return ""
    return (
        "<p>Projected figures are carried from this host to the target's hardware by the stated method; "
        "PASS needs the conservative end of the band to fit, FAIL means even the optimistic end does not.</p>"
        + table(["target", "check", "projected", "band", "budget", "verdict", "method"], rows, {2, 3})
    )


# --- generic extras: costliest ops, batch sweep, static facts ---------------------------------------


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


def find_costliest(result: RunResult) -> list[tuple[str, Any]]:
    """Every 'costliest ...' table in the result's analysis or measurement extras, where present."""
    found: list[tuple[str, Any]] = []
    sources = [("analysis", result.analysis or {})]
    if result.measurement is not None:
        sources.append(("measurement", result.measurement.extra))
    for origin, data in sources:
        stack: list[tuple[str, Any]] = [(origin, data)]
        depth = {origin: 0}
        while stack:
            path, node = stack.pop(0)
            if not isinstance(node, dict):
                continue
            for key, value in node.items():
                child = f"{path}.{key}"
                if "costliest" in str(key).lower() or "hotspot" in str(key).lower():
                    found.append((child, value))
                elif isinstance(value, dict) and depth[path] < 2:
                    depth[child] = depth[path] + 1
                    stack.append((child, value))
    return found


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


def _host_op_times(result: RunResult) -> tuple[dict[str, float], dict[str, int], str]:
    """Per op type, the time onnxruntime's node profile measured on this host (seconds per inference)
    at the run's thread count (else the most threads profiled), with node counts and a label."""
    profile = result.node_profile
    if profile is None or not profile.by_threads:
        return {}, {}, ""
    threads = str(result.measurement.threads) if result.measurement is not None else ""
    by_threads = profile.by_threads
    key = threads if threads in by_threads else max(by_threads, key=lambda k: int(k) if k.isdigit() else 0)
    times: dict[str, float] = {}
    counts: dict[str, int] = {}
    for name, us in by_threads[key].node_us_low.items():
        facts = profile.nodes.get(name)
        op = facts.op if facts is not None and facts.op else name
        times[op] = times.get(op, 0.0) + us / 1e6
        counts[op] = counts.get(op, 0) + 1
    return times, counts, f"{key} thread(s)"


def _top_ops(target: TargetReport) -> list[CostlyOp]:
    return list(target.projection.top_ops) if target.projection is not None else []


def _per_op_costs(result: RunResult) -> str:
    """Per op type: the host's measured time from the node profile, and per target the projected time
    and share (the projection's costliest ops), side by side; a bar chart per target."""
    host, counts, host_label = _host_op_times(result)
    targets = [t for t in result.targets if _top_ops(t)]
    if not host and not targets:
        return ""
    host_total = sum(host.values())
    shares: dict[str, float] = {op: t / host_total for op, t in host.items()} if host_total > 0 else {}
    projected = {t.target: {o.op: o for o in _top_ops(t)} for t in targets}
    order = sorted(
        set(shares) | {op for ops in projected.values() for op in ops},
        key=lambda op: -max([shares.get(op, 0.0), *(p[op].share for p in projected.values() if op in p)]),
    )[:12]
    static = (result.analysis or {}).get("op_costs")
    static = static if isinstance(static, dict) else {}
    header = ["op", "nodes", "FLOPs (static)"]
    if host:
        header.append(f"this host: measured, {e(host_label)}")
    header.extend(f"{e(t.target)}: projected" for t in targets)
    rows = []
    for op in order:
        facts = static.get(op) if isinstance(static.get(op), dict) else {}
        nodes = facts.get("count", counts.get(op, "")) if isinstance(facts, dict) else counts.get(op, "")
        flops = facts.get("flops") if isinstance(facts, dict) else None
        row = [f"<code>{e(op)}</code>", e(nodes), e(f"{flops:,.0f}") if isinstance(flops, (int, float)) else "-"]
        if host:
            row.append(e(f"{format_duration(host[op])} ({shares[op]:.0%})") if op in host else "-")
        for t in targets:
            item = projected[t.target].get(op)
            row.append("-" if item is None else e(f"{format_duration(item.seconds)} ({item.share:.0%})"))
        rows.append(row)
    out = (
        "<h3>Per-op costs</h3>"
        '<p class="muted">Time per inference by op type, with its share: on this host as onnxruntime\'s '
        "node profile measured it (fastest profiled run), and on each target as projected onto its hardware ("
        + e("; ".join(f"{t.target}: {t.hardware_name}" for t in targets))
        + "). Ops not among a target's costliest show '-'.</p>"
        + table(header, rows, set(range(1, len(header))))
    )
    charts = [
        svg.horizontal_bars(
            f"Costliest ops on {t.target} (projected share)",
            [(o.op, o.share) for o in _top_ops(t)[:10]],
            lambda v: f"{v:.0%}",
            label=f"share of the projected latency on {t.hardware_name}",
            colour=svg.PROJECTED,
        )
        for t in targets
    ]
    if host and not targets:
        top = sorted(shares.items(), key=lambda kv: -kv[1])[:10]
        charts.append(
            svg.horizontal_bars(
                "Costliest ops on this host (measured share)", top, lambda v: f"{v:.0%}", label="share of node time"
            )
        )
    if charts:
        out += '<div class="charts">' + "".join(charts) + "</div>"
    nodes_tables = []
    for t in targets:
        top_nodes = t.projection.top_nodes if t.projection is not None else []
        rows_n = [
            [f"<code>{e(n.name)}</code>", e(n.op), e(format_duration(n.seconds)), e(f"{n.share:.0%}")]
            for n in top_nodes[:8]
        ]
        if rows_n:
            nodes_tables.append(
                f"<h4>Costliest nodes on {e(t.target)} (projected)</h4>"
                + table(["node", "op", "time per inference", "share"], rows_n, {2, 3})
            )
    return out + "".join(nodes_tables)


def _ops_section(result: RunResult) -> str:
    costs = _per_op_costs(result)
    costliest = find_costliest(result)  # tables other helpers keep in the analysis or extras
    extra = "".join(_extra_table(f"Costliest ops ({path})", value) for path, value in costliest)
    if costs or extra:
        return costs + extra
    ops = (result.analysis or {}).get("ops")
    if isinstance(ops, dict) and ops and all(isinstance(v, (int, float)) for v in ops.values()):
        top = sorted(ops.items(), key=lambda kv: -float(kv[1]))[:15]
        return (
            "<h3>Op histogram (static, from the model file)</h3>"
            + svg.horizontal_bars(
                "Most frequent ops", [(str(k), float(v)) for k, v in top], lambda v: f"{v:g}", label="nodes"
            )
            + '<p class="muted">This result has no node profile (the runtime gives none) and no projection '
            "per op, so ops are counted, not costed.</p>"
        )
    return ""


def _batch_sweep(result: RunResult) -> str:
    extra = result.measurement.extra if result.measurement is not None else {}
    sweep = extra.get("batch_sweep")
    if not isinstance(sweep, list) or not sweep:
        return ""
    points = []
    for row in sweep:
        if not isinstance(row, dict):
            continue
        b, lat, tp = row.get("batch_size"), row.get("latency_p50_s"), row.get("throughput_per_s")
        if isinstance(b, (int, float)) and b > 0:
            points.append(
                (
                    float(b),
                    lat if isinstance(lat, (int, float)) else None,
                    tp if isinstance(tp, (int, float)) else None,
                )
            )
    points.sort()
    if not points:
        return ""
    out = '<h3>Batch sweep</h3><div class="charts">'
    lat_pts = [(b, float(lat)) for b, lat, _ in points if lat is not None]
    tp_pts = [(b, float(tp)) for b, _, tp in points if tp is not None]
    if lat_pts:
        out += svg.line_chart(
            "Median latency per batch",
            [p[0] for p in lat_pts],
            [p[1] for p in lat_pts],
            "batch size",
            "p50 latency",
            tick_duration,
        )
    if tp_pts:
        out += svg.line_chart(
            "Throughput per batch",
            [p[0] for p in tp_pts],
            [p[1] for p in tp_pts],
            "batch size",
            "samples per second",
            format_rate,
            svg.PROJECTED,
        )
    out += "</div>"
    out += table(
        ["batch size", "p50 latency", "throughput"],
        [
            [
                f"{b:g}",
                e(format_duration(lat)) if lat is not None else "-",
                e(format_rate(tp)) if tp is not None else "-",
            ]
            for b, lat, tp in points
        ],
        {0, 1, 2},
    )
    return out


def _load_scenarios(result: RunResult) -> str:
    """Server runs, rate searches and offline runs (``extra["scenario"]``), in the terminal's words."""
    m = result.measurement
    if m is None or not m.extra.get("scenario"):
        return ""
    from mlfit.report.load import load_lines

    without_sweep = m.model_copy(update={"extra": {k: v for k, v in m.extra.items() if k != "batch_sweep"}})
    try:
        lines = load_lines(without_sweep)
    except (KeyError, TypeError, ValueError):  # a shape this mlfit does not know: leave it to the JSON
        return ""
    if not lines:
        return ""
    return "<h3>Load scenarios</h3><ul>" + "".join(f"<li>{e(line)}</li>" for line in lines) + "</ul>"


_SKIP_ANALYSIS = {"ops", "inputs", "outputs", "opsets"}


def _analysis_table(result: RunResult) -> str:
    analysis = result.analysis or {}
    rows = []
    for key, value in analysis.items():
        if key in _SKIP_ANALYSIS or "costliest" in key.lower():
            continue
        if isinstance(value, dict) and not all(
            isinstance(v, (int, float, str, bool)) or v is None for v in value.values()
        ):
            continue
        if isinstance(value, list) and any(isinstance(v, (dict, list)) for v in value):
            continue
        if value in (None, [], {}, ""):
            continue
        rows.append([e(key), _cell(key, value)])
    return table(["fact", "value"], rows) if rows else ""


# --- environment -------------------------------------------------------------------------------


def _environment(result: RunResult) -> str:
    model = result.model
    rows = [
        ["model", f"<code>{e(model.path)}</code>"],
        ["sha256", f"<code>{e(model.sha256)}</code>"],
        ["format / runtime", e(f"{model.format} / {model.runtime}")],
        ["size", e(format_size(model.size_bytes))],
    ]
    if model.inputs_used:
        rows.append(
            [
                "inputs measured",
                "<br>".join(e(describe_input(t)) for t in model.inputs_used),
            ]
        )
    if model.artefact:
        rows.append(["measured artefact", e(model.artefact)])
    m = result.measurement
    if m is not None:
        rows.extend(
            [
                [
                    "runtime",
                    e(f"{m.runtime} {m.runtime_version}, {m.threads} thread(s), {m.execution_provider}"),
                ],
                [
                    "cold start",
                    e(
                        f"load {format_duration(m.cold_start.load_s)} + first inference "
                        f"{format_duration(m.cold_start.first_inference_s)} (runtime import "
                        f"{format_duration(m.cold_start.import_s)})"
                    ),
                ],
                [
                    "throughput",
                    e(
                        f"{format_rate(m.throughput.single_stream_per_s)} single stream"
                        + (
                            f", {format_rate(m.throughput.batched_per_s)} at batch {m.throughput.batch_size}"
                            if m.throughput.batched_per_s
                            else ""
                        )
                    ),
                ],
            ]
        )
    host = result.host
    if host is not None:
        quota = f"{host.cgroup_cpu_quota:g} CPUs" if host.cgroup_cpu_quota else "none"
        limit = format_size(host.cgroup_memory_limit) if host.cgroup_memory_limit else "none"
        rows.extend(
            [
                ["host", e(f"{host.hostname}: {host.cpu_model} ({host.arch})")],
                [
                    "cores",
                    e(
                        f"{host.cores_logical} logical, {host.cores_physical or '?'} physical, "
                        f"{host.cores_usable} usable (affinity {len(host.affinity)}, cgroup quota {quota})"
                    ),
                ],
                ["memory", e(f"{format_size(host.ram_bytes)} RAM, cgroup limit {limit}")],
                ["os / python", e(f"{host.os} / Python {host.python}")],
                ["load average (1 min)", e(f"{host.load_avg_1m:.2f}")],
                ["GPUs", e(", ".join(host.gpus) or "none")],
                ["versions", e(", ".join(f"{k} {v}" for k, v in sorted(host.versions.items())))],
                ["fingerprint", f"<code>{e(host.fingerprint)}</code>"],
            ]
        )
    rows.append(["created", e(result.created)])
    return table(["", ""], rows)


# --- comparison --------------------------------------------------------------------------------


def _comparison(comparison: Comparison) -> str:
    head = (
        badge("REGRESSION", "regression", True)
        if comparison.regressed
        else badge("no regression", "unchanged", True)
    )
    out = [
        f'<section class="model"><h2>Compared with <code>{e(comparison.base_path)}</code> {head}</h2>',
        f"<p>{e(comparison.method)}. A regression is a change beyond the minimum effect whose whole "
        f"{comparison.confidence:.0%} interval lies on the worse side.</p>",
    ]
    out.extend(f'<div class="warn">{e(w)}</div>' for w in comparison.warnings)
    for model in comparison.models:
        out.append(f"<h3>{e(model.model)}</h3>")
        out.extend(f'<p class="muted">{e(n)}</p>' for n in model.notes)
        rows = [
            [
                f"<code>{e(c.metric)}</code>",
                e(format_value(c.base, c.unit)),
                e(format_value(c.new, c.unit)),
                e(change_text(c)),
                e(interval_text(c)),
                badge(c.status.value, c.status.value),
                e(c.reason),
            ]
            for c in model.changes
        ]
        forest = [
            svg.ChangeRow(c.metric, c.change, c.ci_low, c.ci_high, c.status.value)
            for c in model.changes
            if c.change is not None
        ]
        if forest:
            out.append(svg.change_forest(forest, comparison.min_effect))
        out.append(
            table(
                ["metric", "base", "new", "change", f"{comparison.confidence:.0%} interval", "status", "why"],
                rows,
                {1, 2, 3, 4},
            )
        )
    out.append("</section>")
    return "".join(out)


# --- the document ------------------------------------------------------------------------------


def _result_section(result: RunResult) -> str:
    verdict = badge(result.verdict.value, result.verdict.value, True)
    parts = [f'<section class="model"><h2>{e(model_name(result))} {verdict}</h2>']
    if result.error is not None:
        parts.append(
            f'<div class="err"><strong>Could not measure the model.</strong> {e(error_text(result))}</div>'
        )
    if result.targets:
        parts.append("<h3>Verdicts per target</h3>" + _verdict_table(result) + _notes(result))
    if result.measurement is not None:
        parts.append("<h3>Latency (measured on this host)</h3>" + _latency_table(result))
        parts.extend(f'<div class="warn">{e(w)}</div>' for w in result.measurement.warnings)
        parts.append(_latency_charts(result))
        parts.append("<h3>Memory per phase</h3>" + _memory_chart(result))
    budget_rows = _budget_rows(result)
    projection = _projection_table(result)
    if budget_rows or projection:
        parts.append("<h3>Measured and projected, against each budget</h3>")
        if budget_rows:
            parts.append(svg.budget_use(budget_rows))
        parts.append(projection)
    parts.append(_ops_section(result))
    parts.append(_load_scenarios(result))
    parts.append(_batch_sweep(result))
    facts = _analysis_table(result)
    if facts:
        parts.append("<h3>Static facts</h3>" + facts)
    parts.append("<h3>Environment</h3>" + _environment(result))
    parts.append("</section>")
    return "".join(parts)


def _summary(report: Report) -> str:
    rows = []
    for result in report.results:
        if result.error is not None or not result.targets:
            rows.append(
                [
                    e(model_name(result)),
                    "-",
                    badge(result.verdict.value, result.verdict.value),
                    e(error_text(result) or "measured only"),
                ]
            )
        for target in result.targets:
            bad = [
                f"{c.metric} {c.verdict.value.lower()}"
                for c in target.checks
                if c.verdict is not Verdict.PASS
            ]
            rows.append(
                [
                    e(model_name(result)),
                    e(f"{target.target} ({target.hardware_name})"),
                    badge(target.verdict.value, target.verdict.value),
                    e("; ".join(bad) or "all budgets met"),
                ]
            )
    return "<h2>Summary</h2>" + table(["model", "target", "verdict", "detail"], rows)


def render_html(report: Report) -> str:
    """The whole report as one HTML document with inline SVG charts."""
    verdict = report.verdict
    title = f"mlfit report: {verdict.value}"
    if report.comparison is not None and report.comparison.regressed:
        title += " · regression"
    names = ", ".join(model_name(r) for r in report.results)
    meta = (
        f"{badge(verdict.value, verdict.value, True)} &nbsp; {e(names)} · created {e(report.created)} · "
        f"mlfit {e(report.mlfit_version)}" + ("" if report.complete else " · <strong>incomplete run</strong>")
    )
    body = [_summary(report)]
    if report.comparison is not None:
        body.append(_comparison(report.comparison))
    body.extend(_result_section(r) for r in report.results)
    body.extend(f'<p class="muted">{e(n)}</p>' for n in report.notes)
    return _template().substitute(
        title=e(title), meta=meta, body="\n".join(body), version=e(report.mlfit_version)
    )
