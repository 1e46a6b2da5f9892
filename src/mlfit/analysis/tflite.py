"""Static facts of a TFLite flatbuffer in the same structure as the ONNX analysis
(:func:`mlfit.analysis.graph.analyze_onnx`), so the same fitted device model projects a network
whatever format it comes in (DESIGN.md, "one method per network, whatever its format").

Read with the one bounded flatbuffer reader (:mod:`mlfit.formats._wire.flatbuffers`); no
interpreter, no TensorFlow. TFLite tensors carry concrete shapes (a free batch dim is stored as 1
with -1 in ``shape_signature``), so no shape inference is needed.

Each operator becomes a node named by the ONNX op of the same class (CONV_2D -> Conv with group 1,
DEPTHWISE_CONV_2D -> Conv with group = channels, FULLY_CONNECTED -> Gemm, BATCH_MATMUL -> MatMul,
ADD -> Add, ...), with its TFLite name kept in ``tflite_op``. A fused activation (CONV_2D with
RELU6 fused) becomes a node of its own, as the ONNX export of the same network has it (Conv then
Clip): the device model was fitted on the ONNX structure of the published networks, and the two
formats of one network must give it the same structure. FLOPs/MACs follow the ONNX analysis's
conventions (one MAC = two FLOPs; MACs for convolutions and matrix products only). Only the main
subgraph is costed (WHILE/IF bodies are not counted, as in the ONNX analysis), and the report says so.
"""

from __future__ import annotations

import math
import mmap
from collections import Counter
from pathlib import Path
from typing import Any

from mlfit.analysis.costs import FUSED_ACTIVATIONS, FUSING_PRODUCERS, node_totals, op_cost
from mlfit.errors import ModelError
from mlfit.formats._wire.flatbuffers import FlatBuffer, FlatError
from mlfit.formats.tflite import TFLITE_DTYPES

MAX_OPERATORS = 2_000_000
MAX_TENSORS = 4_000_000
MAX_SUBGRAPHS = 10_000
# Integer constants up to this many elements are shapes, axes and paddings, not weights (as in
# the ONNX analysis's count of Constant nodes).
_CONSTANT_PARAM_MIN_INT_ELEMENTS = 64

_ITEMSIZE = {"float32": 4, "float16": 2, "int32": 4, "uint8": 1, "int64": 8, "bool": 1, "int16": 2, "int8": 1,
             "float64": 8, "uint64": 8, "uint32": 4, "uint16": 2, "string": 1}

