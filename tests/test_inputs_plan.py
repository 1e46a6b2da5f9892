"""Inputs without guesswork (issue 14): the batch comes from the target, integer ranges from the
graph, undetermined integers stop the run with a ready flag, and every value used is recorded.
Real ONNX models built here; the CLI runs as a real subprocess."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from conftest import FAST, assert_no_traceback, run_cli
from mlfit.catalog.loader import resolve_target
from mlfit.errors import ConfigError
from mlfit.formats import ModelFormat
from mlfit.formats.registry import declared_inputs
from mlfit.inputspec import parse_input_flags
from mlfit.plan.inputs import choose_batch, plan_inputs


def _save(graph: onnx.GraphProto, path: Path) -> Path:
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


@pytest.fixture(scope="module")
def byte_embedding(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A byte-level embedding: ids index a 258-row table (256 bytes + 2 specials), through a Cast."""
    table = numpy_helper.from_array(np.random.default_rng(0).normal(size=(258, 16)).astype(np.float32), "byte_table")
    nodes = [helper.make_node("Cast", ["bytes"], ["ids"], to=TensorProto.INT64),
             helper.make_node("Gather", ["byte_table", "ids"], ["emb"], name="embed", axis=0),
             helper.make_node("ReduceMean", ["emb"], ["pooled"], axes=[1], keepdims=0)]
    graph = helper.make_graph(nodes, "byte_embedding",
                              [helper.make_tensor_value_info("bytes", TensorProto.INT32, ["batch", 64])],
                              [helper.make_tensor_value_info("pooled", TensorProto.FLOAT, ["batch", 16])],
                              [table])
    return _save(graph, tmp_path_factory.mktemp("inputs") / "byte_embedding.onnx")


