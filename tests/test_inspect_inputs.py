"""`mlfit inspect --dim/--shape/--value`, and parameters counted wherever the weights live."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from conftest import assert_no_traceback, reshape_by_input_model, run_cli
from mlfit.analysis.graph import analyze_onnx
from mlfit.zoo import builders


def _constant_weights_model(path: Path) -> Path:
    """A MatMul whose 256x128 weight is a Constant node (as many exporters write OCR models), and an
    If whose branches carry their own initializers."""
    w = np.ones((256, 128), np.float32)
    const = helper.make_node("Constant", [], ["w"], value=numpy_helper.from_array(w, "w_value"))
    shape = helper.make_node("Constant", [], ["shape"], value=numpy_helper.from_array(np.array([1, 128], np.int64)))
    mm = helper.make_node("MatMul", ["x", "w"], ["y"])
    then_b = helper.make_graph([helper.make_node("Add", ["y", "bias_t"], ["out_t"])], "then", [],
                               [helper.make_tensor_value_info("out_t", TensorProto.FLOAT, [1, 128])],
                               [numpy_helper.from_array(np.zeros(128, np.float32), "bias_t")])
    else_b = helper.make_graph([helper.make_node("Sub", ["y", "bias_e"], ["out_e"])], "else", [],
                               [helper.make_tensor_value_info("out_e", TensorProto.FLOAT, [1, 128])],
                               [numpy_helper.from_array(np.zeros(128, np.float32), "bias_e")])
    cond = helper.make_node("Constant", [], ["cond"], value=numpy_helper.from_array(np.array(True)))
    branch = helper.make_node("If", ["cond"], ["z"], then_branch=then_b, else_branch=else_b)
    reshape = helper.make_node("Reshape", ["z", "shape"], ["out"])
    graph = helper.make_graph([const, shape, mm, cond, branch, reshape], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 256])],
                              [helper.make_tensor_value_info("out", TensorProto.FLOAT, [1, 128])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


def test_constant_node_and_subgraph_weights_are_parameters(tmp_path: Path) -> None:
    facts = analyze_onnx(_constant_weights_model(tmp_path / "c.onnx"))
    # 256x128 Constant weight + two 128 biases inside the If branches; the int64 shape and the
    # boolean condition are not parameters
    assert facts["parameters"] == 256 * 128 + 2 * 128
    assert facts["parameter_bytes"]["float32"] == 4 * (256 * 128 + 2 * 128)
    assert facts["constant_parameters"] == 256 * 128 + 2 * 128
    matmul = next(n for n in facts["nodes"] if n["op"] == "MatMul")
    assert matmul["param_bytes"] == 4 * 256 * 128  # the roofline sees it as a weight, not an activation


def test_value_binds_an_input_before_shape_inference(tmp_path: Path) -> None:
    path = reshape_by_input_model(tmp_path / "v.onnx")
    unknown = analyze_onnx(path)
    known = analyze_onnx(path, values={"rows": 8})  # Reshape to [8, 8]: then [8,8] x [8,16]
    assert known["shape_inference"]["values_bound"] == ["rows"]
    assert known["flops"] == 2 * 8 * 8 * 16
    assert unknown["flops"] != known["flops"]


def test_inspect_dim_shape_and_value_flags(tmp_path: Path) -> None:
    model = builders.save(builders.example_model(), tmp_path / "m.onnx")
    one = run_cli("inspect", model, "--json")
    eight = run_cli("inspect", model, "--json", "--dim", "batch=8")
    big = run_cli("inspect", model, "--json", "--shape", "input=1x3x320x320")
    for run in (one, eight, big):
        assert_no_traceback(run)
        assert run.code == 0, run.output
    f1, f8, fbig = (json.loads(r.stdout) for r in (one, eight, big))
    assert f1["shape_inference"]["assumed_dims"] == {"batch": 1}
    assert f8["shape_inference"]["assumed_dims"] == {}
    assert f8["flops"] == pytest.approx(8 * f1["flops"], rel=0.01)
    assert fbig["flops"] == pytest.approx(4 * f1["flops"], rel=0.05)  # 2x the side: 4x the pixels
    assert f8["parameters"] == f1["parameters"]
    value = run_cli("inspect", reshape_by_input_model(tmp_path / "v.onnx"), "--json", "--value", "rows=8")
    assert value.code == 0, value.output
    assert json.loads(value.stdout)["flops"] == 2 * 8 * 8 * 16


@pytest.mark.parametrize(("flag", "arg", "says"), [
    ("--dim", "nosuch=2", "not a symbolic dim"),
    ("--shape", "nosuch=1x3", "which the model does not have"),
    ("--value", "nosuch=3", "which the model does not have"),
])
def test_inspect_refuses_names_the_model_lacks(tmp_path: Path, flag: str, arg: str, says: str) -> None:
    model = builders.save(builders.example_model(), tmp_path / "m.onnx")
    run = run_cli("inspect", model, flag, arg)
    assert_no_traceback(run)
    assert run.code == 2
    assert says in run.stderr and run.stderr.count("\n") <= 2
