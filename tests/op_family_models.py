"""Small real ONNX models, one per op family the static cost model reads (issue 21 item 1), built with
onnx.helper and each run once through onnxruntime by the tests (so every graph is one a runtime accepts).
Also the issue's motivating models: an int8 dynamically quantized CRNN (Conv + LSTM), a random forest
converted with skl2onnx, and a model made only of ops without a static cost."""

from __future__ import annotations

from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

F = TensorProto.FLOAT
_RNG = np.random.default_rng(21)


def _w(name: str, *shape: int, dtype: Any = np.float32) -> onnx.TensorProto:
    return numpy_helper.from_array((_RNG.standard_normal(shape) * 0.1).astype(dtype), name)


def _model(nodes: list[onnx.NodeProto], inputs: list[onnx.ValueInfoProto], outputs: list[onnx.ValueInfoProto],
           inits: list[onnx.TensorProto], opsets: dict[str, int] | None = None) -> onnx.ModelProto:
    graph = helper.make_graph(nodes, "g", inputs, outputs, inits)
    imports = [helper.make_opsetid(d, v) for d, v in {"": 17, **(opsets or {})}.items()]
    model = helper.make_model(graph, opset_imports=imports)
    model.ir_version = 8
    return model


class Case(NamedTuple):
    name: str
    model: onnx.ModelProto
    op: str  # the node whose cost is checked (its op as the analysis names it)
    macs: int  # expected MACs (0: FLOPs only)
    flops_at_least: int
    feeds: dict[str, np.ndarray]


def recurrent(kind: str, seq: int = 12, batch: int = 1, inp: int = 16, hidden: int = 32) -> Case:
    gates = {"LSTM": 4, "GRU": 3, "RNN": 1}[kind]
    x = helper.make_tensor_value_info("x", F, [seq, batch, inp])
    y = helper.make_tensor_value_info("y", F, None)
    node = helper.make_node(kind, ["x", "W", "R"], ["y"], hidden_size=hidden)
    inits = [_w("W", 1, gates * hidden, inp), _w("R", 1, gates * hidden, hidden)]
    macs = seq * batch * gates * hidden * (inp + hidden)
    return Case(kind, _model([node], [x], [y], inits), kind, macs, 2 * macs,
                {"x": np.ones((seq, batch, inp), np.float32)})


def integer_matmul() -> Case:
    a = helper.make_tensor_value_info("a", TensorProto.UINT8, [4, 64])
    y = helper.make_tensor_value_info("y", TensorProto.INT32, [4, 32])
    b = numpy_helper.from_array(_RNG.integers(0, 255, (64, 32), dtype=np.uint8), "B")
    node = helper.make_node("MatMulInteger", ["a", "B"], ["y"])
    return Case("MatMulInteger", _model([node], [a], [y], [b]), "MatMulInteger", 4 * 64 * 32, 2 * 4 * 64 * 32,
                {"a": np.ones((4, 64), np.uint8)})


def integer_conv() -> Case:
    x = helper.make_tensor_value_info("x", TensorProto.UINT8, [1, 8, 16, 16])
    y = helper.make_tensor_value_info("y", TensorProto.INT32, [1, 16, 14, 14])
    w = numpy_helper.from_array(_RNG.integers(0, 255, (16, 8, 3, 3), dtype=np.uint8), "W")
    node = helper.make_node("ConvInteger", ["x", "W"], ["y"])
    macs = 16 * 14 * 14 * 8 * 9
    return Case("ConvInteger", _model([node], [x], [y], [w]), "ConvInteger", macs, 2 * macs,
                {"x": np.ones((1, 8, 16, 16), np.uint8)})


def qlinear_matmul() -> Case:
    a = helper.make_tensor_value_info("a", TensorProto.UINT8, [4, 64])
    y = helper.make_tensor_value_info("y", TensorProto.UINT8, [4, 32])
    inits = [
        numpy_helper.from_array(_RNG.integers(0, 255, (64, 32), dtype=np.uint8), "B"),
        numpy_helper.from_array(np.array(0.02, np.float32), "s"),
        numpy_helper.from_array(np.array(128, np.uint8), "z"),
    ]
    node = helper.make_node("QLinearMatMul", ["a", "s", "z", "B", "s", "z", "s", "z"], ["y"])
    return Case("QLinearMatMul", _model([node], [a], [y], inits), "QLinearMatMul", 4 * 64 * 32, 2 * 4 * 64 * 32,
                {"a": np.ones((4, 64), np.uint8)})


