"""scikit-learn models: skops with named trusted types, joblib only with --trust-model."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from conftest import FAST, assert_no_traceback, run_cli
from format_models import models
from mlfit.errors import ExitCode


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return models(tmp_path_factory.getbasetemp())


def _result(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text())["results"][0]


def test_skops_pipeline_gets_verdicts_with_single_row_and_batched_throughput(
    built: dict[str, Path], tmp_path: Path
) -> None:
    out = tmp_path / "r.json"
    run = run_cli("check", built["skops"], "--target", "weak-cpu", "--dim", "batch=1", "--json", out, *FAST)
    assert run.code in (ExitCode.OK, ExitCode.BUDGET_FAILED), run.output
    assert_no_traceback(run)
    result = _result(out)
    assert result["model"]["format"] == "skops" and result["model"]["runtime"] == "sklearn"
    assert result["model"]["inputs"] == [{"name": "X", "dtype": "float64", "shape": ["batch", 4], "fill": None}]
    throughput = result["measurement"]["throughput"]
    assert throughput["single_stream_per_s"] > 0
    assert throughput["batch_size"] == 256 and throughput["batched_per_s"] > 0
    assert result["measurement"]["runtime_details"]["estimator"] == "Pipeline"
    assert {c["metric"] for c in result["targets"][0]["checks"]} >= {
        "latency.p50",
        "memory.peak",
        "throughput",
    }


def test_skops_untrusted_types_must_each_be_named(built: dict[str, Path], tmp_path: Path) -> None:
    refused = run_cli("check", built["forest_skops"], "--target", "weak-cpu", "--dim", "batch=1", *FAST)
    assert refused.code == ExitCode.MODEL, refused.output
    assert_no_traceback(refused)
    assert "--trust-type sklearn.tree._tree.Tree" in refused.stderr
    wholesale = run_cli(
        "check", built["forest_skops"], "--target", "weak-cpu", "--dim", "batch=1", "--trust-model", *FAST
    )
    assert wholesale.code == ExitCode.MODEL, "--trust-model must not trust skops types wholesale"
    out = tmp_path / "r.json"
    trusted = run_cli(
        "check",
        built["forest_skops"],
        "--target",
        "weak-cpu",
        "--dim",
        "batch=1",
        "--trust-type",
        "sklearn.tree._tree.Tree",
        "--method",
        "predict_proba",
        "--json",
        out,
        *FAST,
    )
    assert trusted.code in (ExitCode.OK, ExitCode.BUDGET_FAILED), trusted.output
    result = _result(out)
    assert result["measurement"]["runtime_details"]["method"] == "predict_proba"
    assert result["model"]["inputs"][0]["shape"] == ["batch", 64]


def test_joblib_needs_trust_model_then_gets_verdicts(built: dict[str, Path], tmp_path: Path) -> None:
    refused = run_cli("check", built["joblib_zlib"], "--target", "weak-cpu", "--dim", "batch=1", *FAST)
    assert refused.code == ExitCode.MODEL
    assert "LogisticRegression" in refused.stderr and "skops" in refused.stderr
    out = tmp_path / "r.json"
    run = run_cli(
        "check",
        built["joblib_zlib"],
        "--target",
        "weak-cpu",
        "--dim",
        "batch=1",
        "--trust-model",
        "--json",
        out,
        *FAST,
    )
    assert run.code in (ExitCode.OK, ExitCode.BUDGET_FAILED), run.output
    result = _result(out)
    assert result["model"]["format"] == "pickle" and result["targets"][0]["verdict"] in (
        "PASS",
        "FAIL",
        "INCONCLUSIVE",
    )


def test_missing_method_is_explained(built: dict[str, Path]) -> None:
    run = run_cli(
        "check", built["skops"], "--target", "weak-cpu", "--dim", "batch=1", "--method", "transform", *FAST
    )
    assert run.code == ExitCode.MODEL, run.output
    assert_no_traceback(run)
    assert "has no method transform" in run.stderr and "--method predict" in run.stderr
    bad = run_cli("check", built["skops"], "--target", "weak-cpu", "--method", "fit", *FAST)
    assert bad.code == ExitCode.USAGE
