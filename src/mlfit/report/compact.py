"""The compact terminal layout: one line per check, nothing truncated, for CI logs and narrow terminals.

``mlfit check`` prints this layout when its output is narrower than :data:`WIDE_FROM` columns, which
includes every CI log: a pipe is 80 columns wide unless ``COLUMNS`` says otherwise. From
``WIDE_FROM`` columns on, the tables of :mod:`mlfit.report.terminal` are used.

Rules: a check is one line (metric, value with its band, budget, margin, source, verdict), its
columns aligned per target; when that does not fit the width the gaps shrink, then the margin column
goes (the value and budget say it), then the alignment; a number is never cut or wrapped inside. Long
prose (reasons, notes, paths) wraps at word boundaries. A container target prints the limits applied,
its CFS throttling and the thread advice (what a failing pod's CI log must say); a FAIL or
INCONCLUSIVE whose checks give no reason prints its first notes. The other notes are counted, not printed:
the Markdown, HTML and JSON reports, and the wide layout, carry their full text, and the costliest
ops.
"""

from __future__ import annotations

import re
import textwrap
from collections.abc import Iterable, Sequence

from rich.console import Group, RenderableType
from rich.text import Text

from mlfit.catalog.units import format_duration, format_rate, format_size
from mlfit.errors import printable
from mlfit.report.common import (
    change_text,
    cold_start_items,
    configuration_lines,
    describe_input,
    describe_limits,
    format_value,
    interval_text,
    model_name,
    throttle_totals,
)
from mlfit.report.load import load_lines
from mlfit.report.styles import STATUS_STYLE, VERDICT_STYLE, source_text
from mlfit.report.suggestions import text_lines as suggestion_lines
from mlfit.result import (
    ChangeStatus,
    Check,
    Comparison,
    Emulation,
    Provenance,
    Report,
    RunResult,
    TargetReport,
    Verdict,
)

WIDE_FROM = 120
_NUMBER = re.compile(r"^([-+]?[0-9][0-9.,]*)\s*(.*)$")


def clean(text: str) -> str:
    """Text safe to print on a terminal (mlfit.errors.printable): the reports reach this module
    sanitized already (mlfit.report.common.sanitized); this guards what is composed here."""
    return printable(text)


def band_text(check: Check) -> str:
    """'16.20 ms [5.16–33.22]': the band's unit is left out when it is the value's."""
    text = format_value(check.value, check.unit)
    if check.lower is None or check.upper is None or check.lower == check.upper:
        return text
    low, high = format_value(check.lower, check.unit), format_value(check.upper, check.unit)
    unit = _NUMBER.match(text)
    low_m, high_m = _NUMBER.match(low), _NUMBER.match(high)
    if unit and low_m and high_m and low_m.group(2) == high_m.group(2) == unit.group(2):
        return f"{text} [{low_m.group(1)}–{high_m.group(1)}]"
    return f"{text} [{low}–{high}]"


def pack(items: Iterable[str], width: int, first: str = "", indent: int = 2, sep: str = ", ") -> list[str]:
    """Items joined into lines no wider than ``width``; an item is never split (a longer one stands
    alone on its line)."""
    lines: list[str] = []
    line = first
    for item in items:
        piece = item if line in ("", first) else sep + item
        if line not in ("", first) and len(line) + len(piece) + len(sep.rstrip()) > width:
            lines.append(line + sep.rstrip())
            line = " " * indent + item
        else:
            line += piece
    if line:
        lines.append(line)
    return lines


def _prose(text: str, width: int, indent: int = 0, style: str = "") -> list[RenderableType]:
    """Prose wrapped at word boundaries (a word, a number with its unit, is never split), continuation
    lines indented two more; a word longer than the width stands alone on its line."""
    lines = textwrap.wrap(clean(text), width=width, initial_indent=" " * indent, subsequent_indent=" " * (indent + 2),
                          break_long_words=False, break_on_hyphens=False) or [""]
    return [Text(line, style=style) for line in lines]