def dynamic_quantize() -> Case:
    x = helper.make_tensor_value_info("x", F, [64, 64])
    outs = [helper.make_tensor_value_info(n, t, None) for n, t in
            (("q", TensorProto.UINT8), ("s", F), ("z", TensorProto.UINT8))]
    node = helper.make_node("DynamicQuantizeLinear", ["x"], ["q", "s", "z"])
    return Case("DynamicQuantizeLinear", _model([node], [x], outs, []), "DynamicQuantizeLinear", 0, 64 * 64,
                {"x": np.ones((64, 64), np.float32)})


def quantize_dequantize() -> Case:
    x = helper.make_tensor_value_info("x", F, [64, 64])
    y = helper.make_tensor_value_info("y", F, [64, 64])
    inits = [numpy_helper.from_array(np.array(0.02, np.float32), "s"),
             numpy_helper.from_array(np.array(128, np.uint8), "z")]
    nodes = [helper.make_node("QuantizeLinear", ["x", "s", "z"], ["q"]),
             helper.make_node("DequantizeLinear", ["q", "s", "z"], ["y"])]
    return Case("QuantizeLinear", _model(nodes, [x], [y], inits), "QuantizeLinear", 0, 64 * 64,
                {"x": np.ones((64, 64), np.float32)})


def attention(batch: int = 1, seq: int = 16, hidden: int = 32, heads: int = 2) -> Case:
    x = helper.make_tensor_value_info("x", F, [batch, seq, hidden])
    y = helper.make_tensor_value_info("y", F, None)
    node = helper.make_node("Attention", ["x", "W", "b"], ["y"], domain="com.microsoft", num_heads=heads)
    inits = [_w("W", hidden, 3 * hidden), _w("b", 3 * hidden)]
    macs = batch * seq * hidden * 3 * hidden + 2 * batch * seq * seq * hidden
    return Case("Attention", _model([node], [x], [y], inits, {"com.microsoft": 1}), "com.microsoft::Attention",
                macs, 2 * macs, {"x": np.ones((batch, seq, hidden), np.float32)})


def multihead(batch: int = 1, seq: int = 16, kv: int = 24, hidden: int = 32, heads: int = 2) -> Case:
    q = helper.make_tensor_value_info("q", F, [batch, seq, hidden])
    k = helper.make_tensor_value_info("k", F, [batch, kv, hidden])
    v = helper.make_tensor_value_info("v", F, [batch, kv, hidden])
    y = helper.make_tensor_value_info("y", F, None)
    node = helper.make_node("MultiHeadAttention", ["q", "k", "v"], ["y"], domain="com.microsoft", num_heads=heads)
    macs = 2 * batch * seq * kv * hidden
    feeds = {"q": np.ones((batch, seq, hidden), np.float32), "k": np.ones((batch, kv, hidden), np.float32),
             "v": np.ones((batch, kv, hidden), np.float32)}
    return Case("MultiHeadAttention", _model([node], [q, k, v], [y], [], {"com.microsoft": 1}),
                "com.microsoft::MultiHeadAttention", macs, 2 * macs, feeds)


def skip_layer_norm(seq: int = 16, hidden: int = 32) -> Case:
    x = helper.make_tensor_value_info("x", F, [1, seq, hidden])
    s = helper.make_tensor_value_info("s", F, [1, seq, hidden])
    y = helper.make_tensor_value_info("y", F, None)
    node = helper.make_node("SkipLayerNormalization", ["x", "s", "g", "b"], ["y"], domain="com.microsoft")
    inits = [_w("g", hidden), _w("b", hidden)]
    feeds = {"x": np.ones((1, seq, hidden), np.float32), "s": np.ones((1, seq, hidden), np.float32)}
    return Case("SkipLayerNormalization", _model([node], [x, s], [y], inits, {"com.microsoft": 1}),
                "com.microsoft::SkipLayerNormalization", 0, seq * hidden * 8, feeds)


def einsum() -> Case:
    a = helper.make_tensor_value_info("a", F, [2, 8, 16])
    y = helper.make_tensor_value_info("y", F, [2, 8, 12])
    node = helper.make_node("Einsum", ["a", "B"], ["y"], equation="bij,jk->bik")
    macs = 2 * 8 * 16 * 12
    return Case("Einsum", _model([node], [a], [y], [_w("B", 16, 12)]), "Einsum", macs, 2 * macs,
                {"a": np.ones((2, 8, 16), np.float32)})


