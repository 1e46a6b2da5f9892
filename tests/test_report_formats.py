"""Every reporter on every shape of result: formats, escaping, JUnit mapping, self-contained HTML."""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from mlfit.compare import compare_reports, with_comparison
from mlfit.errors import ConfigError
from mlfit.report.html import find_costliest, render_html
from mlfit.report.junit import render_junit
from mlfit.report.markdown import cell, render_markdown
from mlfit.report.outputs import OutputFormat, parse_outputs, renderer, write_outputs
from mlfit.result import Report, Verdict
from reportdata import RICH_ANALYSIS, RICH_EXTRA, failed_result, report, run_result


def rich_report() -> Report:
    return report(run_result(extra=RICH_EXTRA, analysis=RICH_ANALYSIS), failed_result())


def compared_report() -> Report:
    base = report(run_result(0.004))
    slower = run_result(0.007, seed=3)  # a new version of the file: the same file measured twice never regresses
    new = report(slower.model_copy(update={"model": slower.model.model_copy(update={"sha256": "f" * 64})}))
    return with_comparison(new, compare_reports(base, new, "base.json"))


SHAPES = {
    "rich": rich_report,
    "plain": lambda: report(run_result()),
    "profile-only": lambda: report(run_result(targets=False)),
    "failed-only": lambda: report(failed_result()),
    "compared": compared_report,
}


@pytest.mark.parametrize("fmt", list(OutputFormat))
@pytest.mark.parametrize("shape", sorted(SHAPES))
def test_every_format_renders_every_shape(fmt: OutputFormat, shape: str) -> None:
    out = renderer(fmt)(SHAPES[shape]())
    text = out.decode() if isinstance(out, bytes) else out
    assert text.strip()
    if fmt is OutputFormat.JSON:
        assert Report.model_validate_json(text) == SHAPES[shape]()
    elif fmt is OutputFormat.JUNIT:
        ET.fromstring(text.encode())
    elif fmt is OutputFormat.HTML:
        assert text.startswith("<!DOCTYPE html>") and text.rstrip().endswith("</html>")


def test_output_format_names_and_aliases() -> None:
    parsed = parse_outputs(["md=-", "XML=/tmp/x.xml", "html=/tmp/r.html"], "/tmp/r.json")
    assert [f for f, _ in parsed] == [OutputFormat.MARKDOWN, OutputFormat.JUNIT, OutputFormat.HTML,
                                      OutputFormat.JSON]
    with pytest.raises(ConfigError, match="unknown format 'pdf'"):
        parse_outputs(["pdf=x.pdf"], None)
    with pytest.raises(ConfigError, match="given twice"):
        parse_outputs(["html=/tmp/a.html", "markdown=/tmp/a.html"], None)
    with pytest.raises(ConfigError, match="only one format can go to stdout"):
        parse_outputs(["html=-", "markdown=-"], None)


def test_write_outputs_writes_every_file_and_leaves_no_temporary_files(tmp_path: Path) -> None:
    paths = {fmt: tmp_path / f"r.{fmt.value}" for fmt in OutputFormat}
    (tmp_path / "r.html").write_text("old report")
    write_outputs(rich_report(), [(fmt, str(p)) for fmt, p in paths.items()])
    assert all(p.stat().st_size > 0 for p in paths.values())
    assert "old report" not in (tmp_path / "r.html").read_text()
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(p.name for p in paths.values())


# --- Markdown -----------------------------------------------------------------------------------


def test_markdown_tables_survive_pipes_and_markup() -> None:
    text = render_markdown(rich_report())
    assert "<script>" not in text
    for line in text.splitlines():
        if line.startswith("|"):
            unescaped = re.sub(r"\\\|", "", line)
            assert unescaped.count("|") in (5, 9), line  # summary (4 columns) or checks (8 columns)
    assert "## mlfit: 💥 ERROR" in text
    assert "❌ FAIL" in text and "⚠️ INCONCLUSIVE" in text
    assert "[" in text and "–" in text  # the projected band
    assert cell("a|b\nc") == "a\\|b c"


def test_markdown_shows_the_comparison() -> None:
    text = render_markdown(compared_report())
    assert "### Compared with base.json: " in text  # names are escaped text, never code spans
    assert "latency.p50" in text and "🔻 regression" in text


# --- JUnit --------------------------------------------------------------------------------------


def test_junit_maps_verdicts_to_failure_skipped_and_error() -> None:
    junitparser = pytest.importorskip("junitparser", reason="junitparser is in the dev extra")
    rep = rich_report()
    xml = junitparser.JUnitXml.fromstring(render_junit(rep))
    cases = {(suite.name, case.name): case for suite in xml for case in suite}
    checks = [(t.target, c) for t in rep.results[0].targets for c in t.checks]
    assert len(cases) == len(checks) + 1  # one per target and budget, one for the failed model
    outcome = {Verdict.FAIL: junitparser.Failure, Verdict.INCONCLUSIVE: junitparser.Skipped,
               Verdict.ERROR: junitparser.Error}
    for target, check in checks:
        shown = target.replace("\x07", "")  # XML cannot carry the bell character
        (case,) = [c for (suite, _), c in cases.items() if suite.endswith(f"on {shown}") and
                   c.name.startswith(check.metric + " ")]
        results = case.result
        if check.verdict is Verdict.PASS:
            assert case.is_passed
        else:
            assert len(results) == 1 and isinstance(results[0], outcome[check.verdict])
            if check.reason:
                assert results[0].message == check.reason.replace("\x07", "")
    error_cases = [c for (suite, _), c in cases.items() if "broken.onnx" in suite]
    assert len(error_cases) == 1 and isinstance(error_cases[0].result[0], junitparser.Error)
    assert xml.failures == 1 and xml.skipped == 1 and xml.errors == 2 and xml.tests == len(cases)