# TFLite builtin code -> (TFLite name, the ONNX op of the same cost class). Codes from schema.fbs
# (BuiltinOperator); an op missing here keeps its TFLite name and counts as of unknown cost.
_OPS: dict[int, tuple[str, str]] = {
    0: ("ADD", "Add"), 1: ("AVERAGE_POOL_2D", "AveragePool"), 2: ("CONCATENATION", "Concat"),
    3: ("CONV_2D", "Conv"), 4: ("DEPTHWISE_CONV_2D", "Conv"), 5: ("DEPTH_TO_SPACE", "DepthToSpace"),
    6: ("DEQUANTIZE", "DequantizeLinear"), 7: ("EMBEDDING_LOOKUP", "Gather"), 8: ("FLOOR", "Floor"),
    9: ("FULLY_CONNECTED", "Gemm"), 11: ("L2_NORMALIZATION", "LpNormalization"), 12: ("L2_POOL_2D", "LpPool"),
    13: ("LOCAL_RESPONSE_NORMALIZATION", "LRN"), 14: ("LOGISTIC", "Sigmoid"), 17: ("MAX_POOL_2D", "MaxPool"),
    18: ("MUL", "Mul"), 19: ("RELU", "Relu"), 20: ("RELU_N1_TO_1", "Clip"), 21: ("RELU6", "Clip"),
    22: ("RESHAPE", "Reshape"), 23: ("RESIZE_BILINEAR", "Resize"), 25: ("SOFTMAX", "Softmax"),
    26: ("SPACE_TO_DEPTH", "SpaceToDepth"), 28: ("TANH", "Tanh"), 34: ("PAD", "Pad"), 36: ("GATHER", "Gather"),
    39: ("TRANSPOSE", "Transpose"), 40: ("MEAN", "ReduceMean"), 41: ("SUB", "Sub"), 42: ("DIV", "Div"),
    43: ("SQUEEZE", "Squeeze"), 44: ("UNIDIRECTIONAL_SEQUENCE_LSTM", "LSTM"), 45: ("STRIDED_SLICE", "Slice"),
    47: ("EXP", "Exp"), 49: ("SPLIT", "Split"), 50: ("LOG_SOFTMAX", "LogSoftmax"), 53: ("CAST", "Cast"),
    54: ("PRELU", "PRelu"), 55: ("MAXIMUM", "Max"), 56: ("ARG_MAX", "ArgMax"), 57: ("MINIMUM", "Min"),
    58: ("LESS", "Less"), 59: ("NEG", "Neg"), 60: ("PADV2", "Pad"), 61: ("GREATER", "Greater"),
    64: ("SELECT", "Where"), 65: ("SLICE", "Slice"), 66: ("SIN", "Sin"), 67: ("TRANSPOSE_CONV", "ConvTranspose"),
    69: ("TILE", "Tile"), 70: ("EXPAND_DIMS", "Unsqueeze"), 71: ("EQUAL", "Equal"), 73: ("LOG", "Log"),
    74: ("SUM", "ReduceSum"), 75: ("SQRT", "Sqrt"), 76: ("RSQRT", "Sqrt"), 77: ("SHAPE", "Shape"),
    78: ("POW", "Pow"), 79: ("ARG_MIN", "ArgMin"), 81: ("REDUCE_PROD", "ReduceProd"),
    82: ("REDUCE_MAX", "ReduceMax"), 83: ("PACK", "Concat"), 88: ("UNPACK", "Split"),
    89: ("REDUCE_MIN", "ReduceMin"), 92: ("SQUARE", "Mul"), 97: ("RESIZE_NEAREST_NEIGHBOR", "Resize"),
    98: ("LEAKY_RELU", "LeakyRelu"), 99: ("SQUARED_DIFFERENCE", "Sub"), 100: ("MIRROR_PAD", "Pad"),
    101: ("ABS", "Abs"), 102: ("SPLIT_V", "Split"), 104: ("CEIL", "Ceil"), 106: ("ADD_N", "Sum"),
    107: ("GATHER_ND", "GatherND"), 108: ("COS", "Cos"), 111: ("ELU", "Elu"), 114: ("QUANTIZE", "QuantizeLinear"),
    116: ("ROUND", "Round"), 117: ("HARD_SWISH", "HardSwish"), 118: ("IF", "If"), 119: ("WHILE", "Loop"),
    122: ("SCATTER_ND", "ScatterND"), 123: ("SELECT_V2", "Where"), 126: ("BATCH_MATMUL", "MatMul"),
    130: ("BROADCAST_TO", "Expand"), 150: ("GELU", "Gelu"), 32: ("CUSTOM", "CUSTOM"),
}  # fmt: skip
_CONV_2D, _DEPTHWISE, _FULLY_CONNECTED, _BATCH_MATMUL, _TRANSPOSE_CONV = 3, 4, 9, 126, 67
_POOLS = {1, 12, 17}
_LSTM = 44
_WHILE, _LESS = 119, 58
_CONTROL_FLOW = {118, 119}
# Ops whose options table starts with a fused activation: code -> the field index that holds it.
_FUSED_FIELD = {0: 0, 18: 0, 41: 0, 42: 0, 9: 0, 3: 3, 4: 4, 1: 5, 17: 5, 12: 5, 2: 1}
_ACTIVATIONS = {1: "Relu", 2: "Clip", 3: "Clip", 4: "Tanh"}  # ActivationFunctionType -> ONNX op


