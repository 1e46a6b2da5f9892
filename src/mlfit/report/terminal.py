"""The terminal reporter: rich renderables built from a result (the CLI prints them)."""

from __future__ import annotations

from typing import Any

from rich.console import Console, ConsoleOptions, Group, RenderableType, RenderResult
from rich.table import Table
from rich.text import Text

from mlfit.catalog.units import format_rate, format_size
from mlfit.report.common import (
    cold_start_text,
    configuration_lines,
    describe_input,
    format_value,
    model_name,
    sanitized,
)
from mlfit.report.load import load_lines
from mlfit.report.styles import VERDICT_STYLE, source_text
from mlfit.report.suggestions import text_lines as suggestion_lines
from mlfit.result import Check, Provenance, Report, RunResult, TargetReport, Verdict


def _value_cell(check: Check) -> str:
    text = format_value(check.value, check.unit)
    if check.provenance is Provenance.PROJECTED and check.lower is not None and check.upper is not None:
        text += f"\n[{format_value(check.lower, check.unit)} – {format_value(check.upper, check.unit)}]"
    return text


def verdict_text(verdict: Verdict) -> Text:
    return Text(verdict.value, style=VERDICT_STYLE[verdict])


def measurement_summary(result: RunResult) -> RenderableType:
    m = result.measurement
    host = result.host
    if m is None:
        return Text("")
    lat = m.latency
    table = Table(title=Text("Measured on this host" + (f": {host.cpu_model}" if host else "")),
                  title_justify="left", show_header=True, header_style="bold")
    for column in ("n", "min", "mean", "p50", "p90", "p95", "p99", "max", "CV"):
        table.add_column(column, justify="right", overflow="fold")
    table.add_row(str(lat.n), *(format_value(v, "s") for v in (lat.min, lat.mean, lat.p50, lat.p90, lat.p95,
                                                                lat.p99, lat.max)), f"{lat.cv:.1%}")
    mem = m.memory
    tp = m.throughput
    lines = [
        f"runtime {m.runtime} {m.runtime_version}, {m.threads} thread(s), {m.execution_provider}",
        f"cold start: {cold_start_text(m.cold_start)}",
        f"memory: runtime baseline {format_size(mem.runtime_baseline_bytes)} (import "
        f"+{format_size(mem.runtime_import_delta)}), load +{format_size(mem.load_delta)}, inference "
        f"+{format_size(mem.inference_delta)}, peak {format_size(mem.peak_bytes)} [{mem.method}]",
        f"throughput: {format_rate(tp.single_stream_per_s)} single stream"
        + (f", {format_rate(tp.batched_per_s)} at batch {tp.batch_size}" if tp.batched_per_s else ""),
    ]
    lines.extend(load_lines(m))  # server / offline / rate search / batch sweep, when run
    lines.extend(f"input {describe_input(t)}" for t in result.model.inputs_used)
    lines.extend(configuration_lines(result))
    if result.model.artefact:
        lines.insert(0, f"measured artefact: {result.model.artefact}")
    parts: list[RenderableType] = [table, Text("\n".join(lines))]
    for warning in m.warnings:
        parts.append(Text(f"warning: {warning}", style="yellow"))
    return Group(*parts)


LEGEND = ("source: host = measured on this machine, not the target; target = measured on the target's own "
          "hardware; emulated = measured on this machine inside the target's container limits (a cgroup); "
          "projected = carried to the target's hardware, with its [low – high] band; static = read "
          "from the file")


