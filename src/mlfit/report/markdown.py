"""The Markdown reporter: for pull-request comments and ``$GITHUB_STEP_SUMMARY``.

A summary table (one row per model and target) that reads at a glance, the full check
table and reasons folded in ``<details>``, and the regression compare when there is one.
"""

from __future__ import annotations

from mlfit.errors import printable
from mlfit.report.common import (
    CHANGE_ICON,
    PROVENANCE_LABEL,
    VERDICT_ICON,
    budget_text,
    change_text,
    cold_start_text,
    error_text,
    format_value,
    interval_text,
    margin_text,
    model_name,
    value_text,
)
from mlfit.report.styles import source_text
from mlfit.report.suggestions import markdown_lines as suggestion_lines
from mlfit.result import Comparison, Report, RunResult, Verdict

# ASCII punctuation that Markdown (CommonMark + GitHub's extensions) can read as markup: every
# one is backslash-escaped in text from a result (`$` opens GitHub math, `@` a mention, `#`,
# `+` and `>` a block inside a list item). '.', ',', '-', '/', ':', quotes and parentheses are
# left as they are: names and numbers are full of them, and without '[' they start nothing.
_MARKUP = frozenset("\\`*_{}[]<>#+!|~&$@")


def cell(text: object) -> str:
    """Text from a result made inert in Markdown, in a table cell, a list item or a heading: one
    printable line (no control or bidirectional characters), every markup character escaped, so
    a name cannot close a cell (`|`), open code (a backtick), raw HTML (`<`), an entity (`&`),
    a link or emphasis."""
    return "".join("\\" + ch if ch in _MARKUP else ch for ch in printable(text))


def code(text: object) -> str:
    """A name (model file, baseline path) shown in a cell or heading: escaped like any cell.

    Not a code span: inside one, backslashes do not escape, so no span holds any text safely
    (a backtick closes it, and in a table a pipe still splits the cell)."""
    return cell(text)


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines.extend("| " + " | ".join(row) + " |" for row in rows)
    return lines


def _verdict(verdict: Verdict) -> str:
    return f"{VERDICT_ICON[verdict]} {verdict.value}"


def _measurement_line(result: RunResult) -> str:
    m = result.measurement
    if m is None:
        return ""
    lat = m.latency
    parts = [
        f"{name} {format_value(getattr(lat, name), 's')}"
        for name in ("p50", "p95", "p99")
        if getattr(lat, name) is not None
    ]
    host = result.host
    where = f" on {cell(host.cpu_model)} ({host.cores_usable} usable cores)" if host else ""
    return (
        f"Measured{where}: latency {', '.join(parts)} (n={lat.n}, CV {lat.cv:.0%}); peak memory "
        f"{format_value(m.memory.peak_bytes, 'B')}; cold start {cell(cold_start_text(m.cold_start))}; "
        f"{format_value(m.throughput.single_stream_per_s, '/s')} single stream; {cell(m.runtime)} "
        f"{cell(m.runtime_version)}, {m.threads} thread(s)."
    )


def _summary_rows(report: Report) -> list[list[str]]:
    rows: list[list[str]] = []
    for result in report.results:
        name = code(model_name(result))
        if result.error is not None:
            rows.append([name, "-", _verdict(Verdict.ERROR), cell(error_text(result))])
            continue
        if not result.targets:
            rows.append([name, "(no targets)", _verdict(result.verdict), "measured only"])
        for target in result.targets:
            bad = [c for c in target.checks if c.verdict is not Verdict.PASS]
            detail = "; ".join(f"{c.metric} {c.verdict.value.lower()}" for c in bad) or "all budgets met"
            rows.append(
                [
                    name,
                    f"{cell(target.target)} ({cell(target.hardware_name)})",
                    _verdict(target.verdict),
                    cell(detail),
                ]
            )
    return rows


def _result_details(result: RunResult) -> list[str]:
    lines = [f"#### {code(model_name(result))}: {_verdict(result.verdict)}", ""]
    if result.error is not None:
        return [
            *lines,
            f"**Error** ({cell(result.error.kind)} in {cell(result.error.phase)}): "
            f"{cell(result.error.message)}" + (f" — {cell(result.error.hint)}" if result.error.hint else ""),
            "",
        ]
    measured = _measurement_line(result)
    if measured:
        lines.extend([measured, ""])
    if result.measurement is not None:
        lines.extend(f"> ⚠️ {cell(w)}" for w in result.measurement.warnings)
        if result.measurement.warnings:
            lines.append("")
    rows = []
    for target in result.targets:
        for check in target.checks:
            rows.append(
                [
                    cell(target.target),
                    cell(check.metric),
                    cell(budget_text(check)),
                    cell(value_text(check)),
                    margin_text(check),
                    source_text(check, PROVENANCE_LABEL),
                    _verdict(check.verdict),
                    cell(check.reason),
                ]
            )
    if rows:
        lines.extend(
            _table(["target", "check", "budget", "value", "margin", "source", "verdict", "reason"], rows)
        )
        lines.append("")
    for target in result.targets:  # check --suggest
        lines.extend(suggestion_lines(target))
    return lines + _per_op_lines(result) + _notes_by_target(result)


