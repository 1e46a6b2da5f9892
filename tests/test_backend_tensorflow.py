"""TensorFlow and TFLite models through `mlfit check` (real subprocesses, real files)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from conftest import FAST, assert_no_traceback, run_cli
from format_models import models
from mlfit.errors import ExitCode

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return models(tmp_path_factory.getbasetemp())


def _check(tmp_path: Path, model: Path, *args: str) -> tuple[Any, dict[str, Any]]:
    out = tmp_path / "result.json"
    run = run_cli("check", model, *args, "--json", out, *FAST)
    assert_no_traceback(run)
    assert run.code in (ExitCode.OK, ExitCode.BUDGET_FAILED), run.output
    return run, json.loads(out.read_text())["results"][0]


@pytest.mark.parametrize("key", ["keras", "h5", "savedmodel"])
def test_tensorflow_formats_get_verdicts(built: dict[str, Path], tmp_path: Path, key: str) -> None:
    run, result = _check(tmp_path, built[key], "--target", "jetson", "--dim", "batch=1")
    assert result["model"]["format"] == key
    assert result["model"]["runtime"] == "tensorflow"
    assert result["model"]["inputs"][0]["shape"] == ["batch", 16, 16, 3]
    assert result["model"]["inputs_used"][0]["shape"] == [1, 16, 16, 3]
    m = result["measurement"]
    assert m["runtime"] == "tensorflow" and m["latency"]["n"] > 0
    # TensorFlow's own import cost is the baseline, apart from the model's cost.
    assert m["memory"]["runtime_baseline_bytes"] - m["memory"]["interpreter_bytes"] > 100 * 2**20
    checks = {c["metric"]: c for c in result["targets"][0]["checks"]}
    assert checks["latency.p99"]["verdict"] in ("PASS", "FAIL", "INCONCLUSIVE")
    assert "compat.runtime" not in checks  # jetson provides tensorflow
    assert "Overall:" in run.stdout


def test_edge_lacks_tensorflow_and_fails_with_the_reason(built: dict[str, Path], tmp_path: Path) -> None:
    run, result = _check(tmp_path, built["keras"], "--target", "edge", "--dim", "batch=1")
    assert run.code == ExitCode.BUDGET_FAILED
    check = next(c for c in result["targets"][0]["checks"] if c["metric"] == "compat.runtime")
    assert check["verdict"] == "FAIL" and "tensorflow" in check["reason"]


def test_unknown_signature_and_unfilled_dim(built: dict[str, Path]) -> None:
    run = run_cli(
        "check", built["savedmodel"], "--target", "jetson", "--dim", "batch=1", "--signature", "nope", *FAST
    )
    assert run.code == ExitCode.MODEL, run.output
    assert_no_traceback(run)
    assert "serving_default" in run.stderr and "--signature" in run.stderr
    run = run_cli("check", built["tflite"], "--target", "edge", "--dim", "height=2", *FAST)
    assert run.code == ExitCode.USAGE, run.output  # refused in the parent, from the flatbuffer's inputs
    assert "not a symbolic dim" in run.stderr


@pytest.mark.parametrize("key", ["tflite", "tflite_int8"])
def test_tflite_float_and_int8(built: dict[str, Path], tmp_path: Path, key: str) -> None:
    _, result = _check(tmp_path, built[key], "--target", "edge", "--dim", "batch=3", "--threads", "2")
    assert result["model"]["format"] == "tflite"
    assert result["model"]["inputs_used"][0]["shape"] == [3, 16, 16, 3]  # resized from 1 to 3
    m = result["measurement"]
    assert m["threads"] == 2
    assert m["runtime_details"]["interpreter"] in ("ai-edge-litert", "tf.lite")
    dtype = result["model"]["inputs"][0]["dtype"]
    if key == "tflite_int8":
        assert dtype == "int8" and m["runtime_details"]["quantized_inputs"]
    else:
        assert dtype == "float32" and not m["runtime_details"]["quantized_inputs"]
    metrics = {c["metric"] for c in result["targets"][0]["checks"]}
    assert "compat.runtime" not in metrics  # edge provides tflite


def test_quantized_inputs_follow_the_quantization_parameters() -> None:
    import numpy as np

    from mlfit.backends.feeds import build_feeds
    from mlfit.inputspec import InputSpec
    from mlfit.result import TensorInfo

    tensor = TensorInfo(name="x", dtype="int8", shape=[1, 1000])
    feed = build_feeds([tensor], {"x": [1, 1000]}, InputSpec(), {}, {"x": (1 / 255, -128)})[0]["x"]
    assert feed.dtype == np.int8
    # real values in [0, 1) quantized with scale 1/255, zero point -128 cover about [-128, 127)
    assert int(feed.max()) - int(feed.min()) > 200
    ranged = build_feeds(
        [tensor], {"x": [1, 1000]}, InputSpec(ranges={"x": (0.0, 0.1)}), {}, {"x": (1 / 255, -128)}
    )[0]["x"]
    assert int(ranged.max()) <= -128 + 26  # [0, 0.1) is the bottom tenth of the int8 range