@pytest.fixture(scope="module")
def voice(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A voice model: audio samples and a scalar sample rate the graph does not bound."""
    nodes = [helper.make_node("Cast", ["sample_rate"], ["rate_f"], to=TensorProto.FLOAT),
             helper.make_node("Div", ["audio", "rate_f"], ["scaled"]),
             helper.make_node("ReduceSum", ["scaled", "axes"], ["energy"], keepdims=0)]
    graph = helper.make_graph(nodes, "voice",
                              [helper.make_tensor_value_info("audio", TensorProto.FLOAT, ["batch", 1600]),
                               helper.make_tensor_value_info("sample_rate", TensorProto.INT64, [])],
                              [helper.make_tensor_value_info("energy", TensorProto.FLOAT, ["batch"])],
                              [numpy_helper.from_array(np.array([1], np.int64), "axes")])
    return _save(graph, tmp_path_factory.mktemp("inputs") / "voice.onnx")


@pytest.fixture(scope="module")
def onehot_clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Class ids into a OneHot of depth 10; a bucket index clipped to [0, 31]."""
    depth = numpy_helper.from_array(np.array(10, np.int64), "depth")
    values = numpy_helper.from_array(np.array([0, 1], np.float32), "values")
    low = numpy_helper.from_array(np.array(0, np.int64), "low")
    high = numpy_helper.from_array(np.array(31, np.int64), "high")
    nodes = [helper.make_node("OneHot", ["label", "depth", "values"], ["hot"], axis=-1),
             helper.make_node("Clip", ["bucket", "low", "high"], ["clipped"])]
    graph = helper.make_graph(nodes, "onehot_clip",
                              [helper.make_tensor_value_info("label", TensorProto.INT64, ["batch"]),
                               helper.make_tensor_value_info("bucket", TensorProto.INT64, ["batch", 4])],
                              [helper.make_tensor_value_info("hot", TensorProto.FLOAT, ["batch", 10]),
                               helper.make_tensor_value_info("clipped", TensorProto.INT64, ["batch", 4])],
                              [depth, values, low, high])
    return _save(graph, tmp_path_factory.mktemp("inputs") / "onehot_clip.onnx")


def test_embedding_range_is_read_from_the_table_and_batch_from_the_target(byte_embedding: Path) -> None:
    declared = declared_inputs(byte_embedding, ModelFormat.ONNX)
    plan = plan_inputs(declared, [resolve_target("gpu-server")], parse_input_flags())
    assert plan.spec.batch == 8 and "gpu-server" in plan.spec.batch_source
    assert plan.spec.derived_ranges == {"bytes": (0, 258)}
    assert "258-row table 'byte_table'" in plan.spec.range_sources["bytes"]
    assert plan.shapes == {"bytes": [8, 64]}
    assert any("batch dim of bytes set to 8" in n for n in plan.notes)
    assert any("[0, 258)" in n for n in plan.notes)
    # The user's --range and --dim win over what the model says.
    plan = plan_inputs(declared_inputs(byte_embedding, ModelFormat.ONNX), [resolve_target("edge")],
                       parse_input_flags(ranges=["bytes=0:10"], dims=["batch=2"]))
    assert plan.spec.derived_ranges == {} and plan.shapes == {"bytes": [2, 64]}
    assert not any("batch dim" in n for n in plan.notes)


def test_onehot_depth_and_clip_bounds(onehot_clip: Path) -> None:
    declared = declared_inputs(onehot_clip, ModelFormat.ONNX)
    assert declared is not None
    assert declared.ranges == {"label": (0, 10), "bucket": (0, 32)}


def test_an_index_through_a_where_still_reaches_its_table(tmp_path: Path) -> None:
    """Exporters wrap negative indices: Where(ids < 0, ids + n, ids) before the Gather."""
    table = numpy_helper.from_array(np.zeros((300, 4), np.float32), "table")
    zero = numpy_helper.from_array(np.array(0, np.int64), "zero")
    rows = numpy_helper.from_array(np.array(300, np.int64), "rows")
    nodes = [helper.make_node("Less", ["ids", "zero"], ["negative"]),
             helper.make_node("Add", ["ids", "rows"], ["wrapped"]),
             helper.make_node("Where", ["negative", "wrapped", "ids"], ["index"]),
             helper.make_node("Gather", ["table", "index"], ["out"], axis=0)]
    graph = helper.make_graph(nodes, "wrapped", [helper.make_tensor_value_info("ids", TensorProto.INT64, ["batch", 8])],
                              [helper.make_tensor_value_info("out", TensorProto.FLOAT, ["batch", 8, 4])],
                              [table, zero, rows])
    declared = declared_inputs(_save(graph, tmp_path / "wrapped.onnx"), ModelFormat.ONNX)
    assert declared is not None and declared.ranges == {"ids": (0, 300)}


def test_scalar_rate_stops_the_run_with_a_ready_flag(voice: Path) -> None:
    with pytest.raises(ConfigError) as info:
        plan_inputs(declared_inputs(voice, ModelFormat.ONNX), [resolve_target("edge")], parse_input_flags())
    text = info.value.one_line()
    assert "sample_rate int64[] (a scalar)" in text and "--value sample_rate=N" in text
    assert "audio" not in text.split("(")[0]  # a float input is not refused
    plan = plan_inputs(declared_inputs(voice, ModelFormat.ONNX), [], parse_input_flags(values=["sample_rate=16000"]))
    assert plan.shapes == {"audio": [1, 1600], "sample_rate": []}
    assert plan.spec.batch_source.startswith("no target")


def test_batch_choice_over_several_targets() -> None:
    size, why = choose_batch([resolve_target("edge"), resolve_target("gpu-server")], None)
    assert size == 1 and "each target's configuration" in why and "others 8" in why
    assert choose_batch([resolve_target("gpu-server")], 3) == (3, "--batch")


def test_check_runs_without_flags_and_records_the_values(byte_embedding: Path, tmp_path: Path) -> None:
    out = tmp_path / "r.json"
    run = run_cli("check", byte_embedding, "--target", "edge", "--json", out, *FAST)
    assert_no_traceback(run)
    assert run.code in (0, 1), run.output
    result = json.loads(out.read_text())["results"][0]
    used = result["model"]["inputs_used"][0]
    assert used["shape"] == [1, 64]
    assert used["fill"]["kind"] == "uniform" and (used["fill"]["low"], used["fill"]["high"]) == (0, 258)
    assert "258-row table" in used["fill"]["source"]
    notes = " ".join(result["targets"][0]["notes"])
    assert "batch dim of bytes set to 1 from the batch_size of target edge" in notes
    run = run_cli("profile", byte_embedding, "--batch", "3", "--json", out, *FAST)
    assert run.code == 0, run.output
    assert json.loads(out.read_text())["results"][0]["model"]["inputs_used"][0]["shape"] == [3, 64]


def test_scalar_rate_exits_2_before_the_worker_then_runs_with_the_flag(voice: Path, tmp_path: Path) -> None:
    out = tmp_path / "r.json"
    run = run_cli("check", voice, "--target", "edge", "--json", out, *FAST)
    assert run.code == 2, run.output
    assert "--value sample_rate=N" in run.stderr
    assert_no_traceback(run)
    error = json.loads(out.read_text())["results"][0]["error"]
    assert error["kind"] == "input" and error["phase"] == "static"  # refused in the parent
    run = run_cli("check", voice, "--target", "edge", "--value", "sample_rate=16000", "--json", out, *FAST)
    assert run.code in (0, 1), run.output
    used = {t["name"]: t for t in json.loads(out.read_text())["results"][0]["model"]["inputs_used"]}
    assert used["sample_rate"]["fill"] == {"kind": "constant", "low": None, "high": None, "value": 16000.0,
                                           "source": "--value"}
    assert used["audio"]["fill"]["source"] == "default for floats" and used["audio"]["shape"] == [1, 1600]


# ---- other formats: the parent reads the signature; runs need no --dim (slow: TensorFlow in the worker)

@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    from format_models import models

    return models(tmp_path_factory.getbasetemp())


@pytest.mark.slow
def test_signatures_are_read_without_a_runtime(built: dict[str, Path]) -> None:
    from mlfit.formats import sniff

    def declared(key: str) -> tuple[dict[str, list[object]], dict[str, tuple[float, float]]]:
        found = declared_inputs(built[key], sniff(built[key]))
        assert found is not None, key
        return {t.name: t.shape for t in found.inputs}, found.ranges

    assert declared("keras") == ({"image": ["batch", 16, 16, 3]}, {})
    assert declared("h5") == ({"image": ["batch", 16, 16, 3]}, {})
    shapes, _ = declared("savedmodel")
    assert list(shapes.values()) == [["batch", 16, 16, 3]]
    shapes, _ = declared("tflite")
    assert list(shapes.values()) == [["batch", 16, 16, 3]]
    int8 = declared_inputs(built["tflite_int8"], ModelFormat.TFLITE)
    assert int8 is not None and int8.inputs[0].dtype == "int8" and int8.quantized == {int8.inputs[0].name}
    assert declared("skops") == ({"X": ["batch", 4]}, {})
    assert declared("embed_keras") == ({"bytes": ["batch", 32]}, {"bytes": (0, 258)})
    shapes, ranges = declared("embed_tflite")
    assert list(shapes.values()) == [["batch", 32]] and list(ranges.values()) == [(0, 258)]
    assert declared("tokens_rate_keras") == ({"tokens": ["batch", None], "rate": ["batch"]}, {"tokens": (0, 300)})


@pytest.mark.slow
def test_undetermined_inputs_are_refused_before_the_worker(built: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "r.json"
    run = run_cli("check", built["tokens_rate_keras"], "--target", "jetson", "--json", out, *FAST)
    assert run.code == 2, run.output
    assert_no_traceback(run)
    # One message: the dim to fill and the integer input to give a value, each with its flag.
    assert "--shape tokens=1xN" in run.stderr and "--value rate=N" in run.stderr
    error = json.loads(out.read_text())["results"][0]["error"]
    assert error["phase"] == "static"  # the parent refused: TensorFlow was never imported
    assert "importing" not in run.stderr


@pytest.mark.slow
@pytest.mark.parametrize(("key", "target", "batch"), [("keras", "jetson", 1), ("tflite", "edge", 1),
                                                      ("skops", "weak-cpu", 1), ("embed_keras", "jetson", 1),
                                                      ("embed_tflite", "edge", 1)])
def test_free_batch_comes_from_the_target(built: dict[str, Path], tmp_path: Path, key: str, target: str,
                                          batch: int) -> None:
    out = tmp_path / "r.json"
    run = run_cli("check", built[key], "--target", target, "--json", out, *FAST)
    assert_no_traceback(run)
    assert run.code in (0, 1), run.output
    result = json.loads(out.read_text())["results"][0]
    used = result["model"]["inputs_used"][0]
    assert used["shape"][0] == batch
    assert any("batch dim of" in n for n in result["targets"][0]["notes"])
    if key == "embed_keras":
        assert (used["fill"]["low"], used["fill"]["high"]) == (0, 258) and "input_dim 258" in used["fill"]["source"]
    if key == "embed_tflite":  # Keras's Embedding as TFLite: SELECT_V2(x < 0, x + 258, x) -> GATHER
        assert (used["fill"]["low"], used["fill"]["high"]) == (0, 258) and "258-row table" in used["fill"]["source"]
    assert "CPUExecutionProvider" not in run.stdout and result["measurement"]["execution_provider"] != \
        "CPUExecutionProvider"


@pytest.mark.slow
def test_skops_needs_one_round_trip(built: dict[str, Path], tmp_path: Path) -> None:
    """The first refusal lists every type to trust; with those flags the run goes through: the
    batch dim comes from the target, so no second message asks for --dim."""
    import re

    run = run_cli("check", built["forest_skops"], "--target", "weak-cpu", *FAST)
    assert run.code == 3, run.output
    assert_no_traceback(run)
    flags = re.findall(r"--trust-type [\w.]+", run.stderr)
    assert flags, run.stderr
    again = run_cli("check", built["forest_skops"], "--target", "weak-cpu",
                      *[part for flag in flags for part in flag.split()], *FAST)
    assert again.code in (0, 1), again.output
