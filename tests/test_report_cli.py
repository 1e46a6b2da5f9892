"""One real `mlfit check` writing every format at once; `mlfit report` re-rendering; writability first."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from conftest import FAST, assert_no_traceback, run_cli
from mlfit.report.outputs import OutputFormat
from mlfit.result import Report, Verdict
from reportdata import report, run_result

EXIT_FOR = {Verdict.PASS: 0, Verdict.INCONCLUSIVE: 0, Verdict.FAIL: 1, Verdict.ERROR: 3}


@pytest.fixture(scope="module")
def all_formats(tmp_path_factory: pytest.TempPathFactory, small_cnn_model: Path) -> tuple[Path, object]:
    out = tmp_path_factory.mktemp("reports")
    args = [f"--output={fmt.value}={out / ('r.' + fmt.value)}" for fmt in OutputFormat if fmt is not OutputFormat.JSON]
    run = run_cli("check", small_cnn_model, "--target", "edge", "--target", "weak-cpu", *FAST, *args,
                    "--json", out / "r.json")
    return out, run


def test_one_check_writes_every_format(all_formats: tuple[Path, object]) -> None:
    out, run = all_formats
    assert_no_traceback(run)  # type: ignore[arg-type]
    stored = Report.model_validate_json((out / "r.json").read_text())
    assert run.code == EXIT_FOR[stored.verdict], run.output  # type: ignore[attr-defined]
    checks = [c for t in stored.results[0].targets for c in t.checks]
    assert {t.target for t in stored.results[0].targets} == {"edge", "weak-cpu"}

    markdown = (out / "r.markdown").read_text()
    assert "| target |" in markdown.replace("| model | target |", "| target |")
    assert all(c.metric.replace("_", "\\_") in markdown for c in checks)

    junit = ET.parse(out / "r.junit").getroot()
    assert int(junit.get("tests", "0")) == len(checks)
    assert len(junit.findall("./testsuite/testcase")) == len(checks)

    html = (out / "r.html").read_text()
    assert "Latency histogram" in html and "Latency CDF" in html and html.count("<svg") >= 4
    assert "Verdicts per target" in html

    text = (out / "r.text").read_text()
    assert "Verdicts for" in text and "\x1b[" not in text  # plain text, no colour codes
    assert not [p.name for p in out.iterdir() if p.name.startswith(".")]  # no temporary files left


def test_report_renders_a_stored_result_again(all_formats: tuple[Path, object], tmp_path: Path) -> None:
    out, _ = all_formats
    run = run_cli("report", out / "r.json", "--output", f"html={tmp_path / 'again.html'}", "-o", "markdown=-")
    assert run.code == 0, run.output
    assert run.stdout.startswith("## mlfit:")
    again = (tmp_path / "again.html").read_text()
    assert "Latency histogram" in again


def test_report_exit_code_follows_the_stored_verdict(tmp_path: Path) -> None:
    failing = tmp_path / "fail.json"
    result = run_result()
    edge_only = result.model_copy(update={"targets": result.targets[:1]})  # memory.peak FAILs there
    assert edge_only.verdict is Verdict.FAIL
    failing.write_text(report(edge_only).model_dump_json())
    assert run_cli("report", failing, "-o", f"junit={tmp_path / 'j.xml'}").code == 0
    assert run_cli("report", failing, "--exit-code", "-o", f"junit={tmp_path / 'j.xml'}").code == 1


@pytest.mark.parametrize("content, expected", [
    ("{not json", "not a readable mlfit result"),
    ('{"schema_version": 99}', "newer than this mlfit reads"),
    ('{"schema_version": 1, "results": 3}', "invalid mlfit result"),
])
def test_report_refuses_bad_files_in_one_line(tmp_path: Path, content: str, expected: str) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text(content)
    run = run_cli("report", bad)
    assert run.code == 2 and expected in run.stderr
    assert_no_traceback(run)
    assert len(run.stderr.strip().splitlines()) == 1


def test_unwritable_output_fails_before_measuring_and_keeps_old_reports(tmp_path: Path, tiny_model: Path) -> None:
    keep = tmp_path / "r.json"
    keep.write_text("previous report")
    run = run_cli("check", tiny_model, "--target", "edge", *FAST, "--json", keep,
                    "--output", f"html={tmp_path / 'missing' / 'r.html'}")
    assert run.code == 2
    assert "missing" in run.stderr and "does not exist" in run.stderr
    assert "measuring" not in run.stderr.lower()
    assert keep.read_text() == "previous report"
    assert_no_traceback(run)


@pytest.mark.skipif(os.geteuid() == 0, reason="root can write anywhere: a read-only folder cannot be tested")
def test_read_only_folder_is_refused_before_measuring(tmp_path: Path, tiny_model: Path) -> None:
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    run = run_cli("check", tiny_model, "--target", "edge", *FAST, "-o", f"junit={locked / 'j.xml'}")
    assert run.code == 2 and "not writable" in run.stderr


def test_schema_command_prints_the_report_schema() -> None:
    run = run_cli("schema", "--kind", "report")
    assert run.code == 0
    assert json.loads(run.stdout) == Report.model_json_schema()


def test_interrupted_run_replaces_the_previous_reports_whole(tmp_path: Path, tiny_model: Path) -> None:
    """Ctrl-C writes a partial report marked incomplete (issue 6), each file replaced atomically:
    never half a document, never a temporary file left behind."""
    previous = {fmt: tmp_path / f"r.{fmt}" for fmt in ("json", "html", "junit")}
    for path in previous.values():
        path.write_text("previous report")
    env = {**os.environ, "COLUMNS": "200"}
    outputs = [f"--output={fmt}={path}" for fmt, path in previous.items()]
    proc = subprocess.Popen([sys.executable, "-m", "mlfit", "check", str(tiny_model), "--target", "edge",
                             "--min-time", "30", "--max-time", "60", *outputs],
                            stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True, env=env)
    assert proc.stderr is not None
    deadline = time.monotonic() + 120
    for line in proc.stderr:  # plain progress lines on a pipe: wait until the timed loop runs
        if "measuring" in line or time.monotonic() > deadline:
            break
    time.sleep(0.5)
    proc.send_signal(signal.SIGINT)
    rest = proc.stderr.read()
    assert proc.wait(timeout=60) == 130, rest
    assert "Traceback" not in rest
    assert all(path.read_text() != "previous report" for path in previous.values())
    report = json.loads(previous["json"].read_text())
    assert report["complete"] is False and report["results"][0]["error"]["kind"] == "interrupted"
    assert previous["html"].read_text().rstrip().endswith("</html>")
    ET.fromstring(previous["junit"].read_text())  # a whole XML document
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(p.name for p in previous.values())