def _ml_model(node: onnx.NodeProto, features: int, rows: int, out_type: int = F) -> onnx.ModelProto:
    x = helper.make_tensor_value_info("x", F, [rows, features])
    outs = [helper.make_tensor_value_info(o, out_type if i == 0 else F, None) for i, o in enumerate(node.output)]
    return _model([node], [x], outs, [], {"ai.onnx.ml": 3})


def tree_ensemble(rows: int = 4, features: int = 6) -> Case:
    """Two trees: one of depth 2 (three branch nodes), one of depth 1."""
    node = helper.make_node(
        "TreeEnsembleRegressor", ["x"], ["y"], domain="ai.onnx.ml", n_targets=1,
        nodes_treeids=[0, 0, 0, 0, 0, 0, 0, 1, 1, 1], nodes_nodeids=[0, 1, 2, 3, 4, 5, 6, 0, 1, 2],
        nodes_featureids=[0, 1, 2, 0, 0, 0, 0, 3, 0, 0], nodes_values=[0.5, 0.2, 0.1, 0, 0, 0, 0, 0.3, 0, 0],
        nodes_modes=["BRANCH_LEQ"] * 3 + ["LEAF"] * 4 + ["BRANCH_LEQ", "LEAF", "LEAF"],
        nodes_truenodeids=[1, 3, 5, 0, 0, 0, 0, 1, 0, 0], nodes_falsenodeids=[2, 4, 6, 0, 0, 0, 0, 2, 0, 0],
        target_treeids=[0, 0, 0, 0, 1, 1], target_nodeids=[3, 4, 5, 6, 1, 2], target_ids=[0] * 6,
        target_weights=[1.0, 2.0, 3.0, 4.0, 5.0, 6.0])
    # trees 2, mean depth ceil((2 + 1) / 2) = 2: rows x trees x depth compares, 2 FLOPs each
    return Case("TreeEnsembleRegressor", _ml_model(node, features, rows), "ai.onnx.ml::TreeEnsembleRegressor",
                0, 2 * rows * 2 * 2, {"x": np.ones((rows, features), np.float32)})


def linear_classifier(rows: int = 4, features: int = 10, classes: int = 3) -> Case:
    node = helper.make_node("LinearClassifier", ["x"], ["label", "scores"], domain="ai.onnx.ml",
                            coefficients=list(_RNG.standard_normal(classes * features).astype(float)),
                            intercepts=[0.0] * classes, classlabels_ints=list(range(classes)))
    model = _ml_model(node, features, rows)
    model.graph.output[0].type.tensor_type.elem_type = TensorProto.INT64
    macs = rows * classes * features
    return Case("LinearClassifier", model, "ai.onnx.ml::LinearClassifier", macs, 2 * macs,
                {"x": np.ones((rows, features), np.float32)})


def svm_regressor(rows: int = 4, features: int = 5, vectors: int = 7) -> Case:
    node = helper.make_node("SVMRegressor", ["x"], ["y"], domain="ai.onnx.ml", kernel_type="RBF",
                            kernel_params=[0.1, 0.0, 3.0], n_supports=vectors,
                            support_vectors=list(_RNG.standard_normal(vectors * features).astype(float)),
                            coefficients=list(_RNG.standard_normal(vectors).astype(float)), rho=[0.0])
    macs = rows * (vectors * features + vectors)
    return Case("SVMRegressor", _ml_model(node, features, rows), "ai.onnx.ml::SVMRegressor", macs, 2 * macs,
                {"x": np.ones((rows, features), np.float32)})


def scaler(rows: int = 8, features: int = 16) -> Case:
    node = helper.make_node("Scaler", ["x"], ["y"], domain="ai.onnx.ml", offset=[0.5] * features,
                            scale=[2.0] * features)
    return Case("Scaler", _ml_model(node, features, rows), "ai.onnx.ml::Scaler", 0, rows * features,
                {"x": np.ones((rows, features), np.float32)})


def _body_matmul(dim: int) -> onnx.GraphProto:
    """A body graph: y = x @ W (W from the outer scope)."""
    out = helper.make_tensor_value_info("yb", F, [1, dim])
    return helper.make_graph([helper.make_node("MatMul", ["x", "W"], ["yb"])], "body", [], [out])