class _Graph:
    """The tensors (dtype, shape, constant or not) and operators of one flatbuffer."""

    def __init__(self, flat: FlatBuffer, index: int = 0, parent: _Graph | None = None) -> None:
        self.flat = flat
        if parent is None:
            root = flat.deref(0)
            self.codes = [self._code(c) for c in flat.tables(root, 1, 100_000)]
            self.subgraphs = flat.tables(root, 2, MAX_SUBGRAPHS)
            if not self.subgraphs:
                raise FlatError("the model has no subgraph")
            self.buffers = flat.tables(root, 4, MAX_TENSORS)
        else:
            self.codes, self.subgraphs, self.buffers = parent.codes, parent.subgraphs, parent.buffers
        self.depth: int = parent.depth + 1 if parent is not None else 0
        graph = self.subgraphs[index]
        self.tensors = flat.tables(graph, 0, MAX_TENSORS)
        self.operators = flat.tables(graph, 3, MAX_OPERATORS)
        self.inputs = [int(i) for i in flat.ints(graph, 1)]
        self.outputs = [int(i) for i in flat.ints(graph, 2)]
        self.dtype = [TFLITE_DTYPES.get(flat.byte(t, 1), "undefined") for t in self.tensors]
        self.shape = [[max(0, int(d)) for d in flat.ints(t, 0)] for t in self.tensors]
        self.constant = [self._has_data(t) for t in self.tensors]

    def _code(self, table: int) -> int:
        deprecated = self.flat.byte(table, 0)
        pos = self.flat.field(table, 3)
        return max(deprecated, self.flat.i32(pos) if pos is not None else 0)

    def _has_data(self, tensor: int) -> bool:
        pos = self.flat.field(tensor, 2)
        index = self.flat.u32(pos) if pos is not None else 0
        if not 0 < index < len(self.buffers):
            return False
        buffer = self.buffers[index]
        _, length = self.flat.vector(buffer, 0)
        size = self.flat.field(buffer, 2)  # data stored past the flatbuffer (models over 2 GB)
        return length > 0 or (size is not None and self.flat.u64(size) > 0)

    def int_value(self, index: int) -> int | None:
        """The value of a constant int32/int64 scalar (or one-element) tensor; None otherwise."""
        if not (0 <= index < len(self.tensors) and self.constant[index]) or math.prod(self.shape[index]) != 1:
            return None
        pos = self.flat.field(self.tensors[index], 2)
        data, length = self.flat.vector(self.buffers[self.flat.u32(pos)], 0) if pos is not None else (0, 0)
        if self.dtype[index] == "int32" and length == 4:
            return self.flat.i32(data)
        if self.dtype[index] == "int64" and length == 8:
            return int(self.flat.u64(data))
        return None

    def sub(self, index: int) -> _Graph | None:
        """Another subgraph (a WHILE's condition or body), read with this one's tables; None when the
        index is out of range or the nesting is deeper than any real model's."""
        if not 0 <= index < len(self.subgraphs) or self.depth >= 8:
            return None
        return _Graph(self.flat, index, self)

    def nbytes(self, index: int) -> int:
        if not 0 <= index < len(self.tensors):
            return 0
        return math.prod(self.shape[index]) * _ITEMSIZE.get(self.dtype[index], 4)

    def shape_of(self, index: int) -> list[int] | None:
        return self.shape[index] if 0 <= index < len(self.tensors) else None

    def op(self, operator: int) -> tuple[int, list[int], list[int]]:
        pos = self.flat.field(operator, 0)
        index = self.flat.u32(pos) if pos is not None else 0
        code = self.codes[index] if index < len(self.codes) else -1
        return code, [int(i) for i in self.flat.ints(operator, 1)], [int(i) for i in self.flat.ints(operator, 2)]

    def option(self, operator: int, field: int, byte: bool = False) -> int:
        """A scalar field of the operator's builtin options table (0 when absent): a byte-wide one
        (enums such as the fused activation, bools) with ``byte``, else an int32."""
        pos = self.flat.field(operator, 4)
        if pos is None:
            return 0
        at = self.flat.field(self.flat.deref(pos), field)
        if at is None:
            return 0
        return self.flat.u8(at) if byte else self.flat.i32(at)


