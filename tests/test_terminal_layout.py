"""The terminal layouts: compact below 120 columns (every CI log: a pipe is 80 wide), wide tables from
120; one line per check, no line wider than the console, no number cut anywhere."""

from __future__ import annotations

import io
import re
from pathlib import Path

import pytest
from rich.console import Console

from conftest import run_cli
from mlfit.compare import compare_reports
from mlfit.report.common import format_value
from mlfit.report.compact import band_text, pack
from mlfit.report.comparison import render_comparison
from mlfit.report.terminal import render_terminal
from mlfit.result import Report
from reportdata import failed_result, report, run_result


def printed(renderable: object, width: int) -> list[str]:
    buffer = io.StringIO()
    Console(file=buffer, width=width, no_color=True, force_terminal=False, highlight=False,
            emoji=False).print(renderable)
    return buffer.getvalue().splitlines()


@pytest.mark.slow
def test_one_model_two_targets_fit_80_columns_in_45_lines(cnn_model: Path, tmp_path: Path) -> None:
    """The done bar of issue 14, as the issue states it (default timing, the batch from the targets'
    profiles): a real run, stdout and stderr together, as a CI log shows it."""
    out = tmp_path / "r.json"
    run = run_cli("check", cnn_model, "--target", "edge", "--target", "weak-cpu", "--json", out,
                    env={"COLUMNS": "80"})
    assert run.code in (0, 1), run.output
    lines = run.output.splitlines()
    assert max(len(line) for line in lines) <= 80, [line for line in lines if len(line) > 80]
    assert len(lines) <= 45, run.output
    assert "…" not in run.output and "..." not in run.output
    assert run.stderr.count("\n") <= 3, run.stderr  # a line per long phase, one warning
    result = Report.model_validate_json(out.read_text()).results[0]
    for target in result.targets:
        block = run.stdout.split(f"{target.target} on ", 1)[1].splitlines()[1:]
        for check in target.checks:  # one line each: metric, value with its band, budget, source, verdict
            row = next(line for line in block if line.strip().startswith(check.metric + " "))
            assert row.rstrip().endswith(check.verdict.value), row
            assert check.value is None or band_text(check) in row, (band_text(check), row)


def test_compact_layout_is_one_line_per_check_within_the_width() -> None:
    doc = report(run_result(), run_result(path="/models/other-model-with-a-long-name.onnx"))
    for width in (80, 100, 119):
        lines = printed(render_terminal(doc), width)
        assert max(map(len, lines)) <= width
        assert not any("┃" in line for line in lines)  # no table
        for result in doc.results:
            for target in result.targets:
                for check in target.checks:
                    rows = [line for line in lines if line.strip().startswith(check.metric + " ")]
                    assert rows, check.metric
                    if check.value is not None:  # the whole figure, with its band, on the check's line
                        assert any(band_text(check) in row for row in rows), (band_text(check), rows)


def test_wide_layout_from_120_columns_keeps_every_figure_whole() -> None:
    doc = report(run_result())
    lines = printed(render_terminal(doc), 120)
    text = "\n".join(lines)
    assert "┃ check" in text and max(map(len, lines)) <= 120 and "…" not in text
    for check in doc.results[0].targets[0].checks:
        if check.value is not None:
            assert format_value(check.value, check.unit) in text


def test_compare_never_truncates_a_number() -> None:
    """`compare` used to print '107.2…' in an 80-column log."""
    base = report(run_result(median_s=0.1072, seed=1))
    new = report(run_result(median_s=0.1391, seed=2))
    comparison = compare_reports(base, new, "/runs/base-run-with-a-long-name.json")
    for width in (60, 80, 119, 160):
        text = "\n".join(printed(render_comparison(comparison), width))
        assert "…" not in text and "..." not in text
        for change in comparison.models[0].changes:
            for value in (change.base, change.new):
                figure = format_value(value, change.unit)
                assert figure in text or figure.replace(" ", "\n") in text, (width, figure)


def test_pack_never_splits_an_item() -> None:
    items = ["p50 107.25 ms", "p95 1.21 s", "max 12345.67 ms", "a-very-long-item-that-does-not-fit-anywhere" * 2]
    lines = pack(items, 30, first="latency: ", indent=4)
    assert all(item in "\n".join(lines) for item in items)
    assert all(len(line) <= 30 for line in lines[:-1])


def test_compact_layout_prints_no_control_character_from_a_file() -> None:
    """Names, reasons and messages come from model and profile files: no ESC sequence, bell or
    carriage return reaches the log."""
    hostile = run_result()
    target = hostile.targets[0].model_copy(update={"target": "edge\x1b[2J\x1b]0;pwned\x07", "notes": ["a\rb"]})
    hostile = hostile.model_copy(update={"targets": [target, *hostile.targets[1:]]})
    text = "\n".join(printed(render_terminal(report(hostile, failed_result())), 80))
    assert not re.search(r"[\x00-\x09\x0b-\x1f\x7f-\x9f]", text), repr(text)
    assert "edge?[2J?]0;pwned?" in text


def test_a_verdict_whose_checks_give_no_reason_prints_its_notes_at_80_columns() -> None:
    """A CI log must say why a target is not PASS (issue 23): where no check carries the reason, the
    target's first notes do."""
    from mlfit.result import Verdict

    result = run_result()
    target = result.targets[0]
    quiet = [c.model_copy(update={"reason": ""}) for c in target.checks]
    why = "measured under the container's limits: the worker could not confirm its cgroup"
    target = target.model_copy(update={"verdict": Verdict.INCONCLUSIVE, "checks": quiet, "notes": [why]})
    text = "\n".join(printed(render_terminal(report(result.model_copy(update={"targets": [target]}))), 80))
    assert "the worker could not confirm its cgroup" in text.replace("\n    ", " "), text
