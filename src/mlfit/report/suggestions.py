"""The "what would fit" section (``check --suggest``): one row per variant tried, best first, in the
terminal (compact: one line per variant, wrapped at the width), Markdown and HTML. Pure functions
of a target report; the texts come from the result (already sanitized for the terminal by the
caller, escaped here for Markdown and HTML)."""

from __future__ import annotations

import textwrap

from mlfit.records import Suggestion, VariantCheck
from mlfit.report.common import format_value
from mlfit.result import TargetReport, Verdict

# Best first: what to do, then what fits with a caveat, then what was learnt.
_ORDER = ("recommended", "changes-outputs", "inconclusive", "does-not-fit", "failed", "not-tried")
LABEL = {"recommended": "recommended", "changes-outputs": "fits*", "inconclusive": "inconclusive",
         "does-not-fit": "no fit", "failed": "failed", "not-tried": "not tried"}
# Statuses whose reason the terminal prints under the row (the others say it in their label).
_EXPLAINED = ("changes-outputs", "inconclusive", "does-not-fit", "failed")


def headline_metric(report: TargetReport) -> str:
    """The budget the suggestions are about: the original's first check that did not pass."""
    budgets = [c for c in report.checks if not c.metric.startswith("compat.")]
    for check in budgets:
        if check.verdict is not Verdict.PASS:
            return check.metric
    latency = [c.metric for c in budgets if c.metric.startswith("latency.")]
    return latency[0] if latency else (budgets[0].metric if budgets else "latency.p95")


def _figure(check: VariantCheck | None) -> float:
    return check.value if check is not None and check.value is not None else float("inf")


def ordered(report: TargetReport) -> list[tuple[Suggestion, VariantCheck | None]]:
    """Suggestions best first (by status, then by the headline figure), each with its headline check."""
    metric = headline_metric(report)
    rows = [(s, next((c for c in s.checks if c.metric == metric), None)) for s in report.suggestions]
    return sorted(rows, key=lambda row: (_ORDER.index(row[0].status) if row[0].status in _ORDER else len(_ORDER),
                                         _figure(row[1])))


def figure_text(check: VariantCheck | None) -> str:
    if check is None or check.value is None:
        return ""
    text = format_value(check.value, check.unit)
    if check.lower is not None and check.upper is not None and check.lower != check.upper:
        text += f" [{format_value(check.lower, check.unit)}–{format_value(check.upper, check.unit)}]"
    if check.margin is not None:
        text += f" {check.margin:+.0%}"
    return text


def agreement_text(suggestion: Suggestion) -> str:
    a = suggestion.agreement
    if a is None:
        return ""
    if a.same_model:
        return "same model"
    head = f"top-1 {a.top1:.0%}" if a.top1 is not None else f"cos {a.cosine:.4f}"
    return f"{head}, max diff {a.max_abs:.2g}"


def header(report: TargetReport) -> str:
    search = report.suggest_search
    head = f"What would fit on {report.target} ({headline_metric(report)})"
    if search is None:
        return head
    guard = f"guard: top-1 (classifiers) or cosine >= {search.min_agreement:g}"
    where = f" on {search.inputs}" if search.inputs else ""
    left = f", {search.not_tried} not tried" if search.not_tried else ""
    left += f" ({search.note})" if search.note else ""
    return f"{head}: searched {search.seconds:.0f} s of {search.budget_s:.0f} s{left}; {guard}{where}"


def text_lines(report: TargetReport, width: int) -> list[str]:
    """The section as plain lines no wider than ``width`` (words never split): the header, then one
    entry per variant ("status  variant  figure [band] margin  agreement", its reason below)."""
    if not report.suggestions and report.suggest_search is None:
        return []
    wrap = textwrap.TextWrapper(width=max(40, width), subsequent_indent="    ", break_long_words=False,
                                break_on_hyphens=False)
    lines = wrap.wrap(header(report))
    rows = ordered(report)
    skipped = [s.variant for s, _ in rows if s.status == "not-tried"]
    tried = [row for row in rows if row[0].status != "not-tried"]
    column = min(24, max([12, *(len(s.variant) for s, _ in tried)]))  # combinations are longer
    for suggestion, check in tried:
        label = LABEL.get(suggestion.status, suggestion.status)
        parts = [f"{label:<12} {suggestion.variant:<{column}}", figure_text(check), agreement_text(suggestion)]
        lines += wrap.wrap("  " + "  ".join(p for p in parts if p))
        if suggestion.reason and suggestion.status in _EXPLAINED:
            lines += wrap.wrap("    " + suggestion.reason)
    if skipped:
        lines += wrap.wrap(f"  not tried (the --suggest-time budget ran out): {', '.join(skipped)}")
    if report.suggest_search is not None and not report.suggestions:
        lines += wrap.wrap("  no variant applies to this model and target")
    return lines


def _md(text: str) -> str:
    return text.replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ").replace("<", "&lt;")


def markdown_lines(report: TargetReport) -> list[str]:
    if not report.suggestions and report.suggest_search is None:
        return []
    lines = [f"**{_md(header(report))}**", "", "| variant | status | figure | agreement | reason | reproduce |",
             "|---|---|---|---|---|---|"]
    for suggestion, check in ordered(report):
        lines.append(f"| {_md(suggestion.variant)} | {LABEL.get(suggestion.status, suggestion.status)} | "
                     f"{_md(figure_text(check))} | {_md(agreement_text(suggestion))} | {_md(suggestion.reason)} | "
                     f"{_md(suggestion.reproduce)} |")
    return [*lines, ""]


def html_section(report: TargetReport) -> str:
    from mlfit.report.html.page import e, table

    if not report.suggestions and report.suggest_search is None:
        return ""
    rows = [[e(s.variant), e(LABEL.get(s.status, s.status)), e(figure_text(c)), e(agreement_text(s)), e(s.reason),
             f"<code>{e(s.reproduce)}</code>"] for s, c in ordered(report)]
    return (f"<h4>{e(header(report))}</h4>"
            + table(["variant", "status", "figure", "agreement", "reason", "reproduce"], rows))