def _dense_cost(code: int, graph: _Graph, operator: int, ins: list[int], outs: list[int]) -> tuple[int, int, int]:
    """(FLOPs, MACs, group) of a convolution or matrix product in TFLite's layouts (NHWC
    activations; CONV_2D weights [O, kh, kw, I], DEPTHWISE [1, kh, kw, O], FULLY_CONNECTED [O, I])."""
    out = graph.shape_of(outs[0]) if outs else None
    weight = graph.shape_of(ins[1]) if len(ins) > 1 else None
    n_out = math.prod(out) if out else 0
    if not out or not weight:
        return 0, 0, 1
    if code == _CONV_2D:
        macs = n_out * math.prod(weight[1:])
        return 2 * macs + n_out, macs, 1
    if code == _DEPTHWISE:
        macs = n_out * math.prod(weight[1:3])
        channels = graph.shape_of(ins[0]) or [1]
        return 2 * macs + n_out, macs, max(2, int(channels[-1]))
    if code == _FULLY_CONNECTED:
        macs = n_out * int(weight[-1])
        return 2 * macs + n_out, macs, 1
    if code == _TRANSPOSE_CONV:  # inputs: output shape, weights [O, kh, kw, I], input
        x = graph.shape_of(ins[2]) if len(ins) > 2 else None
        macs = (math.prod(x) if x else 0) * math.prod(weight[:3])
        return 2 * macs, macs, 1
    a = graph.shape_of(ins[0]) or [1]  # BATCH_MATMUL (adj_x: the contraction is a's second-last dim)
    k = int(a[-2]) if graph.option(operator, 0, byte=True) and len(a) >= 2 else int(a[-1])
    macs = n_out * k
    return 2 * macs, macs, 1


def _lstm_cost(graph: _Graph, operator: int, ins: list[int]) -> tuple[int, int, int]:
    """UNIDIRECTIONAL_SEQUENCE_LSTM as the ONNX analysis costs LSTM: per step four gates of (input +
    recurrent) matrix products plus 8 FLOPs per gate output for the cell; (FLOPs, MACs, steps).
    Input [B, T, I], or [T, B, I] with ``time_major`` (options field 3); input-to-forget weights [H, I]."""
    x = graph.shape_of(ins[0]) if ins else None
    w = graph.shape_of(ins[2]) if len(ins) > 2 and ins[2] >= 0 else None  # input_to_forget_weights (always set)
    if not x or not w or len(x) < 3:
        return 0, 0, 1
    steps = int(x[0]) if graph.option(operator, 3, byte=True) else int(x[1])
    rows = int(x[0]) * int(x[1])
    hidden, features = int(w[0]), int(w[-1])
    macs = rows * 4 * hidden * (features + hidden)
    return 2 * macs + rows * hidden * 4 * 8, macs, max(1, steps)


def _trip_count(graph: _Graph, cond: _Graph, ins: list[int]) -> int | None:
    """A WHILE's static trip count: its condition compares a loop variable that starts at a constant
    with a constant bound (``i < n``, as a Keras RNN's loop is converted); the least such bound wins
    (a Keras RNN checks both the step and the iteration counter). None when not that shape."""
    trips = []
    for operator in cond.operators:
        code, cins, _ = cond.op(operator)
        if code != _LESS or len(cins) != 2:
            continue
        bound = cond.int_value(cins[1])
        slot = cond.inputs.index(cins[0]) if cins[0] in cond.inputs else -1
        start = graph.int_value(ins[slot]) if 0 <= slot < len(ins) else None
        if bound is not None and start is not None and bound > start:
            trips.append(bound - start)
    return min(trips) if trips else None


def _while_cost(graph: _Graph, operator: int, ins: list[int]) -> tuple[int, int, int, bool]:
    """(FLOPs, MACs, trip count, known) of a WHILE: its body's cost times a static trip count
    (WhileOptions: cond_subgraph_index 0, body_subgraph_index 1); unknown without one."""
    cond, body = graph.sub(graph.option(operator, 0)), graph.sub(graph.option(operator, 1))
    trips = _trip_count(graph, cond, ins) if cond is not None else None
    if body is None or trips is None:
        return 0, 0, 1, False
    flops = macs = 0
    known = True
    for index, inner in enumerate(body.operators):
        made, ok = _node(body, inner, index)
        flops += sum(int(n["flops"]) for n in made)
        macs += sum(int(n["macs"]) for n in made)
        known = known and ok
    return flops * trips, macs * trips, trips, known