def if_branches(dim: int = 32) -> Case:
    """If: then = one MatMul, else = two: the costlier (else) is counted."""
    x = helper.make_tensor_value_info("x", F, [1, dim])
    c = helper.make_tensor_value_info("c", TensorProto.BOOL, [])
    y = helper.make_tensor_value_info("y", F, [1, dim])
    then = _body_matmul(dim)
    other = helper.make_graph([helper.make_node("MatMul", ["x", "W"], ["t"]), helper.make_node("MatMul", ["t", "W"],
                                                                                             ["ye"])],
                              "else", [], [helper.make_tensor_value_info("ye", F, [1, dim])])
    node = helper.make_node("If", ["c"], ["y"], then_branch=then, else_branch=other)
    macs = 2 * dim * dim
    return Case("If", _model([node], [x, c], [y], [_w("W", dim, dim)]), "If", macs, 2 * macs,
                {"x": np.ones((1, dim), np.float32), "c": np.array(True)})


def loop(trips: int = 5, dim: int = 32) -> Case:
    """Loop with a constant trip count: body (a MatMul carried through) x trips."""
    x = helper.make_tensor_value_info("x", F, [1, dim])
    y = helper.make_tensor_value_info("y", F, [1, dim])
    body = helper.make_graph(
        [helper.make_node("Identity", ["cond_in"], ["cond_out"]), helper.make_node("MatMul", ["v_in", "W"], ["v_out"])],
        "body",
        [helper.make_tensor_value_info("i", TensorProto.INT64, []),
         helper.make_tensor_value_info("cond_in", TensorProto.BOOL, []),
         helper.make_tensor_value_info("v_in", F, [1, dim])],
        [helper.make_tensor_value_info("cond_out", TensorProto.BOOL, []),
         helper.make_tensor_value_info("v_out", F, [1, dim])])
    node = helper.make_node("Loop", ["M", "cond", "x"], ["y"], body=body)
    inits = [_w("W", dim, dim), numpy_helper.from_array(np.array(trips, np.int64), "M"),
             numpy_helper.from_array(np.array(True), "cond")]
    macs = trips * dim * dim
    return Case("Loop", _model([node], [x], [y], inits), "Loop", macs, 2 * macs, {"x": np.ones((1, dim), np.float32)})


def scan(length: int = 6, dim: int = 16) -> Case:
    """Scan over axis 0 of a [length, 1, dim] input: body (a MatMul per slice) x length."""
    x = helper.make_tensor_value_info("x", F, [length, 1, dim])
    s0 = helper.make_tensor_value_info("s0", F, [1, dim])
    outs = [helper.make_tensor_value_info("s_final", F, [1, dim]), helper.make_tensor_value_info("ys", F, None)]
    body = helper.make_graph(
        [helper.make_node("MatMul", ["xi", "W"], ["p"]), helper.make_node("Add", ["s_in", "p"], ["s_out"]),
         helper.make_node("Identity", ["p"], ["yi"])],
        "body",
        [helper.make_tensor_value_info("s_in", F, [1, dim]), helper.make_tensor_value_info("xi", F, [1, dim])],
        [helper.make_tensor_value_info("s_out", F, [1, dim]), helper.make_tensor_value_info("yi", F, [1, dim])])
    node = helper.make_node("Scan", ["s0", "x"], ["s_final", "ys"], body=body, num_scan_inputs=1)
    macs = length * dim * dim
    return Case("Scan", _model([node], [s0, x], outs, [_w("W", dim, dim)]), "Scan", macs, 2 * macs,
                {"s0": np.zeros((1, dim), np.float32), "x": np.ones((length, 1, dim), np.float32)})


CASES = {
    "LSTM": lambda: recurrent("LSTM"), "GRU": lambda: recurrent("GRU"), "RNN": lambda: recurrent("RNN"),
    "MatMulInteger": integer_matmul, "ConvInteger": integer_conv, "QLinearMatMul": qlinear_matmul,
    "DynamicQuantizeLinear": dynamic_quantize, "QuantizeLinear": quantize_dequantize,
    "Attention": attention, "MultiHeadAttention": multihead, "SkipLayerNormalization": skip_layer_norm,
    "Einsum": einsum, "TreeEnsembleRegressor": tree_ensemble, "LinearClassifier": linear_classifier,
    "SVMRegressor": svm_regressor, "Scaler": scaler, "If": if_branches, "Loop": loop, "Scan": scan,
}  # fmt: skip


