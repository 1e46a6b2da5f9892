"""`mlfit inspect` for every format (issue 23, point 1): inputs, outputs, op (layer, type)
histogram, parameters where the file states them, FLOPs where defined, size; .skops and pickles
list the types they hold from mlfit's scans, never unpickled. Real models from tests/format_models.py."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from conftest import assert_no_traceback, run_cli
from format_models import models

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return models(tmp_path_factory.getbasetemp())


def _inspect(model: Path) -> dict[str, Any]:
    run = run_cli("inspect", model, "--json")
    assert_no_traceback(run)
    assert run.code == 0, run.output  # was exit 3, "static inspection of tflite models is not available yet"
    facts = json.loads(run.stdout)
    assert facts["size_bytes"] > 0 and facts["ops"] and facts["node_count"] == sum(facts["ops"].values())
    return facts


def test_tflite_inspect_has_ops_parameters_and_flops(built: dict[str, Path]) -> None:
    facts = _inspect(built["tflite"])
    assert facts["ops"]["CONV_2D"] == 2 and facts["ops"]["FULLY_CONNECTED"] == 1
    assert facts["inputs"][0]["shape"][1:] == [16, 16, 3] and facts["outputs"][0]["shape"][-1] == 4
    assert facts["parameters"] > 0 and facts["flops"] > 0


def test_savedmodel_inspect_has_the_signatures_ops_and_the_variables_parameters(built: dict[str, Path]) -> None:
    facts = _inspect(built["savedmodel"])
    assert facts["ops"]["Conv2D"] == 2 and facts["ops"]["MatMul"] == 1
    assert facts["parameters"] == 3 * 3 * 3 * 8 + 8 + 3 * 3 * 8 * 8 + 8 + 8 * 4 + 4  # two convs and a dense
    assert facts["inputs"][0]["name"] == "image" and facts["outputs"][0]["shape"] == ["batch", 4]


# The fixture convnet, counted by hand (batch 1; a multiply-add is 2 FLOPs, as for ONNX and TFLite):
# Conv2D(8, 3x3) on 16x16x3 -> 14x14x8, MaxPool 2x2 -> 7x7x8, Conv2D(8, 3x3) -> 5x5x8, global average -> 8,
# Dense(4). Convs: 2 MACs-worth per output plus bias, plus relu; pool: a 2x2 window per output; Dense:
# matmul + bias + softmax (5 per element).
_CONV1_MACS, _CONV2_MACS, _DENSE_MACS = 14 * 14 * 8 * 3 * 3 * 3, 5 * 5 * 8 * 3 * 3 * 8, 8 * 4
_HAND_MACS = _CONV1_MACS + _CONV2_MACS + _DENSE_MACS
_HAND_FLOPS = (2 * _CONV1_MACS + 14 * 14 * 8 + 14 * 14 * 8) + 7 * 7 * 8 * 4 \
    + (2 * _CONV2_MACS + 5 * 5 * 8 + 5 * 5 * 8) + 5 * 5 * 8 + (2 * _DENSE_MACS + 4 + 5 * 4)


@pytest.mark.parametrize("key", ["keras", "h5"])
def test_keras_inspect_has_the_layers_parameters_and_flops(built: dict[str, Path], key: str) -> None:
    facts = _inspect(built[key])
    assert facts["ops"]["Conv2D"] == 2 and facts["ops"]["Dense"] == 1
    assert facts["inputs"][0]["shape"] == ["batch", 16, 16, 3]
    assert facts["outputs"][0]["shape"] == ["batch", 4]  # from the layer walk, not left empty
    # Was absent ("parameters and FLOPs are not read from a Keras file"): now read from the stored weights'
    # shapes, equal to what Keras itself counts, and the FLOPs from the config's layer shapes.
    keras_count = json.loads(built["keras_counts"].read_text())["count_params"]
    assert facts["parameters"] == keras_count == 3 * 3 * 3 * 8 + 8 + 3 * 3 * 8 * 8 + 8 + 8 * 4 + 4
    assert facts["parameter_bytes"] == {"float32": 4 * keras_count}
    assert facts["macs"] == _HAND_MACS and facts["flops"] == _HAND_FLOPS > 0
    assert facts["shape_inference"]["nodes_with_unknown_cost"] == 0


def test_keras_inspect_names_a_sequential_models_output(built: dict[str, Path]) -> None:
    """A Sequential config names no output layer (a functional one does): its last layer is the output.
    The fixture's Sequential ends in a Lambda, whose shape has no formula: named, shape left empty."""
    facts = _inspect(built["lambda_keras"])
    assert len(facts["outputs"]) == 1 and facts["outputs"][0]["name"].startswith("lambda"), facts["outputs"]


def test_keras_inspect_terminal_shows_parameters_and_flops(built: dict[str, Path]) -> None:
    run = run_cli("inspect", built["keras"], env={"COLUMNS": "80"})
    assert run.code == 0, run.output
    assert "parameters: 844" in run.stdout and f"FLOPs per inference: {_HAND_FLOPS:,}" in run.stdout


def test_skops_inspect_lists_the_types_without_loading(built: dict[str, Path]) -> None:
    facts = _inspect(built["skops"])
    assert "sklearn.pipeline.Pipeline" in facts["ops"] and "builtins.str" not in facts["ops"]
    assert facts["inputs"][0]["shape"] == ["batch", 4]


def test_a_hostile_pickle_is_inspected_by_the_scan_never_unpickled(built: dict[str, Path]) -> None:
    facts = _inspect(built["joblib"])
    assert "sklearn.linear_model._logistic.LogisticRegression" in facts["ops"]
    hostile = _inspect(built["hostile_pkl"])
    assert any("system" in name for name in hostile["ops"]), hostile["ops"]  # named, not called
    assert not Path(built["sentinel"]).exists()


def test_inspect_terminal_layout_for_a_savedmodel(built: dict[str, Path]) -> None:
    run = run_cli("inspect", built["savedmodel"], env={"COLUMNS": "100"})
    assert run.code == 0, run.output
    assert "signature: serving_default" in run.stdout and "parameters: 844" in run.stdout
    assert "opset None" not in run.stdout