def _node(graph: _Graph, operator: int, index: int) -> tuple[list[dict[str, Any]], bool]:
    """The node(s) of one operator (with its fused activation), and whether its cost is known."""
    code, ins, outs = graph.op(operator)
    tfl, onnx_op = _OPS.get(code, (f"BUILTIN_{code}", f"tflite::BUILTIN_{code}"))
    in_shapes = [graph.shape_of(i) if i >= 0 else None for i in ins]
    out_shapes = [graph.shape_of(i) for i in outs]
    group, known, steps = 1, True, 1
    if code in (_CONV_2D, _DEPTHWISE, _FULLY_CONNECTED, _BATCH_MATMUL, _TRANSPOSE_CONV):
        flops, macs, group = _dense_cost(code, graph, operator, ins, outs)
        known = macs > 0
    elif code in _POOLS:
        kernel = [graph.option(operator, 4), graph.option(operator, 3)]
        flops, macs, known = op_cost(onnx_op, in_shapes, out_shapes, {"kernel_shape": kernel})
    elif code == _LSTM:
        flops, macs, steps = _lstm_cost(graph, operator, ins)
        known = macs > 0
    elif code == _WHILE:
        flops, macs, steps, known = _while_cost(graph, operator, ins)
    elif code in _OPS and code not in _CONTROL_FLOW and code != 32:
        flops, macs, known = op_cost(onnx_op, in_shapes, out_shapes)
    else:  # custom ops, control flow, builtins without a cost class here
        flops, macs, known = 0, 0, False
    read = [graph.nbytes(i) for i in ins if i >= 0]
    written = [graph.nbytes(i) for i in outs]
    name = f"{tfl}_{index}"
    nodes = [{
        "name": name, "op": onnx_op, "tflite_op": tfl, "flops": flops, "macs": macs,
        "bytes_read": sum(read), "bytes_written": sum(written),
        "param_bytes": sum(graph.nbytes(i) for i in ins if i >= 0 and graph.constant[i]), "group": group,
        # as the ONNX analysis marks them: an op whose cost is not read takes its host-measured time
        "cost_known": known,
    }]
    if steps > 1:  # recurrent steps and loop bodies run their kernels one after another; products are dense
        nodes[0].update(steps=steps, matrix_flops=2 * macs)
    fused = graph.option(operator, _FUSED_FIELD[code], byte=True) if code in _FUSED_FIELD else 0
    if fused in _ACTIVATIONS and outs:
        size = graph.nbytes(outs[0])
        elements = math.prod(graph.shape_of(outs[0]) or [0])
        act = _ACTIVATIONS[fused]
        flops_act, _, _ = op_cost(act, [graph.shape_of(outs[0])], [graph.shape_of(outs[0])])
        nodes.append({"name": f"{name}/fused_{act.lower()}", "op": act, "tflite_op": f"{tfl} (fused)",
                      "flops": flops_act or elements, "macs": 0, "bytes_read": size, "bytes_written": size,
                      "param_bytes": 0, "group": 1, "cost_known": True,
                      # fused into its producer by the file; marked as the ONNX walk marks it (a clamp
                      # after a convolution or matrix product), so one network has one structure
                      "fused": nodes[0]["op"] in FUSING_PRODUCERS and act in FUSED_ACTIVATIONS})
    return nodes, known


def _activation_sweep(graph: _Graph) -> tuple[int, list[dict[str, Any]]]:
    """Peak bytes of live activations over the operators in file order (constants apart), and the
    largest activations, as the ONNX analysis computes them."""
    ops = [graph.op(o) for o in graph.operators]
    last_use: dict[int, int] = {}
    for i, (_, ins, _) in enumerate(ops):
        for t in ins:
            last_use[t] = i
    keep = set(graph.outputs)
    live = {t: graph.nbytes(t) for t in graph.inputs if 0 <= t < len(graph.tensors)}
    total = peak = sum(live.values())
    sizes: dict[int, int] = {}
    for i, (_, ins, outs) in enumerate(ops):
        for t in outs:
            if 0 <= t < len(graph.tensors) and not graph.constant[t]:
                size = graph.nbytes(t)
                total += size - live.get(t, 0)
                live[t] = size
                sizes[t] = size
        peak = max(peak, total)
        for t in ins:
            if last_use.get(t) == i and t in live and t not in keep:
                total -= live.pop(t)
    largest = sorted(sizes.items(), key=lambda kv: kv[1], reverse=True)[:5]
    name = graph.flat.string
    return peak, [{"name": name(graph.tensors[t], 3), "bytes": b, "shape": graph.shape[t]} for t, b in largest if b]