def _per_op_lines(result: RunResult) -> list[str]:
    """Each target's projected time per op type: the projection's own breakdown, which adds up to
    its median (the figures the check table shows come from the same projection)."""
    from mlfit.catalog.units import format_duration

    lines: list[str] = []
    for target in result.targets:
        p = target.projection
        if p is None or not p.details.per_op:
            continue
        p50 = p.latency.get("p50")
        lines.append(f"Projected time per op type on {cell(target.target)} ({cell(target.hardware_name)}; "
                     f"{cell(p.estimator or p.method)}"
                     + (f"; they add up to the projected p50, {format_duration(p50.value)}" if p50 else "") + "):")
        lines.append("")
        rows = [[code(o.op), format_duration(o.seconds), f"{o.share:.0%}"]
                for o in p.details.per_op[:12] if o.seconds > 0]
        lines.extend(_table(["op", "time per inference", "share"], rows))
        lines.append("")
    return lines


def _notes_by_target(result: RunResult) -> list[str]:
    """Each target's notes under its name (one unlabelled list mixed the targets' notes, issue 23); a
    note every target carries is said once, first."""
    targets = result.targets
    shared = [n for n in targets[0].notes if all(n in t.notes for t in targets[1:])] if len(targets) > 1 else []
    lines: list[str] = []
    if shared:
        lines.extend(["**Notes for every target**", "", *(f"- {cell(n)}" for n in shared), ""])
    for target in targets:
        own = [n for n in target.notes if n not in shared]
        if own:
            lines.extend([f"**Notes for {code(target.target)}**", "", *(f"- {cell(n)}" for n in own), ""])
    return lines


def _comparison(comparison: Comparison) -> list[str]:
    regressed = comparison.regressed
    head = "🔻 regression" if regressed else "no regression"
    lines = [
        f"### Compared with {code(comparison.base_path)}: {head}",
        "",
        f"Method: {cell(comparison.method)}. A regression is a change beyond the minimum effect whose whole "
        "confidence interval is on the worse side.",
        "",
    ]
    lines.extend(f"> ⚠️ {cell(w)}" for w in comparison.warnings)
    if comparison.warnings:
        lines.append("")
    rows = []
    for model in comparison.models:
        for change in model.changes:
            rows.append(
                [
                    code(model.model.rsplit("/", 1)[-1]),
                    cell(change.metric),
                    cell(format_value(change.base, change.unit)),
                    cell(format_value(change.new, change.unit)),
                    change_text(change),
                    interval_text(change),
                    f"{CHANGE_ICON[change.status]} {change.status.value}",
                    cell(change.reason),
                ]
            )
    lines.extend(
        _table(
            ["model", "metric", "base", "new", "change", f"{comparison.confidence:.0%} CI", "status", "why"],
            rows,
        )
    )
    lines.append("")
    for model in comparison.models:
        lines.extend(f"- {code(model.model.rsplit('/', 1)[-1])}: {cell(n)}" for n in model.notes)
    return lines


def render_markdown(report: Report) -> str:
    """The whole report as GitHub-flavoured Markdown."""
    verdict = report.verdict
    regressed = report.comparison is not None and report.comparison.regressed
    title = f"## mlfit: {_verdict(verdict)}" + (" · 🔻 regression" if regressed else "")
    lines = [title, ""]
    count = len(report.results)
    lines.append(
        f"{count} model{'s' if count != 1 else ''} · mlfit {cell(report.mlfit_version)} · "
        f"{cell(report.created)}" + ("" if report.complete else " · **incomplete run**")
    )
    lines.append("")
    lines.extend(_table(["model", "target", "verdict", "detail"], _summary_rows(report)))
    lines.append("")
    if report.comparison is not None:
        lines.extend(_comparison(report.comparison))
        lines.append("")
    lines.extend(["<details><summary>Every check, with its source and reason</summary>", ""])
    for result in report.results:
        lines.extend(_result_details(result))
    lines.extend(
        [
            "Sources: *measured (host)* = on the machine that ran mlfit, not the target; *projected* = "
            "carried to the target's hardware, with an [optimistic – conservative] band; *static* = "
            "read from the model file.",
            "",
            "</details>",
            "",
        ]
    )
    lines.extend(f"- {cell(n)}" for n in report.notes)
    return "\n".join(lines).rstrip() + "\n"