def save(model: onnx.ModelProto, path: Path) -> Path:
    onnx.save(model, str(path))
    return path


# ---- the motivating models -------------------------------------------------------------


def crnn(seq: int = 32, height: int = 32, channels: int = 32, hidden: int = 96) -> onnx.ModelProto:
    """A CRNN-like recognizer (fp32): two 3x3 convolutions over a text-line image, the columns read
    as a sequence by an LSTM, a per-step classifier. Quantize with :func:`quantize_int8`."""
    x = helper.make_tensor_value_info("image", F, [1, 1, height, seq * 2])
    y = helper.make_tensor_value_info("logits", F, None)
    h2 = height // 4
    nodes = [
        helper.make_node("Conv", ["image", "c1", "c1b"], ["a1"], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["a1"], ["r1"]),
        helper.make_node("MaxPool", ["r1"], ["p1"], kernel_shape=[2, 2], strides=[2, 2]),
        helper.make_node("Conv", ["p1", "c2", "c2b"], ["a2"], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["a2"], ["r2"]),
        helper.make_node("MaxPool", ["r2"], ["p2"], kernel_shape=[2, 1], strides=[2, 1]),  # 1 x C x H/4 x seq
        helper.make_node("Transpose", ["p2"], ["t"], perm=[3, 0, 1, 2]),  # seq x 1 x C x H/4
        helper.make_node("Reshape", ["t", "shape"], ["seqx"]),  # seq x 1 x C*H/4
        helper.make_node("LSTM", ["seqx", "W", "R", "B"], ["yl"], hidden_size=hidden),
        helper.make_node("Squeeze", ["yl", "axis1"], ["ys"]),  # seq x 1 x hidden
        helper.make_node("MatMul", ["ys", "fc"], ["logits"]),
    ]
    features = channels * h2
    inits = [
        _w("c1", channels // 2, 1, 3, 3), _w("c1b", channels // 2), _w("c2", channels, channels // 2, 3, 3),
        _w("c2b", channels), numpy_helper.from_array(np.array([seq, 1, features], np.int64), "shape"),
        _w("W", 1, 4 * hidden, features), _w("R", 1, 4 * hidden, hidden), _w("B", 1, 8 * hidden),
        numpy_helper.from_array(np.array([1], np.int64), "axis1"), _w("fc", hidden, 40),
    ]
    return _model(nodes, [x], [y], inits, {"": 14})


def quantize_int8(src: Path, dst: Path) -> Path:
    """Dynamic int8 quantization as a user runs it (onnxruntime.quantization.quantize_dynamic): Conv
    becomes ConvInteger, MatMul MatMulInteger, the LSTM com.microsoft DynamicQuantizeLSTM."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    quantize_dynamic(str(src), str(dst), weight_type=QuantType.QInt8, op_types_to_quantize=["Conv", "MatMul", "LSTM"])
    return dst


def random_forest(trees: int = 40, depth: int = 8, features: int = 12) -> onnx.ModelProto:
    """A scikit-learn random forest converted with skl2onnx (ai.onnx.ml TreeEnsembleClassifier)."""
    from skl2onnx import to_onnx
    from sklearn.ensemble import RandomForestClassifier

    rng = np.random.default_rng(3)
    x = rng.standard_normal((400, features)).astype(np.float32)
    labels = (x[:, 0] + x[:, 1] * x[:, 2] > 0).astype(np.int64)
    forest = RandomForestClassifier(n_estimators=trees, max_depth=depth, random_state=0).fit(x, labels)
    return to_onnx(forest, x[:1], options={"zipmap": False}, target_opset={"": 17, "ai.onnx.ml": 3})


def uncosted_chain(length: int = 6, size: int = 512) -> onnx.ModelProto:
    """Only ops without a static cost model: a chain of ai.onnx.ml LabelEncoders (int64 -> int64)."""
    x = helper.make_tensor_value_info("x", TensorProto.INT64, [size])
    y = helper.make_tensor_value_info("y", TensorProto.INT64, [size])
    keys = list(range(64))
    nodes = [helper.make_node("LabelEncoder", ["x" if i == 0 else f"v{i}"], [f"v{i + 1}" if i < length - 1 else "y"],
                              domain="ai.onnx.ml", keys_int64s=keys, values_int64s=keys[::-1], default_int64=0)
             for i in range(length)]
    return _model(nodes, [x], [y], [], {"ai.onnx.ml": 2})