def measurement_lines(result: RunResult, width: int) -> list[RenderableType]:
    m = result.measurement
    if m is None:
        return []
    lat, mem, cold, tp = m.latency, m.memory, m.cold_start, m.throughput
    host = result.host
    name = model_name(result)
    head = f"{name} measured on this host" + (f" ({host.cpu_model})" if host and host.cpu_model else "") + ": "
    lines = pack([f"{m.runtime} {m.runtime_version}", f"{m.threads} thread(s)", m.execution_provider], width,
                 first=head)
    lines += pack([f"n {lat.n}", *(f"{name} {format_value(v, 's')}" for name, v in (
        ("min", lat.min), ("mean", lat.mean), ("p50", lat.p50), ("p90", lat.p90), ("p95", lat.p95),
        ("p99", lat.p99), ("max", lat.max))), f"CV {lat.cv:.1%}",
        f"throughput {format_rate(tp.single_stream_per_s)}"
        + (f" ({format_rate(tp.batched_per_s)} at batch {tp.batch_size})" if tp.batched_per_s else "")],
        width, first="  latency (host): ", indent=4)
    lines += pack(cold_start_items(cold), width, first="  cold start: ", indent=4, sep=" ")
    # The method (VmHWM, ru_maxrss) is in the reports; here only the figures, deltas in the peak's unit.
    lines += pack([f"peak {format_size(mem.peak_bytes)} (baseline {format_size(mem.runtime_baseline_bytes)}",
                   f"load +{format_size(mem.load_delta)}", f"inference +{format_size(mem.inference_delta)})"], width,
                  first="  memory ", indent=4)
    if result.model.inputs_used:  # the shapes and values measured with, one item per input
        lines += pack([describe_input(t) for t in result.model.inputs_used], width, first="  inputs: ", indent=4,
                      sep="; ")
    out: list[RenderableType] = []
    if result.model.artefact:
        out += _prose(f"measured artefact: {result.model.artefact}", width)
    out += [Text(clean(line)) for line in lines]
    for line in load_lines(m):
        out += _prose(line, width, indent=2)
    for line in configuration_lines(result):  # one per deployment configuration, when several ran
        out += _prose(line.strip(), width, indent=4 if line.startswith("  ") else 2)
    if m.warnings:
        out += _prose("warning: " + "; ".join(m.warnings), width, indent=2, style="yellow")
    return out


def _fit(rows: Sequence[Sequence[str]], spans: Sequence[bool], width: int) -> list[str]:
    """Align the columns metric, value, budget, margin, source (the verdict follows, unaligned).

    A spanning row has no value: its budget text (a description) takes the value, budget and margin
    columns. The widest layout that fits wins: indented two-space gaps, one-space gaps, no margin
    column, no indent, then only the metric aligned. Each line starts with its indent."""
    verdict_w = max((len(r[5]) for r in rows), default=0)
    normal = [r for r, span in zip(rows, spans, strict=True) if not span]
    for indent, gap, margin in ((2, 2, True), (2, 1, True), (2, 2, False), (2, 1, False), (1, 1, False), (0, 1, False)):
        cols = [0, 1, 2, 3, 4] if margin else [0, 1, 2, 4]
        widths = {c: max((len(r[c]) for r in (rows if c in (0, 4) else normal)), default=0) for c in cols}
        total = indent + sum(widths.values()) + gap * len(cols) + verdict_w
        if total > width:
            continue
        g = " " * gap
        lines = []
        for row, span in zip(rows, spans, strict=True):
            head = " " * indent + row[0].ljust(widths[0]) + g
            if span:
                spanned = widths[1] + widths[2] + gap + ((widths[3] + gap) if margin else 0)
                middle = row[2].ljust(spanned)
            else:
                middle = row[1].rjust(widths[1]) + g + row[2].ljust(widths[2])
                if margin:
                    middle += g + row[3].rjust(widths[3])
            lines.append(head + middle + g + row[4].ljust(widths[4]) + g + row[5])
        return lines
    metric_w = max((len(r[0]) for r in rows), default=0)
    return ["  " + " ".join([row[0].ljust(metric_w), *(cell for i, cell in enumerate(row) if cell and i not in (0, 3))])
            for row in rows]


