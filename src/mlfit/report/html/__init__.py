"""The HTML reporter: one self-contained file a release manager can attach to a sign-off.

Per model: the verdict table per target, a latency histogram and CDF with each budget drawn
as a line, memory per phase, measured and projected figures with their bands, the costliest
ops or the op histogram, a batch sweep when one was measured, and the environment. Charts are
inline SVG (:mod:`mlfit.report.svg`); there is no script and nothing is fetched, so the file
opens offline. Every text from the result is escaped.
"""

from __future__ import annotations

from mlfit.analysis.project.costliest import find_costliest
from mlfit.report import svg
from mlfit.report.common import error_text, model_name
from mlfit.report.html.environment import _comparison, _environment
from mlfit.report.html.measurement import _budget_rows, _latency_charts, _latency_table, _memory_chart
from mlfit.report.html.ops import _analysis_table, _batch_sweep, _load_scenarios, _ops_section
from mlfit.report.html.page import _template, badge, e, table
from mlfit.report.html.verdicts import _notes, _projection_table, _verdict_table
from mlfit.report.suggestions import html_section as suggestions_html
from mlfit.result import Report, RunResult, Verdict

__all__ = ["find_costliest", "render_html"]


def _result_section(result: RunResult) -> str:
    verdict = badge(result.verdict.value, result.verdict.value, True)
    parts = [f'<section class="model"><h2>{e(model_name(result))} {verdict}</h2>']
    if result.error is not None:
        parts.append(
            f'<div class="err"><strong>Could not measure the model.</strong> {e(error_text(result))}</div>'
        )
    if result.targets:
        parts.append("<h3>Verdicts per target</h3>" + _verdict_table(result) + _notes(result))
        parts.extend(suggestions_html(t) for t in result.targets)  # check --suggest
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
