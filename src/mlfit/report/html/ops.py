"""Where the time goes: per-op costs (host measured, target projected), the op histogram, the batch
sweep, load scenarios and the static analysis."""

from __future__ import annotations

from mlfit.analysis.project.costliest import find_costliest, host_op_times
from mlfit.catalog.units import format_duration, format_rate
from mlfit.records import CostlyOp
from mlfit.report import svg
from mlfit.report.html.page import _cell, _extra_table, e, table, tick_duration
from mlfit.result import RunResult, TargetReport


def _top_ops(target: TargetReport) -> list[CostlyOp]:
    """The projection's own time per op type (every op, adding up to its median), else its costliest."""
    if target.projection is None:
        return []
    return list(target.projection.details.per_op or target.projection.top_ops)


def _per_op_costs(result: RunResult) -> str:
    """Per op type: the host's measured time from the node profile, and per target the projected time
    and share (the projection's costliest ops), side by side; a bar chart per target."""
    host, counts, host_label = host_op_times(
        result.node_profile, result.measurement.threads if result.measurement is not None else None)
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
        + "); a target's times are its projection's own breakdown and add up to its projected median. An op "
        "a column lacks shows '-' (onnxruntime's fused op names beside the model's).</p>"
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
    sweep = result.measurement.batch_sweep if result.measurement is not None else []
    points = [(float(row.batch_size), row.latency_p50_s, row.throughput_per_s)
              for row in sweep if row.batch_size > 0]
    points.sort(key=lambda p: p[0])
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
    """Server runs, rate searches and offline runs (``Measurement.scenario``), in the terminal's words."""
    m = result.measurement
    if m is None or m.scenario is None:
        return ""
    from mlfit.report.load import load_lines

    lines = load_lines(m, sweep=False)  # the sweep has its own section
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