def _parameters(graph: _Graph) -> tuple[int, Counter[str], list[dict[str, Any]]]:
    """Constant tensors that are weights: floating ones, and integer ones past a shape's size."""
    count = 0
    by_dtype: Counter[str] = Counter()
    found: list[tuple[int, int]] = []
    for t, constant in enumerate(graph.constant):
        if not constant:
            continue
        elements = math.prod(graph.shape[t]) if graph.shape[t] else 1
        dtype = graph.dtype[t]
        if not dtype.startswith("float") and elements <= _CONSTANT_PARAM_MIN_INT_ELEMENTS:
            continue
        count += elements
        by_dtype[dtype] += graph.nbytes(t)
        found.append((graph.nbytes(t), t))
    top = [{"name": graph.flat.string(graph.tensors[t], 3), "bytes": b, "shape": graph.shape[t],
            "dtype": graph.dtype[t]} for b, t in sorted(found, reverse=True)[:5]]
    return count, by_dtype, top


def _io(graph: _Graph, indices: list[int]) -> list[dict[str, Any]]:
    from mlfit.formats.base import free_leading

    out = []
    for t in indices:
        if not 0 <= t < len(graph.tensors):
            continue
        signature = graph.flat.ints(graph.tensors[t], 7) or graph.shape[t]
        out.append({"name": graph.flat.string(graph.tensors[t], 3), "dtype": graph.dtype[t],
                    "shape": free_leading(signature)})
    return out


def _facts(graph: _Graph) -> dict[str, Any]:
    histogram: Counter[str] = Counter()
    for sub in graph.subgraphs:
        for operator in graph.flat.tables(sub, 3, MAX_OPERATORS):
            code, _, _ = graph.op(operator)
            histogram[_OPS.get(code, (f"BUILTIN_{code}", ""))[0]] += 1
    nodes: list[dict[str, Any]] = []
    unknown = 0
    for index, operator in enumerate(graph.operators):
        made, known = _node(graph, operator, index)
        nodes.extend(made)
        unknown += 0 if known else 1
    params, by_dtype, top_params = _parameters(graph)
    inputs, outputs = _io(graph, graph.inputs), _io(graph, graph.outputs)
    peak, top_acts = _activation_sweep(graph)
    control = sorted({_OPS[c][0] for c, _, _ in map(graph.op, graph.operators) if c in _CONTROL_FLOW})
    used = {graph.dtype[t] for t in range(len(graph.tensors))}
    return {
        "format": "tflite",
        "ops": dict(histogram.most_common()),
        "node_count": sum(histogram.values()),
        "subgraphs": len(graph.subgraphs),
        "parameters": params,
        "parameter_bytes": dict(by_dtype),
        "inputs": inputs,
        "outputs": outputs,
        "dynamic_dims": sorted({d for t in inputs for d in t["shape"] if isinstance(d, str)}),
        "control_flow": control,
        "custom_ops": sorted({n for n in histogram if n == "CUSTOM"}),
        "top_initializers": top_params,
        "dtypes": sorted(used - {"undefined", ""}),
        "activation_peak_bytes": peak,
        "top_activations": top_acts,
        **node_totals(nodes),
        "shape_inference": {
            "method": "tflite flatbuffer shapes (batch as stored in the file)",
            "assumed_dims": {}, "values_bound": [], "nodes_with_unknown_cost": unknown,
            "note": ("a WHILE counts its body times a static trip count (i < n from constants); other "
                     "control-flow bodies are not counted" if control else ""),
        },
        "nodes": nodes,
    }


def analyze_tflite(path: Path) -> dict[str, Any]:
    """The static facts of a .tflite file (see the module's docstring); ModelError (exit 3) for a
    flatbuffer whose offsets point outside it."""
    from mlfit import safeio

    try:
        with safeio.open_regular(path, "the TFLite model") as fh, \
                mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as buf:
            return _facts(_Graph(FlatBuffer(buf)))
    except (FlatError, ValueError) as exc:
        raise ModelError(f"{path}: the TFLite flatbuffer cannot be read ({exc})",
                         "re-export it with tf.lite.TFLiteConverter") from None
