"""mlfit.onnxpb: ONNX's protobuf messages without ``import onnx`` (0.6 s of CPU for ml_dtypes), and the
default check path's parent and worker steps that use it instead of the onnx package."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import onnx.defs
from onnx import TensorProto, helper, numpy_helper

from conftest import reshape_by_input_model
from mlfit import onnxpb
from mlfit.formats.onnx.standard_ops import BY_DOMAIN

REPO = Path(__file__).resolve().parents[1]


def test_messages_are_onnx_own_classes() -> None:
    # the pool shares the descriptor, so the class is onnx's own: shape inference takes our protos
    assert onnxpb.model_proto() is onnx.ModelProto


def test_dtype_names_match_onnx_helper() -> None:
    for elem in range(1, 27):
        expected = helper.tensor_dtype_to_np_dtype(elem).name
        assert onnxpb.dtype_name(elem) == expected, elem
    assert onnxpb.dtype_name(0) == "undefined"


def test_to_array_matches_numpy_helper() -> None:
    arrays = [np.array([1.5, -2.0], np.float32), np.array(3, np.int64), np.array([1, 2, 3], np.int32),
              np.array([True, False]), np.array([2.5]), np.array([7], np.uint64), np.array([-5], np.int8),
              np.array([1.0], np.float16)]
    for array in arrays:
        raw = numpy_helper.from_array(array, "x")
        typed = helper.make_tensor("y", helper.np_dtype_to_tensor_dtype(array.dtype), array.shape,
                                   array.reshape(-1).tolist())
        for tensor in (raw, typed):
            ours, theirs = onnxpb.to_array(tensor), numpy_helper.to_array(tensor)
            assert ours.dtype == theirs.dtype and ours.shape == theirs.shape
            assert np.array_equal(ours, theirs)


def test_reference_gemm_is_byte_identical_to_the_onnx_helper_build() -> None:
    from mlfit.measure.refkernel import gemm_model

    n = 8
    w = numpy_helper.from_array(np.random.default_rng(0).standard_normal((n, n)).astype(np.float32), "w")
    graph = helper.make_graph([helper.make_node("MatMul", ["x", "w"], ["y"])], "calibration",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [n, n])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [n, n])], [w])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    assert gemm_model(n).SerializeToString() == model.SerializeToString()


def test_standard_ops_match_the_installed_onnx() -> None:
    names: dict[str, set[str]] = {"": set(), "ai.onnx.ml": set()}
    for schema in onnx.defs.get_all_schemas_with_history():
        if schema.domain in names:
            names[schema.domain].add(schema.name)
    assert BY_DOMAIN[""] == names[""] and BY_DOMAIN["ai.onnx"] == names[""]
    assert BY_DOMAIN["ai.onnx.ml"] == names["ai.onnx.ml"]


_NO_ONNX = """
import sys
from pathlib import Path
path = Path(sys.argv[1])
from mlfit.formats.onnx.safety import validate_onnx
from mlfit.formats.registry import get
from mlfit.formats.kinds import ModelFormat
validate_onnx(path)
get(ModelFormat.ONNX).declared_inputs(path, "serving_default")
from mlfit.measure.refkernel import ReferenceTimer
timer = ReferenceTimer()
timer.tick(2)
from mlfit.measure.nodeprofile import _kernels
assert "providers" in _kernels(str(path), ["CPUExecutionProvider"])
assert "onnx" not in sys.modules and "ml_dtypes" not in sys.modules, sorted(m for m in sys.modules if "onnx" in m)
print("ok")
"""


def test_safety_inputs_reference_kernel_and_kernel_coverage_never_import_onnx(cnn_model: Path) -> None:
    # was: the walker, the op-schema check, the declared inputs, the reference GEMM and the kernel
    # coverage each imported onnx (ml_dtypes: 0.6 s of CPU, 2.5 s of wall time on a loaded host)
    run = subprocess.run([sys.executable, "-c", _NO_ONNX, str(cnn_model)], capture_output=True, text=True,
                         timeout=120, cwd=REPO)
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == "ok"


def test_shape_inference_is_onnx_own(cnn_model: Path, transformer_model: Path) -> None:
    # the same C++ function onnx.shape_inference.infer_shapes calls: byte-identical models out
    for path in (cnn_model, transformer_model):
        model = onnxpb.load_model(path)
        for data_prop in (False, True):
            ours = onnxpb.infer_shapes(model, data_prop=data_prop)
            theirs = onnx.shape_inference.infer_shapes(model, data_prop=data_prop)
            assert ours.SerializeToString() == theirs.SerializeToString()


def test_attribute_value_matches_onnx_helper() -> None:
    graph = helper.make_graph([], "g", [], [])
    values = [1.5, 3, b"s", numpy_helper.from_array(np.array([1.0], np.float32), "t"), graph, [1.0, 2.0], [1, 2],
              [b"a", b"b"], [numpy_helper.from_array(np.array([2], np.int64), "u")], [graph]]
    for i, value in enumerate(values):
        attr = helper.make_attribute(f"a{i}", value)
        assert onnxpb.attribute_value(attr) == helper.get_attribute_value(attr), attr.type


_ANALYSIS = """
import json, sys
from pathlib import Path
from mlfit.analysis.graph import analyze_onnx
facts = [analyze_onnx(Path(p), dims={"seq": 8}) for p in sys.argv[1:]]
assert "onnx" not in sys.modules and "ml_dtypes" not in sys.modules, sorted(m for m in sys.modules if "onnx" in m)
import onnx, onnx.checker, onnx.shape_inference  # a later import of onnx takes the extension already loaded
model = onnx.load(sys.argv[1])
onnx.checker.check_model(onnx.shape_inference.infer_shapes(model))
print(json.dumps(facts, sort_keys=True, default=str))
"""


def test_static_analysis_without_onnx_gives_the_onnx_path_facts(cnn_model: Path, transformer_model: Path,
                                                                 small_cnn_model: Path, monkeypatch) -> None:
    # was: the analysis imported onnx for its shape inference (ml_dtypes: 0.9 s of the parent's CPU per check)
    import json

    from mlfit.analysis.graph import analyze_onnx

    paths = [str(p) for p in (cnn_model, transformer_model, small_cnn_model)]
    run = subprocess.run([sys.executable, "-c", _ANALYSIS, *paths], capture_output=True, text=True,
                         timeout=120, cwd=REPO)
    assert run.returncode == 0, run.stderr
    monkeypatch.setattr(onnxpb, "infer_shapes", lambda model, data_prop=False:
                        onnx.shape_inference.infer_shapes(model, data_prop=data_prop))
    expected = [analyze_onnx(Path(p), dims={"seq": 8}) for p in paths]
    assert json.loads(run.stdout) == json.loads(json.dumps(expected, sort_keys=True, default=str))
    assert all(facts["flops"] > 0 for facts in expected)


def test_check_parent_never_imports_onnx(tiny_model: Path) -> None:
    # -X importtime lists every module the CLI process imports (the worker is started without it)
    run = subprocess.run([sys.executable, "-X", "importtime", "-m", "mlfit", "check", str(tiny_model),
                          "--target", "edge", "--min-time", "0.1", "--warmup", "2", "--quiet"],
                         capture_output=True, text=True, timeout=180, cwd=REPO, stdin=subprocess.DEVNULL)
    assert run.returncode == 0, run.stderr[-2000:]
    imported = {line.rsplit("|", 1)[1].strip() for line in run.stderr.splitlines() if line.startswith("import time:")}
    assert "mlfit.analysis.graph" in imported  # the static analysis ran in this process
    assert {"onnx", "ml_dtypes", "memory_profiler"} & imported == set(), sorted(imported & {"onnx", "ml_dtypes"})


_NO_NUMPY = """
import sys
from pathlib import Path
from mlfit.formats.kinds import ModelFormat
from mlfit.formats.registry import get
declared = get(ModelFormat.ONNX).declared_inputs(Path(sys.argv[1]), "serving_default")
assert declared is not None and declared.inputs
assert "numpy" not in sys.modules
print("ok")
"""


def test_declared_inputs_read_no_constant_they_do_not_need(cnn_model: Path, transformer_model: Path) -> None:
    # was: every small constant was read as an array, which imported numpy (0.1-0.3 s) before the
    # worker could be told its request; only a OneHot depth or Clip bound the inputs reach is read
    run = subprocess.run([sys.executable, "-c", _NO_NUMPY, str(cnn_model)], capture_output=True, text=True,
                         timeout=120, cwd=REPO)
    assert run.returncode == 0, run.stderr
    from mlfit.formats.kinds import ModelFormat
    from mlfit.formats.registry import get

    declared = get(ModelFormat.ONNX).declared_inputs(transformer_model, "serving_default")
    assert declared is not None and declared.ranges["input_ids"] == (0, 500)  # the Gather table's rows


def test_filled_constants_match_numpy_helper() -> None:
    for elem in (1, 2, 3, 4, 5, 6, 7, 9, 11, 12, 13):
        dtype = helper.tensor_dtype_to_np_dtype(elem)
        ours = onnxpb.filled("c", elem, [2, 3], 7.0)
        assert ours is not None, elem
        theirs = numpy_helper.from_array(np.full([2, 3], 7.0, dtype=dtype), "c")
        assert ours.SerializeToString() == theirs.SerializeToString(), elem
    assert onnxpb.filled("c", TensorProto.FLOAT16, [1], 1.0) is None  # onnx's helpers build those


_VALUES = """
import json, sys
from pathlib import Path
from mlfit.analysis.graph import analyze_onnx
facts = analyze_onnx(Path(sys.argv[1]), values={"rows": 8})
assert "onnx" not in sys.modules and "ml_dtypes" not in sys.modules, sorted(m for m in sys.modules if "onnx" in m)
print(json.dumps(facts, sort_keys=True, default=str))
"""


def test_a_bound_value_needs_no_onnx_and_gives_the_onnx_path_facts(tmp_path: Path, monkeypatch) -> None:
    # was: `mlfit inspect/check --value` imported onnx (ml_dtypes: 0.6 s of CPU) to build the constant
    import json

    from mlfit.analysis.graph import analyze_onnx

    path = reshape_by_input_model(tmp_path / "reshape.onnx")
    run = subprocess.run([sys.executable, "-c", _VALUES, str(path)], capture_output=True, text=True,
                         timeout=120, cwd=REPO)
    assert run.returncode == 0, run.stderr
    monkeypatch.setattr(onnxpb, "filled", lambda *args: None)  # every constant through onnx's helpers
    expected = analyze_onnx(path, values={"rows": 8})
    assert json.loads(run.stdout) == json.loads(json.dumps(expected, sort_keys=True, default=str))
    assert expected["shape_inference"]["values_bound"] == ["rows"] and expected["flops"] > 0