def test_junit_has_the_ant_schema_shape() -> None:
    """Attributes and order that the widely used JUnit XSD (Ant/Jenkins) requires."""
    root = ET.fromstring(render_junit(compared_report()).encode())
    assert root.tag == "testsuites"
    for suite in root:
        assert suite.tag == "testsuite"
        for attribute in ("name", "tests", "failures", "errors", "skipped", "time", "timestamp", "hostname"):
            assert suite.get(attribute) is not None, attribute
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d", suite.get("timestamp", ""))
        children = [child.tag for child in suite]
        assert children == sorted(children, key=lambda t: ["properties", "testcase"].index(t))
        assert int(suite.get("tests", "-1")) == len(suite.findall("testcase"))
        for case in suite.findall("testcase"):
            assert case.get("classname") and case.get("name") and case.get("time")
            kinds = [child.tag for child in case]
            assert all(k in ("failure", "error", "skipped", "system-out") for k in kinds)
            assert kinds.count("system-out") <= 1 and len(kinds) - kinds.count("system-out") <= 1
    compare_suite = next(s for s in root if s.get("name", "").startswith("mlfit compare"))
    assert int(compare_suite.get("failures", "0")) >= 1


def test_junit_drops_characters_xml_forbids() -> None:
    text = render_junit(rich_report())
    assert "\x07" not in text
    ET.fromstring(text.encode())


# --- HTML ---------------------------------------------------------------------------------------


def test_html_is_self_contained() -> None:
    text = render_html(rich_report())
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", text, re.I)
    assert "@import" not in text and not re.search(r"url\(\s*['\"]?https?:", text)
    assert "<script" not in text.lower()  # no script at all, and hostile text is escaped
    assert "&lt;script&gt;alert" in text


def test_html_draws_every_section_present() -> None:
    text = render_html(rich_report())
    for title in ("Latency histogram", "Latency CDF", "Peak resident memory per phase", "Memory over time",
                  "Budget use", "Batch sweep", "Costliest ops", "Environment", "Static facts"):
        assert title in text, title
    assert text.count("<svg") >= 8
    assert "edge p95 ≤ 80.00 ms" in text  # a budget drawn as a line, with its label
    assert "roofline per node" in text  # projection method shown
    assert "Could not measure the model" in text


def test_html_lists_load_scenarios_when_run() -> None:
    scenario = {"offline": {"throughput_per_s": 812.0, "mode": "batched", "batch_size": 8, "callers": 1}}
    text = render_html(report(run_result(extra={"scenario": scenario})))
    assert "Load scenarios" in text and "offline: 812.0/s (batched, batch 8, 1 caller(s))" in text


def test_html_handles_absent_extras() -> None:
    text = render_html(report(run_result(targets=False)))
    assert "Batch sweep" not in text and "Costliest ops" not in text and "Memory over time" not in text
    assert "Load scenarios" not in text
    assert "Latency histogram" in text


def test_costliest_tables_are_found_wherever_a_helper_put_them() -> None:
    nested = {"projection": {"rpi4": {"costliest_ops": {"Conv": 0.7, "Gemm": 0.2}}}}
    # The measurement has no open dict since schema 8: the analysis is the one place such tables live.
    found = find_costliest(run_result(analysis=nested))
    assert [path for path, _ in found] == ["analysis.projection.rpi4.costliest_ops"]


def test_html_shows_the_comparison_with_its_intervals() -> None:
    text = render_html(compared_report())
    assert "Change against the baseline" in text and "regression" in text


def test_json_round_trips_through_load_report(tmp_path: Path) -> None:
    from mlfit.resultfile import load_report

    rep = compared_report()
    path = tmp_path / "r.json"
    write_outputs(rep, [(OutputFormat.JSON, str(path))])
    assert load_report(path) == rep
    assert json.loads(path.read_text())["comparison"]["models"][0]["changes"][0]["metric"] == "latency.p50"


def test_registry_names_every_format_once_and_aliases_do_not_clash() -> None:
    from mlfit.report.registry import REPORTERS, parse_format

    assert list(REPORTERS) == list(OutputFormat)  # exhaustive, in the enum's order
    names = [f.value for f in REPORTERS] + [a for r in REPORTERS.values() for a in r.aliases]
    assert len(names) == len(set(names))
    for fmt, rep in REPORTERS.items():
        assert rep.name is fmt
        for alias in rep.aliases:
            assert parse_format(alias.upper(), f"{alias}=x") is fmt
