"""Keras FLOPs from the config (mlfit.analysis.kerascost) and parameters from the stored weights
(mlfit.formats.keras_weights), on the real Keras files tests/format_models.py builds: shapes from
Keras 3's records or carried layer to layer (Keras 2 configs record none), layers without a formula
named, and weights Keras did not write left uncounted with the reason."""

from __future__ import annotations

import copy
import json
import zipfile
from pathlib import Path
from typing import Any

import pytest

from format_models import models
from mlfit.analysis.kerascost import keras_costs
from mlfit.formats.keras_weights import keras_weights
from mlfit.safety.keras_scan import keras_zip_config

pytestmark = pytest.mark.slow  # the fixture builds with TensorFlow (once per run, shared)


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return models(tmp_path_factory.getbasetemp())


def _as_keras2(node: Any) -> Any:
    """The config as Keras 2 writes it: no build_config, inbound nodes as [name, node, tensor, kwargs]."""
    if isinstance(node, list):
        return [_as_keras2(v) for v in node]
    if not isinstance(node, dict):
        return node
    out = {k: _as_keras2(v) for k, v in node.items() if k != "build_config"}
    if isinstance(node.get("inbound_nodes"), list):
        names: list[list[Any]] = []
        for inbound in node["inbound_nodes"]:
            for arg in inbound.get("args", []) if isinstance(inbound, dict) else []:
                history = (arg.get("config") or {}).get("keras_history") if isinstance(arg, dict) else None
                if history:
                    names.append([history[0], history[1], history[2], {}])
        out["inbound_nodes"] = [names]
    return out


def test_a_keras2_config_without_recorded_shapes_carries_them_layer_to_layer(built: dict[str, Path]) -> None:
    config = keras_zip_config(built["keras"])
    keras3 = keras_costs(config)
    keras2 = keras_costs(_as_keras2(copy.deepcopy(config)))
    assert "build_config" not in json.dumps(keras2) and keras2["flops"] == keras3["flops"] > 0
    assert keras2["macs"] == keras3["macs"] and keras2["output_shapes"] == [[1, 4]]


def test_a_layer_without_a_formula_is_named_not_counted_as_zero(built: dict[str, Path]) -> None:
    config = keras_zip_config(built["keras"])
    dense = next(la for la in config["config"]["layers"] if la["class_name"] == "Dense")
    dense["class_name"] = "MyAttention"  # a custom layer: shapes known, formula not
    costs = keras_costs(config)
    assert costs["shape_inference"]["nodes_with_unknown_cost"] == 1
    assert any("MyAttention" in note for note in costs["notes"])
    assert costs["flops"] > 0  # the convolutions are still counted


def test_a_config_with_no_shapes_gives_no_flops_and_says_so() -> None:
    costs = keras_costs({"class_name": "Sequential", "config": {"layers": [
        {"class_name": "Dense", "config": {"units": 4}}]}})
    assert "flops" not in costs and "no layer" in costs["notes"][0]


def test_compressed_or_missing_weights_are_not_counted_and_say_why(built: dict[str, Path], tmp_path: Path) -> None:
    assert keras_weights(built["keras"], zipped=True).parameters == json.loads(
        built["keras_counts"].read_text())["count_params"]
    deflated = tmp_path / "deflated.keras"
    with zipfile.ZipFile(built["keras"]) as src, zipfile.ZipFile(deflated, "w", zipfile.ZIP_DEFLATED) as dst:
        for info in src.infolist():
            dst.writestr(info.filename, src.read(info))
    weights = keras_weights(deflated, zipped=True)
    assert weights.problem is not None and "compressed" in weights.problem
    bare = tmp_path / "bare.keras"
    with zipfile.ZipFile(built["keras"]) as src, zipfile.ZipFile(bare, "w") as dst:
        dst.writestr("config.json", src.read("config.json"))
    assert "no model.weights.h5" in str(keras_weights(bare, zipped=True).problem)


@pytest.mark.parametrize("field,value,counted", [
    ("filters", "eight", False), ("strides", [0, 0], False), ("filters", -8, False),
    ("kernel_size", None, True), ("data_format", 7, True), ("groups", 0, True)])
def test_a_crafted_layer_config_is_uncounted_not_a_crash(built: dict[str, Path], field: str, value: Any,
                                                         counted: bool) -> None:
    config = keras_zip_config(built["keras"])
    conv = next(la for la in config["config"]["layers"] if la["class_name"] == "Conv2D")
    conv["config"][field] = value
    costs = keras_costs(config)  # was a ValueError / ZeroDivisionError traceback in `mlfit inspect`
    assert costs["flops"] > 0  # the other layers are still counted
    assert (costs["shape_inference"]["nodes_with_unknown_cost"] == 0) is counted
    assert all(d >= 0 for shape in costs["output_shapes"] if shape for d in shape)