def target_table(report: TargetReport) -> Table:
    """One target's checks; the title carries the target, its hardware and its verdict."""
    title = Text.assemble((report.target, "bold"), f" on {report.hardware_name}: ", verdict_text(report.verdict))
    table = Table(title=title, title_justify="left", header_style="bold", expand=False)
    # overflow="fold": a cell too narrow wraps inside a word rather than cutting it with an ellipsis.
    table.add_column("check", no_wrap=True)
    table.add_column("budget", justify="right", overflow="fold")
    table.add_column("value", justify="right", overflow="fold")
    table.add_column("margin", justify="right", overflow="fold")
    table.add_column("source", overflow="fold")
    table.add_column("verdict", no_wrap=True)
    for check in report.checks:
        margin = f"{check.margin:+.0%}" if check.margin is not None else ""
        budget = "profile's list" if check.metric == "compat.dtypes" else check.budget
        table.add_row(Text(check.metric), Text(budget), Text(_value_cell(check)), margin,
                      source_text(check), verdict_text(check.verdict))
    return table


def summary_table(results: list[RunResult]) -> Table:
    """One row per model and target: the verdict and how many checks ended each way."""
    table = Table(title="Summary", title_justify="left", header_style="bold")
    for column in ("model", "target", "hardware", "verdict", "checks"):
        table.add_column(column, overflow="fold")
    for result in results:
        name = Text(model_name(result))
        if result.error is not None:
            table.add_row(name, "-", "-", verdict_text(Verdict.ERROR), Text(result.error.kind))
        for report in result.targets:
            counts = [f"{sum(c.verdict is v for c in report.checks)} {v.value.lower()}"
                      for v in Verdict if any(c.verdict is v for c in report.checks)]
            table.add_row(name, Text(report.target), Text(report.hardware), verdict_text(report.verdict),
                          ", ".join(counts))
    return table


def reasons(report: TargetReport) -> list[str]:
    """Why each check did not pass, then the target's notes."""
    out = [f"{check.metric}: {check.reason}" for check in report.checks
           if check.verdict is not Verdict.PASS and check.reason]
    return out + list(report.notes)


class _ByWidth:
    """Chooses the layout when printed, from the console's width: compact below WIDE_FROM columns."""

    def __init__(self, report: Report) -> None:
        self.report = report

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        from mlfit.report.compact import WIDE_FROM, render_compact

        if options.max_width >= WIDE_FROM:
            yield render_wide(self.report)
        else:
            yield render_compact(self.report, options.max_width)


def render_terminal(report: Report) -> RenderableType:
    """The report for a terminal or a log: the wide tables from 120 columns, else the compact layout
    (one line per check; see mlfit.report.compact), chosen when printed.

    Every text of the report (file names, input and op names, messages, notes) is made
    printable first (:func:`mlfit.report.common.sanitized`) and reaches rich as ``Text``,
    never as markup: a name can neither start a new line nor style one.
    """
    return _ByWidth(sanitized(report))


def render_wide(report: Report) -> RenderableType:
    """Every result of the report, then a summary when there is more than one row, then the verdict."""
    parts: list[Any] = [render_result(r) for r in report.results]
    rows = sum(max(1, len(r.targets)) for r in report.results)
    if rows > 1 and any(r.targets for r in report.results):
        parts.append(summary_table(report.results))
    parts.extend(Text(f"note: {n}", style="dim") for n in report.notes)
    if any(r.targets for r in report.results):
        parts.append(Text.assemble("Overall: ", verdict_text(report.verdict)))
    return Group(*parts)


def render_result(result: RunResult) -> RenderableType:
    if result.error is not None:
        err = result.error
        return Text(f"{result.model.path}: ERROR ({err.kind} in {err.phase}): {err.message}", style="magenta")
    parts: list[Any] = [measurement_summary(result)]
    if result.targets:
        parts.append(Text(f"\nVerdicts for {result.model.path}", style="bold"))
    for report in result.targets:
        parts.append(target_table(report))
        parts.extend(Text(f"  • {line}", style="dim" if i >= len(report.checks) else "") for i, line in
                     enumerate(reasons(report)))
        parts.extend(Text(line) for line in suggestion_lines(report, 118))  # check --suggest
    if result.targets:
        parts.append(Text(LEGEND, style="dim"))
    return Group(*parts)
