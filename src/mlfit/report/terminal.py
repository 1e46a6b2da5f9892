"""The terminal reporter: rich renderables built from a result (the CLI prints them)."""

from __future__ import annotations

from typing import Any

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from mlfit.catalog.units import format_duration, format_rate, format_size
from mlfit.report.load import load_lines
from mlfit.result import Check, Provenance, Report, RunResult, Verdict

VERDICT_STYLE = {
    Verdict.PASS: "bold green",
    Verdict.FAIL: "bold red",
    Verdict.INCONCLUSIVE: "bold yellow",
    Verdict.ERROR: "bold magenta",
}
PROVENANCE_LABEL = {
    Provenance.MEASURED_ON_HOST: "measured (host)",
    Provenance.MEASURED_ON_TARGET: "measured (target)",
    Provenance.PROJECTED: "projected",
    Provenance.STATIC: "static",
}


def format_value(value: float | None, unit: str) -> str:
    if value is None:
        return "-"
    if unit == "s":
        return format_duration(value)
    if unit == "B":
        return format_size(value)
    if unit == "/s":
        return format_rate(value)
    return f"{value:g}"


def _value_cell(check: Check) -> str:
    text = format_value(check.value, check.unit)
    if check.provenance is Provenance.PROJECTED and check.lower is not None and check.upper is not None:
        text += f" [{format_value(check.lower, check.unit)} – {format_value(check.upper, check.unit)}]"
    return text


def verdict_text(verdict: Verdict) -> Text:
    return Text(verdict.value, style=VERDICT_STYLE[verdict])


def measurement_summary(result: RunResult) -> RenderableType:
    m = result.measurement
    host = result.host
    if m is None:
        return Text("")
    lat = m.latency
    table = Table(title="Measured on this host" + (f": {host.cpu_model}" if host else ""), title_justify="left",
                  show_header=True, header_style="bold")
    for column in ("n", "min", "mean", "p50", "p90", "p95", "p99", "max", "CV"):
        table.add_column(column, justify="right")
    table.add_row(str(lat.n), *(format_value(v, "s") for v in (lat.min, lat.mean, lat.p50, lat.p90, lat.p95,
                                                                lat.p99, lat.max)), f"{lat.cv:.1%}")
    mem = m.memory
    tp = m.throughput
    lines = [
        f"runtime {m.runtime} {m.runtime_version}, {m.threads} thread(s), {m.execution_provider}",
        f"cold start: load {format_duration(m.cold_start.load_s)} + first inference "
        f"{format_duration(m.cold_start.first_inference_s)} (runtime import {format_duration(m.cold_start.import_s)})",
        f"memory: runtime baseline {format_size(mem.runtime_baseline_bytes)} (import "
        f"+{format_size(mem.runtime_import_delta)}), load +{format_size(mem.load_delta)}, inference "
        f"+{format_size(mem.inference_delta)}, peak {format_size(mem.peak_bytes)} [{mem.method}]",
        f"throughput: {format_rate(tp.single_stream_per_s)} single stream"
        + (f", {format_rate(tp.batched_per_s)} at batch {tp.batch_size}" if tp.batched_per_s else ""),
    ]
    lines.extend(load_lines(m))  # server / offline / rate search / batch sweep, when run
    if result.model.artefact:
        lines.insert(0, f"measured artefact: {result.model.artefact}")
    parts: list[RenderableType] = [table, Text("\n".join(lines))]
    for warning in m.warnings:
        parts.append(Text(f"warning: {warning}", style="yellow"))
    return Group(*parts)


def verdict_table(result: RunResult) -> RenderableType:
    table = Table(title=f"Verdicts for {result.model.path}", title_justify="left", header_style="bold",
                  caption="source: measured (host) = on this machine, not the target; projected = carried to "
                          "the target's hardware with a \\[low – high] band; static = read from the file",
                  caption_justify="left")
    for column, justify in (("target", "left"), ("check", "left"), ("budget", "right"), ("value", "right"),
                            ("margin", "right"), ("source", "left"), ("verdict", "left")):
        table.add_column(column, justify=justify)  # type: ignore[arg-type]
    for report in result.targets:
        for i, check in enumerate(report.checks):
            margin = f"{check.margin:+.0%}" if check.margin is not None else ""
            budget = "profile's list" if check.metric == "compat.dtypes" else check.budget
            table.add_row(report.target if i == 0 else "", check.metric, budget, _value_cell(check), margin,
                          PROVENANCE_LABEL[check.provenance], verdict_text(check.verdict))
        table.add_row("", Text("overall", style="bold"), "", "", "", report.hardware,
                      verdict_text(report.verdict), end_section=True)
    return table


def reasons(result: RunResult) -> list[str]:
    out: list[str] = []
    for report in result.targets:
        for check in report.checks:
            if check.verdict is not Verdict.PASS and check.reason:
                out.append(f"{report.target} {check.metric}: {check.reason}")
        out.extend(f"{report.target}: {note}" for note in report.notes)
    return out


def render_terminal(report: Report) -> RenderableType:
    """Every result of the report, then the overall verdict."""
    parts: list[Any] = [render_result(r) for r in report.results]
    if len(report.results) > 1 or not report.results[0].targets:
        parts.extend(Text(f"note: {n}", style="dim") for n in report.notes)
        return Group(*parts)
    return Group(*parts)


def render_result(result: RunResult) -> RenderableType:
    if result.error is not None:
        err = result.error
        return Text(f"{result.model.path}: ERROR ({err.kind} in {err.phase}): {err.message}", style="magenta")
    parts: list[Any] = [measurement_summary(result)]
    if result.targets:
        parts.append(verdict_table(result))
        notes = reasons(result)
        seen: set[str] = set()
        for line in notes:
            key = line.split(": ", 1)[-1]
            if key in seen:
                continue
            seen.add(key)
            parts.append(Text(f"• {line}", style="dim" if "measured on this host" in line else ""))
        parts.append(Text.assemble("Overall: ", verdict_text(result.verdict)))
    return Group(*parts)
