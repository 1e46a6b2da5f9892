"""Many models in one check: folders, several paths, one combined report, errors that stay local."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from conftest import FAST, assert_no_traceback, run_cli
from mlfit.errors import ConfigError
from mlfit.multi import expand_models


@pytest.fixture(scope="module")
def model_folder(tmp_path_factory: pytest.TempPathFactory, tiny_model: Path, small_cnn_model: Path) -> Path:
    folder = tmp_path_factory.mktemp("zoo")
    shutil.copy(tiny_model, folder / "a_tiny.onnx")
    shutil.copy(small_cnn_model, folder / "b_cnn.onnx")
    (folder / "c_broken.onnx").write_bytes(b"not a model at all")
    (folder / "README.txt").write_text("models for the release\n")
    (folder / ".hidden.onnx").write_bytes(b"ignored")
    return folder


def test_expand_folder_finds_models_and_notes_what_it_skipped(model_folder: Path) -> None:
    models, notes = expand_models([model_folder])
    assert [m.name for m in models] == ["a_tiny.onnx", "b_cnn.onnx", "c_broken.onnx"]
    assert any("README.txt" in n for n in notes)


def test_expand_refuses_missing_paths_and_empty_folders(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        expand_models([tmp_path / "nope.onnx"])
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(ConfigError, match="no recognised model"):
        expand_models([tmp_path])


def test_folder_gives_one_combined_report_and_a_broken_model_does_not_stop_the_others(
        model_folder: Path, tmp_path: Path) -> None:
    out = tmp_path / "report.json"
    run = run_cli("check", model_folder, "--target", "weak-cpu", "--json", out, *FAST)
    assert_no_traceback(run)
    assert run.code == 3, run.output  # one model could not be loaded: that outranks budgets
    report = json.loads(out.read_text())
    by_name = {Path(r["model"]["path"]).name: r for r in report["results"]}
    assert set(by_name) == {"a_tiny.onnx", "b_cnn.onnx", "c_broken.onnx"}
    assert by_name["c_broken.onnx"]["error"]["message"].startswith(str(model_folder / "c_broken.onnx"))
    for name in ("a_tiny.onnx", "b_cnn.onnx"):
        assert by_name[name]["error"] is None
        assert by_name[name]["measurement"]["latency"]["n"] > 0
        assert by_name[name]["targets"][0]["target"] == "weak-cpu"
    assert any("one at a time" in n for n in report["notes"])
    assert "c_broken.onnx" in run.stderr and "not a valid onnx file" in run.stderr


def test_several_model_paths_and_the_api(tiny_model: Path, small_cnn_model: Path, tmp_path: Path) -> None:
    out = tmp_path / "report.json"
    run = run_cli("check", tiny_model, small_cnn_model, "--target", "edge", "--target", "weak-cpu",
                    "--json", out, *FAST)
    assert_no_traceback(run)
    assert run.code in (0, 1), run.output
    report = json.loads(out.read_text())
    assert len(report["results"]) == 2
    assert all([t["target"] for t in r["targets"]] == ["edge", "weak-cpu"] for r in report["results"])
    assert "Verdicts for" in run.stdout and run.stdout.count("Verdicts for") == 2


def test_api_check_many_returns_a_report(tiny_model: Path) -> None:
    import mlfit
    from mlfit.api import MeasureOptions, check_many

    report = check_many([tiny_model], ["edge"], options=MeasureOptions(min_time=0.1, max_time=1, warmup=1))
    assert isinstance(report, mlfit.result.Report)
    assert len(report.results) == 1 and report.results[0].error is None
    assert mlfit.check(tiny_model, ["edge"], options=MeasureOptions(min_time=0.1, max_time=1)).model.path


def test_missing_model_among_many_is_a_usage_error(tiny_model: Path, tmp_path: Path) -> None:
    run = run_cli("check", tiny_model, tmp_path / "missing.onnx", "--target", "edge", *FAST)
    assert_no_traceback(run)
    assert run.code == 2
    assert "missing.onnx' does not exist" in run.stderr