def _reason(check: Check) -> str:
    """The reason without its margin (the check's line has the value and the budget) and without the
    costliest ops."""
    return "; ".join(p for p in check.reason.split("; ") if not p.startswith(("margin ", "costliest on the target")))


def target_lines(report: TargetReport, width: int) -> list[RenderableType]:
    verdict_style = VERDICT_STYLE
    header = Text.assemble((clean(report.target), "bold"), f" on {clean(report.hardware_name)}: ",
                           (report.verdict.value, verdict_style[report.verdict]))
    rows, spans = [], []
    for check in report.checks:
        budget = "profile's list" if check.metric == "compat.dtypes" else check.budget
        span = check.value is None and check.metric.startswith("compat.")
        rows.append([clean(check.metric), "" if span else band_text(check), clean(budget),
                     f"{check.margin:+.0%}" if check.margin is not None else "", source_text(check, narrow=True),
                     check.verdict.value])
        spans.append(span)
    lines = _fit(rows, spans, width)
    out: list[RenderableType] = [header]
    for check, line in zip(report.checks, lines, strict=True):
        body, verdict = line[: len(line) - len(check.verdict.value)], check.verdict.value
        out.append(Text.assemble(body, (verdict, verdict_style[check.verdict])))
    # Why each check did not pass; checks that share a reason share its line. The costliest ops (in
    # the reason of a projected latency) are left to the reports, as the notes are.
    grouped: dict[str, list[str]] = {}
    for check in report.checks:
        if check.verdict is not Verdict.PASS and check.reason:
            grouped.setdefault(_reason(check), []).append(check.metric)
    for reason, metrics in grouped.items():
        out += _prose(f"• {', '.join(metrics)}: {reason}" if reason else f"• {', '.join(metrics)}", width, indent=2)
    if report.verdict is not Verdict.PASS and not grouped:  # a verdict a CI log must explain, whatever decided it
        for note in report.notes[:2]:
            out += _prose(f"• {note}", width, indent=2)
    if report.emulation is not None:  # what a pod's log needs: the limits applied, throttling, thread advice
        out += _prose(f"container: {container_text(report.emulation)}", width, indent=2)
        if report.emulation.threads_compared is not None and report.emulation.threads_compared.recommendation:
            out += _prose(report.emulation.threads_compared.recommendation, width, indent=2)
    return out


def container_text(emulation: Emulation) -> str:
    """'cpu 1, memory 256.0 MiB; 2 thread(s); cgroup v1; throttled 3 of 20 periods (15%, 12.0 ms)'."""
    periods, throttled, seconds = throttle_totals(emulation)
    throttling = (f"; throttled {throttled} of {periods} CFS periods while timed ({throttled / periods:.0%}, "
                  f"{format_duration(seconds)})" if periods else "; no CFS throttling counters")
    return describe_limits(emulation) + throttling


LEGEND = "source: host/target = measured here/there, projected [low–high], static = file"


