"""FLOPs and multiply-accumulates of one operator, from its input and output shapes.

Shared by the static graph analysis (shapes from shape inference) and the projection
(shapes that onnxruntime's node profiler reports for the nodes it really ran, fused or
not). Convention: a multiply-add is one MAC and two FLOPs; MACs are counted for the
matrix ops (Conv, ConvTranspose, MatMul, Gemm and their fused/quantized forms) as in
the papers that publish them; every other op counts FLOPs per output element.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

Shape = Sequence[int] | None

# Ops that move or view data and compute nothing.
DATA_MOVEMENT = frozenset({
    "Reshape", "Transpose", "Gather", "GatherElements", "GatherND", "Concat", "Slice", "Split", "Squeeze",
    "Unsqueeze", "Flatten", "Identity", "Cast", "Shape", "Size", "Expand", "Pad", "Tile", "ReorderInput",
    "ReorderOutput", "Constant", "ConstantOfShape", "ScatterND", "ScatterElements", "DepthToSpace",
    "SpaceToDepth", "NonZero", "Range", "Dropout", "MemcpyToHost", "MemcpyFromHost", "Trilu", "OneHot",
    "Compress", "ArrayFeatureExtractor", "FeatureVectorizer", "QLinearConcat",
})  # fmt: skip
# Clamp-like activations every CPU and GPU runtime applies in the epilogue of the convolution or
# matrix product that produces their input (ONNX Runtime's FusedConv/FusedGemm, XNNPACK's and
# TFLite's output min/max, ncnn's activation_type, TensorRT): the product's output is written once,
# clamped, and no kernel of their own runs. Activations outside this set (HardSwish, HardSigmoid,
# Sigmoid in squeeze-and-excite blocks, GELU) run as their own kernels in at least one of the
# runtimes mlfit projects for (ONNX Runtime does not fuse MobileNetV3's hard-swish), so they are
# counted as what they cost there: a pass over memory and a dispatch.
FUSED_ACTIVATIONS = frozenset({"Relu", "Clip", "LeakyRelu"})
FUSING_PRODUCERS = frozenset({"Conv", "ConvTranspose", "Gemm", "FusedConv", "FusedGemm", "QLinearConv"})


# Ops that are views in onnxruntime: no kernel runs on a GPU (no launch, no bytes moved).
VIEW_OPS = frozenset(
    {"Reshape", "Squeeze", "Unsqueeze", "Flatten", "Identity", "Shape", "Size", "Constant", "Dropout"}
)
# FLOPs per output element for ops heavier than one arithmetic operation.
_PER_ELEMENT = {
    "Softmax": 5, "LogSoftmax": 5, "LayerNormalization": 8, "SimplifiedLayerNormalization": 6,
    "SkipLayerNormalization": 9, "InstanceNormalization": 8, "GroupNormalization": 8, "BatchNormalization": 2,
    "Gelu": 8, "FastGelu": 8, "BiasGelu": 9, "Erf": 8, "Tanh": 6, "Sigmoid": 4, "Exp": 4, "Log": 4,
    "Pow": 4, "Sqrt": 2, "HardSwish": 3, "HardSigmoid": 2, "Softplus": 4, "Swish": 5, "Mish": 8, "Elu": 4,
    "QuickGelu": 5, "LRN": 5,
    # quantization: scale, round, clamp per element (the dynamic form also finds the range: a min/max pass)
    "QuantizeLinear": 3, "DequantizeLinear": 2, "DynamicQuantizeLinear": 5,
    # quantized elementwise ops: dequantize the inputs, compute, requantize
    "QLinearAdd": 6, "QLinearMul": 6, "QLinearLeakyRelu": 5, "QLinearSigmoid": 8, "QLinearSoftmax": 9,
    "QLinearWhere": 4,
    # ai.onnx.ml preprocessing: a multiply-add (Scaler), a norm and a divide (Normalizer), a compare
    "Scaler": 2, "Normalizer": 3, "Binarizer": 1, "Imputer": 1,
}  # fmt: skip
_CONV = {"Conv": 1, "FusedConv": 1, "NhwcConv": 1, "NhwcFusedConv": 1, "ConvInteger": 1, "QLinearConv": 3}
_MATMUL = {
    "MatMul": (0, 1),
    "FusedMatMul": (0, 1),
    "MatMulInteger": (0, 1),
    "QLinearMatMul": (0, 3),
    "MatMulIntegerToFloat": (0, 1),
    "DynamicQuantizeMatMul": (0, 1),
}
_GEMM = {"Gemm": 0, "FusedGemm": 0, "QGemm": 0}
_POOL = {"MaxPool", "AveragePool", "LpPool", "QLinearAveragePool"}
_REDUCE = {
    "GlobalAveragePool",
    "GlobalMaxPool",
    "GlobalLpPool",
    "ReduceMean",
    "ReduceSum",
    "ReduceMax",
    "ReduceMin",
    "ReduceProd",
    "ReduceL2",
    "ReduceL1",
    "ReduceSumSquare",
    "ReduceLogSumExp",
    "ArgMax",
    "ArgMin",
    "QLinearGlobalAveragePool",
}


def numel(shape: Shape) -> int | None:
    if shape is None:
        return None
    return math.prod(int(d) for d in shape)


def _get(shapes: Sequence[Shape], index: int) -> Shape:
    return shapes[index] if index < len(shapes) else None


def op_cost(
    op: str, inputs: Sequence[Shape], outputs: Sequence[Shape], attrs: dict[str, object] | None = None
) -> tuple[int, int, bool]:
    """``(flops, macs, known)`` of one node. ``known`` is False when a shape was missing
    or the op is not modelled (then flops is a per-element estimate or 0)."""
    attrs = attrs or {}
    op = op.split("::")[-1]
    out = _get(outputs, 0)
    n_out = numel(out)
    if op in _CONV:
        weight = _get(inputs, _CONV[op])
        if n_out is None or weight is None or len(weight) < 2:
            return 0, 0, False
        macs = n_out * math.prod(weight[1:])
        return 2 * macs + n_out, macs, True  # + bias and the fused activation, per output element
    if op == "ConvTranspose":
        x, weight = _get(inputs, 0), _get(inputs, 1)
        n_in = numel(x)
        if n_in is None or weight is None or len(weight) < 2 or x is None or len(x) < 2:
            return 0, 0, False
        macs = n_in * math.prod(weight[1:])  # every input pixel scatters into C_out/group x k x k outputs
        return 2 * macs, macs, True
    if op in _MATMUL:
        ia, ib = _MATMUL[op]
        a, b = _get(inputs, ia), _get(inputs, ib)
        if n_out is None or a is None or not a:
            return 0, 0, False
        k = int(a[-1])
        if attrs.get("transA") and len(a) >= 2:
            k = int(a[-2])
        elif b is not None and len(b) >= 2 and k not in (b[-2], b[-1]) and len(a) >= 2:
            k = int(a[-2])  # a transposed A in a fused MatMul whose attributes the profiler does not report
        macs = n_out * k
        return 2 * macs, macs, True
    if op in _GEMM:
        a = _get(inputs, _GEMM[op])
        if out is None or n_out is None or a is None or len(out) != 2 or not out[0]:
            return 0, 0, False
        k = (numel(a) or 0) // int(out[0])
        macs = n_out * k
        return 2 * macs + n_out, macs, True
    if op in DATA_MOVEMENT:
        return 0, 0, True
    if op in _POOL:
        x = _get(inputs, 0)
        kernel = attrs.get("kernel_shape")
        if n_out is None:
            return 0, 0, False
        if isinstance(kernel, (list, tuple)):
            return n_out * math.prod(int(k) for k in kernel), 0, True
        n_in = numel(x)
        return (
            max(n_in or 0, n_out) * 2,
            0,
            n_in is not None,
        )  # each input read ~ once per overlapping window
    if op in _REDUCE:
        n_in = numel(_get(inputs, 0))
        return (n_in or 0), 0, n_in is not None
    special = _SPECIAL.get(op)
    if special is not None:
        return special(inputs, outputs, attrs)
    elementwise = op in _PER_ELEMENT or op in _ELEMENTWISE
    if n_out is None and elementwise:
        n_out = numel(_get(inputs, 0))  # a contrib or ai.onnx.ml op onnx infers no shape for: shaped as its input
    if n_out is None:
        return 0, 0, False
    return n_out * _PER_ELEMENT.get(op, 1), 0, elementwise


_ELEMENTWISE = frozenset({
    "Add", "Sub", "Mul", "Div", "Relu", "LeakyRelu", "PRelu", "Clip", "Max", "Min", "Neg", "Abs", "Where",
    "Equal", "Less", "Greater", "LessOrEqual", "GreaterOrEqual", "And", "Or", "Not", "Xor", "Sum", "Mean",
    "Floor", "Ceil", "Round", "Sign", "Reciprocal", "Mod", "BiasAdd", "Relu6", "ThresholdedRelu", "Selu",
    "Celu", "IsNaN", "IsInf", "Sin", "Cos",
})  # fmt: skip


# ---- op families whose cost is not "per output element": recurrent, attention, Einsum, ai.onnx.ml --------
Cost = tuple[int, int, bool]
CostFn = Callable[[Sequence[Shape], Sequence[Shape], dict[str, object]], Cost]
# Gates per recurrent cell: each gate is a matrix-vector product with the input and the hidden state.
_GATES = {"LSTM": 4, "DynamicQuantizeLSTM": 4, "GRU": 3, "RNN": 1}
# FLOPs per gate output element for the cell's nonlinearities and state update (sigmoid/tanh ~ 8)
_CELL_FLOPS = 8


def _recurrent(op: str) -> CostFn:
    def cost(inputs: Sequence[Shape], outputs: Sequence[Shape], attrs: dict[str, object]) -> Cost:
        x, w, r = _get(inputs, 0), _get(inputs, 1), _get(inputs, 2)
        if x is None or len(x) < 3 or w is None or r is None:
            return 0, 0, False
        # seq x batch (either layout): every step multiplies the input by W and the state by R.
        rows = int(x[0]) * int(x[1])
        macs = rows * ((numel(w) or 0) + (numel(r) or 0))
        y = _get(outputs, 0)
        # per step, gates x hidden x directions x batch outputs (Y is seq x dirs x batch x hidden)
        cells = numel(y) if y is not None else 0
        return 2 * macs + (cells or 0) * _GATES[op] * _CELL_FLOPS, macs, True

    return cost


def recurrent_steps(op: str, inputs: Sequence[Shape], attrs: dict[str, object] | None = None) -> int:
    """Time steps a recurrent node runs one after another (each a dependent matrix-vector product): 1 for
    any other op. Layout 1 puts the batch first."""
    op = op.split("::")[-1]
    x = _get(inputs, 0)
    if op not in _GATES or x is None or len(x) < 3:
        return 1
    return max(1, int(x[1] if (attrs or {}).get("layout") == 1 else x[0]))


def _attention(inputs: Sequence[Shape], outputs: Sequence[Shape], attrs: dict[str, object]) -> Cost:
    """com.microsoft Attention (QAttention): the QKV projection (input x weights), Q.K^T and the
    weighted sum over values; softmax per score."""
    x, w, out = _get(inputs, 0), _get(inputs, 1), _get(outputs, 0)
    if x is None or len(x) != 3 or w is None or len(w) != 2:
        return 0, 0, False
    b, s = int(x[0]), int(x[1])
    hidden = int(out[-1]) if out else int(w[1]) // 3  # Q, K and V of equal width unless the output says
    heads = int(attrs.get("num_heads", 1) or 1)  # type: ignore[call-overload]
    macs = b * s * (numel(w) or 0) + 2 * b * s * s * hidden
    return 2 * macs + 5 * b * heads * s * s, macs, True


def _multihead(inputs: Sequence[Shape], outputs: Sequence[Shape], attrs: dict[str, object]) -> Cost:
    """com.microsoft MultiHeadAttention: Q.K^T over L keys and the weighted sum of values (no projection)."""
    q, k, v, out = _get(inputs, 0), _get(inputs, 1), _get(inputs, 2), _get(outputs, 0)
    if q is None or len(q) < 3:
        return 0, 0, False
    b, s = int(q[0]), int(q[1])
    dv = int(out[-1]) if out else (int(v[-1]) if v is not None and len(v) == 3 else int(q[-1]))
    d = int(q[-1]) if len(q) == 3 else dv  # packed QKV (5-D): the value width
    length = int(k[1]) if k is not None and len(k) == 3 else s
    heads = int(attrs.get("num_heads", 1) or 1)  # type: ignore[call-overload]
    macs = b * s * length * (d + dv)
    return 2 * macs + 5 * b * heads * s * length, macs, True


def _einsum(inputs: Sequence[Shape], outputs: Sequence[Shape], attrs: dict[str, object]) -> Cost:
    """Einsum: one multiply-add per point of the product of every index's range (a contraction);
    a single-operand Einsum (transpose, trace, sum) reads each element once."""
    equation = attrs.get("equation")
    if isinstance(equation, bytes):
        equation = equation.decode()
    out = _get(outputs, 0)
    if not isinstance(equation, str) or any(s is None for s in inputs) or out is None:
        return 0, 0, False
    lhs = equation.replace(" ", "").split("->")[0].split(",")
    if len(lhs) != len(inputs):
        return 0, 0, False
    sizes: dict[str, int] = {}
    ellipsis = 1
    for term, shape in zip(lhs, inputs, strict=True):
        assert shape is not None
        letters = term.replace("...", "")
        extra = len(shape) - len(letters)
        if "..." in term and extra > 0:
            start = term.index("...")
            ellipsis = max(ellipsis, math.prod(int(d) for d in shape[start:start + extra]))
            shape = [*shape[:start], *shape[start + extra:]]
        if len(letters) != len(shape):
            return 0, 0, False
        for letter, dim in zip(letters, shape, strict=True):
            sizes[letter] = max(sizes.get(letter, 1), int(dim))
    points = math.prod(sizes.values()) * ellipsis
    if len(inputs) == 1:
        return points, 0, True
    macs = points * (len(inputs) - 1)
    return 2 * macs, macs, True


def _rows(x: Shape) -> int | None:
    """Samples in an ai.onnx.ml input: every dimension but the features."""
    if x is None:
        return None
    return math.prod(int(d) for d in x[:-1]) if len(x) > 1 else 1


def _tree_ensemble(inputs: Sequence[Shape], outputs: Sequence[Shape], attrs: dict[str, object]) -> Cost:
    """A tree ensemble walks each tree from its root to a leaf per sample: trees x depth comparisons
    (``trees`` and ``depth`` are read from the node's attributes by the static analysis)."""
    rows = _rows(_get(inputs, 0))
    trees, depth = attrs.get("trees"), attrs.get("depth")
    if rows is None or not isinstance(trees, int) or not isinstance(depth, int):
        return 0, 0, False
    return 2 * rows * trees * max(1, depth), 0, True  # a compare and a branch per level


def _linear_model(inputs: Sequence[Shape], outputs: Sequence[Shape], attrs: dict[str, object]) -> Cost:
    """LinearClassifier/Regressor, SVMs: one multiply-add per coefficient (per support vector and feature)
    per sample, plus the kernel's nonlinearity per support vector."""
    rows = _rows(_get(inputs, 0))
    coefficients = attrs.get("coefficients_count")
    vectors = attrs.get("support_vectors_count")
    if rows is None or not isinstance(coefficients, int):
        return 0, 0, False
    vectors = vectors if isinstance(vectors, int) else 0
    macs = rows * (coefficients + vectors)
    return 2 * macs + 4 * rows * vectors, macs, True


_SPECIAL: dict[str, CostFn] = {
    "LSTM": _recurrent("LSTM"), "GRU": _recurrent("GRU"), "RNN": _recurrent("RNN"),
    "DynamicQuantizeLSTM": _recurrent("DynamicQuantizeLSTM"),
    "Attention": _attention, "QAttention": _attention, "MultiHeadAttention": _multihead, "Einsum": _einsum,
    "TreeEnsembleClassifier": _tree_ensemble, "TreeEnsembleRegressor": _tree_ensemble, "TreeEnsemble": _tree_ensemble,
    "LinearClassifier": _linear_model, "LinearRegressor": _linear_model,
    "SVMClassifier": _linear_model, "SVMRegressor": _linear_model,
}  # fmt: skip
# ops whose work is a matrix product in all but name (the device model counts them as dense)
MATRIX_LIKE = frozenset({*_GATES, "Attention", "QAttention", "MultiHeadAttention", "Einsum", "LinearClassifier",
                         "LinearRegressor", "SVMClassifier", "SVMRegressor"})


def node_totals(nodes: list[dict[str, Any]]) -> dict[str, Any]:
    """The whole graph's ``flops``, ``macs``, ``bytes_moved`` and per-op ``op_costs`` (count, flops,
    bytes; costliest first) from its node records, the same for every format's static walk."""
    op_totals: dict[str, dict[str, int]] = {}
    for node in nodes:
        entry = op_totals.setdefault(node["op"], {"count": 0, "flops": 0, "bytes": 0})
        entry["count"] += 1
        entry["flops"] += node["flops"]
        entry["bytes"] += node["bytes_read"] + node["bytes_written"]
    return {
        "flops": sum(n["flops"] for n in nodes),
        "macs": sum(n["macs"] for n in nodes),
        "bytes_moved": sum(n["bytes_read"] + n["bytes_written"] for n in nodes),
        "op_costs": dict(sorted(op_totals.items(), key=lambda kv: kv[1]["flops"], reverse=True)),
    }
