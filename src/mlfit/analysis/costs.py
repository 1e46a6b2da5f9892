"""FLOPs and multiply-accumulates of one operator, from its input and output shapes.

Shared by the static graph analysis (shapes from shape inference) and the projection
(shapes that onnxruntime's node profiler reports for the nodes it really ran, fused or
not). Convention: a multiply-add is one MAC and two FLOPs; MACs are counted for the
matrix ops (Conv, ConvTranspose, MatMul, Gemm and their fused/quantized forms) as in
the papers that publish them; every other op counts FLOPs per output element.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

Shape = Sequence[int] | None

# Ops that move or view data and compute nothing.
DATA_MOVEMENT = frozenset({
    "Reshape", "Transpose", "Gather", "GatherElements", "GatherND", "Concat", "Slice", "Split", "Squeeze",
    "Unsqueeze", "Flatten", "Identity", "Cast", "Shape", "Size", "Expand", "Pad", "Tile", "ReorderInput",
    "ReorderOutput", "Constant", "ConstantOfShape", "ScatterND", "ScatterElements", "DepthToSpace",
    "SpaceToDepth", "NonZero", "Range", "Dropout", "MemcpyToHost", "MemcpyFromHost", "QuantizeLinear",
    "DequantizeLinear", "DynamicQuantizeLinear", "Trilu", "OneHot", "Compress",
})  # fmt: skip
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
    if op in ("Attention", "MultiHeadAttention"):
        return 0, 0, False
    if n_out is None:
        return 0, 0, False
    return n_out * _PER_ELEMENT.get(op, 1), 0, op in _PER_ELEMENT or op in _ELEMENTWISE


_ELEMENTWISE = frozenset({
    "Add", "Sub", "Mul", "Div", "Relu", "LeakyRelu", "PRelu", "Clip", "Max", "Min", "Neg", "Abs", "Where",
    "Equal", "Less", "Greater", "LessOrEqual", "GreaterOrEqual", "And", "Or", "Not", "Xor", "Sum", "Mean",
    "Floor", "Ceil", "Round", "Sign", "Reciprocal", "Mod", "BiasAdd", "Relu6", "ThresholdedRelu", "Selu",
    "Celu", "IsNaN", "IsInf", "Sin", "Cos",
})  # fmt: skip
