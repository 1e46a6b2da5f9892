"""Known SavedModel export problems get their known fixes (issue 23, point 8)."""

from __future__ import annotations

from pathlib import Path

import pytest

from conftest import assert_no_traceback, run_mlfit
from format_models import models

pytestmark = pytest.mark.slow


def test_a_keras2_export_with_optimizer_slots_names_tf_keras(tmp_path_factory: pytest.TempPathFactory) -> None:
    model: Path = models(tmp_path_factory.getbasetemp())["keras2_slots_savedmodel"]
    run = run_mlfit("check", model, "--target", "weak-cpu", "--quiet", env={"COLUMNS": "400"})
    assert_no_traceback(run)
    assert run.code == 3, run.output
    assert "add_slot" in run.output and "Keras 2" in run.output, run.output
    assert "pip install tf_keras" in run.output and "TF_USE_LEGACY_KERAS=1" in run.output
    assert "ONNX or TFLite export" in run.output
    assert "check that it was exported by a compatible TensorFlow" not in run.output  # the old, unactionable hint