def render_compact(report: Report, width: int) -> RenderableType:
    """The whole report in the compact layout, ``width`` columns wide."""
    parts: list[RenderableType] = []
    notes: list[str] = []
    for result in report.results:
        name = model_name(result)
        if result.error is not None:
            err = result.error
            parts += _prose(f"{result.model.path}: ERROR ({err.kind} in {err.phase}): {err.message}", width,
                            style="magenta")
            continue
        parts.extend(measurement_lines(result, width))  # its first line names the model
        for target in result.targets:
            parts.extend(target_lines(target, width))
            parts.extend(Text(line) for line in suggestion_lines(target, width))  # check --suggest
            if target.notes:
                notes.append(f"{target.target} {len(target.notes)}" if len(report.results) == 1
                             else f"{name}/{target.target} {len(target.notes)}")
    if notes:
        parts += _prose(f"notes: {', '.join(notes)} (text and costliest ops: reports, or {WIDE_FROM}+ columns)",
                        width, style="dim")
    if any(r.targets for r in report.results):
        emulated = any(c.provenance is Provenance.EMULATED for r in report.results for t in r.targets
                       for c in t.checks)
        parts += _prose(LEGEND + (", emulated = here, in the container's limits" if emulated else ""), width,
                        style="dim")
    if len(report.results) > 1:
        verdict_style = VERDICT_STYLE
        for result in report.results:
            name = model_name(result)
            if result.error is not None:
                parts.append(Text.assemble(f"{clean(name)}: ", ("ERROR", verdict_style[Verdict.ERROR]),
                                           f" ({result.error.kind})"))
            for target in result.targets:
                parts.append(Text.assemble(f"{clean(name)} on {clean(target.target)}: ",
                                           (target.verdict.value, verdict_style[target.verdict])))
    for note in report.notes:
        parts += _prose(f"note: {note}", width, style="dim")
    if any(r.targets for r in report.results):
        verdict_style = VERDICT_STYLE
        parts.append(Text.assemble("Overall: ", (report.verdict.value, verdict_style[report.verdict])))
    return Group(*parts)


def render_comparison_compact(comparison: Comparison, width: int, warnings: bool = True) -> RenderableType:
    """A compare, one line per metric: base -> new, change [interval], status."""
    status_style = STATUS_STYLE
    parts: list[RenderableType] = []
    if warnings:
        for warning in comparison.warnings:
            parts += _prose(f"warning: {warning}", width, style="yellow")
    for model in comparison.models:
        parts += _prose(f"Compared with {comparison.base_path}: {model.model}", width, style="bold")
        rows = [[c.metric, format_value(c.base, c.unit), format_value(c.new, c.unit), change_text(c),
                 interval_text(c), c.status.value] for c in model.changes]
        widths = [max((len(r[i]) for r in rows), default=0) for i in range(6)]
        aligned = 2 + sum(widths) + len("  ") + len(" → ") + len("  ") + len(" ") + len("  ") <= width
        for change, row in zip(model.changes, rows, strict=True):
            style = status_style[change.status]
            if aligned:
                parts.append(Text.assemble(
                    f"  {row[0].ljust(widths[0])}  {row[1].rjust(widths[1])} → {row[2].rjust(widths[2])}  "
                    f"{row[3].rjust(widths[3])} {row[4].ljust(widths[4])}  ", (row[5], style)))
                continue
            # Too wide to align: the row's pieces flow onto indented lines, none of them cut.
            lines = pack([row[0], f"{row[1]} → {row[2]}", f"{row[3]} {row[4]}", row[5]], width, first="  ",
                         indent=4, sep=" ")
            parts.extend(Text(line[: -len(row[5])]) + Text(row[5], style) if line.endswith(row[5]) else Text(line)
                         for line in lines)
        parts += _prose(f"({comparison.confidence:.0%} interval; {comparison.method}; a regression needs the "
                        "whole interval beyond the minimum effect on the worse side)", width, indent=2, style="dim")
        for change in model.changes:
            if change.status not in (ChangeStatus.UNCHANGED, ChangeStatus.NOT_TESTED):
                parts += _prose(f"• {change.metric}: {change.reason}", width, indent=2,
                                style=status_style[change.status])
        for note in model.notes:
            parts += _prose(f"• {note}", width, indent=2, style="dim")
    verdict = Text("REGRESSION", style="bold red") if comparison.regressed else Text("no regression", "bold green")
    parts.append(Text.assemble("Compare: ", verdict))
    return Group(*parts)
