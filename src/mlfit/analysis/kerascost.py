"""FLOPs and MACs of a Keras model, from its config alone (no runtime, no model code).

Each layer is costed as the ONNX op it lowers to, through :func:`mlfit.analysis.costs.op_cost`
(one convention for every format: a multiply-add is one MAC and two FLOPs; Conv adds one FLOP per
output for the bias), plus its bias and activation as the element-wise ops they are. Shapes come
from the config: Keras 3 records each layer's input shape (``build_config``, or the tensors of its
inbound nodes); otherwise they are carried from the layer before (Sequential) or the named inbound
layers (Functional). A free batch dim counts as 1: FLOPs per inference of one sample. A layer
without a formula here (attention, custom layers) is counted as unknown and named, never as zero.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from mlfit.analysis.costs import op_cost
from mlfit.formats.keras import inbound_names

Shape = list[int]
Out = tuple[Shape | None, int, int, bool]  # (output shape, FLOPs, MACs, known)

# Keras activation names -> the ONNX op op_cost knows them by ("linear": nothing to count).
_ACTIVATIONS = {
    "relu": "Relu", "relu6": "Relu6", "sigmoid": "Sigmoid", "tanh": "Tanh", "softmax": "Softmax",
    "log_softmax": "LogSoftmax", "gelu": "Gelu", "swish": "Swish", "silu": "Swish", "elu": "Elu", "selu": "Selu",
    "softplus": "Softplus", "hard_sigmoid": "HardSigmoid", "hard_swish": "HardSwish", "hard_silu": "HardSwish",
    "leaky_relu": "LeakyRelu", "mish": "Mish", "exponential": "Exp",
}  # fmt: skip
_MERGE = {"Add": "Add", "Subtract": "Sub", "Multiply": "Mul", "Average": "Mean", "Maximum": "Max", "Minimum": "Min"}
_NORMS = {"BatchNormalization": "BatchNormalization", "LayerNormalization": "LayerNormalization",
          "GroupNormalization": "GroupNormalization", "UnitNormalization": "LpNormalization",
          "Rescaling": "Scaler", "Normalization": "Scaler"}
# Layers that move or pass data through unchanged in shape: no FLOPs.
_IDENTITY = frozenset({"Dropout", "SpatialDropout1D", "SpatialDropout2D", "SpatialDropout3D", "GaussianNoise",
                       "GaussianDropout", "AlphaDropout", "ActivityRegularization", "Identity", "Masking",
                       "Permute"})
_RECURRENT = {"LSTM": ("LSTM", 4), "GRU": ("GRU", 3), "SimpleRNN": ("RNN", 1)}
MAX_DEPTH = 32


@dataclass
class _Totals:
    flops: int = 0
    macs: int = 0
    by_layer: dict[str, dict[str, int]] = field(default_factory=dict)
    unknown: dict[str, int] = field(default_factory=dict)  # layer class -> layers not counted


def _concrete(shape: Any) -> Shape | None:
    """A config shape with the free batch as 1; None where any other dim is free."""
    if not isinstance(shape, list) or not all(d is None or isinstance(d, int) for d in shape):
        return None
    dims = [1 if d is None and i == 0 else d for i, d in enumerate(shape)]
    return [int(d) for d in dims] if all(isinstance(d, int) and d >= 0 for d in dims) else None


def _shapes(value: Any) -> list[Any]:
    """One shape or several (a list of shapes, or a dict of them) as a list of shapes."""
    if isinstance(value, dict):
        return list(value.values())
    if isinstance(value, list) and value and all(isinstance(v, (list, dict)) or v is None for v in value) \
            and any(isinstance(v, (list, dict)) for v in value):
        return value
    return [value]


def _tensor_shapes(node: Any, out: list[Any], depth: int = 0) -> None:
    """Shapes of the Keras 3 ``__keras_tensor__`` records in an inbound node."""
    if depth > MAX_DEPTH:
        return
    if isinstance(node, dict):
        if node.get("class_name") == "__keras_tensor__":
            out.append((node.get("config") or {}).get("shape"))
            return
        for value in node.values():
            _tensor_shapes(value, out, depth + 1)
    elif isinstance(node, list):
        for value in node:
            _tensor_shapes(value, out, depth + 1)


def _inputs(layer: dict[str, Any], outputs: dict[str, list[Shape | None]], previous: list[Shape | None] | None
            ) -> list[Shape | None]:
    built = (layer.get("build_config") or {}).get("input_shape") if isinstance(layer.get("build_config"), dict) \
        else None
    if built is not None:
        return [_concrete(s) for s in _shapes(built)]
    nodes = layer.get("inbound_nodes") or []
    found: list[Any] = []
    _tensor_shapes(nodes[:1], found)
    if found:
        return [_concrete(s) for s in found]
    named = [outputs[n][0] for n in inbound_names(layer) if outputs.get(n)]
    return named if named else list(previous or [])


def _spatial(size: int, kernel: int, stride: int, dilation: int, padding: str) -> int:
    if padding == "valid":
        return max(0, (size - dilation * (kernel - 1) - 1) // stride + 1)
    return -(-size // stride)  # "same" and "causal"


def _tuple(value: Any, rank: int, default: int) -> list[int]:
    if value is None:
        return [default] * rank
    values = list(value) if isinstance(value, (list, tuple)) else [value]
    return [int(v) for v in (values * rank if len(values) == 1 else values)][:rank]


def _window(cfg: dict[str, Any], x: Shape, rank: int, kernel_key: str, stride_key: str
            ) -> tuple[list[int], list[int], int]:
    """(spatial output dims, kernel, channel axis) of a convolution or pooling window."""
    first = cfg.get("data_format") == "channels_first"
    spatial = x[2:] if first else x[1:-1]
    kernel = _tuple(cfg.get(kernel_key), rank, 1)
    strides = _tuple(cfg.get(stride_key), rank, 1) if cfg.get(stride_key) is not None else kernel
    dilation = _tuple(cfg.get("dilation_rate"), rank, 1)
    padding = str(cfg.get("padding", "valid")).lower()
    dims = [_spatial(n, k, s, d, padding) for n, k, s, d in zip(spatial, kernel, strides, dilation, strict=False)]
    return dims, kernel, 1 if first else len(x) - 1


def _place(x: Shape, dims: list[int], channels: int, axis: int) -> Shape:
    return [x[0], channels, *dims] if axis == 1 else [x[0], *dims, channels]


def _activation(cfg: dict[str, Any], out: Shape) -> tuple[int, bool]:
    name = cfg.get("activation")
    if name in (None, "linear"):
        return 0, True
    flops, _, known = op_cost(_ACTIVATIONS.get(str(name), str(name)), [out], [out])
    return flops, known and str(name) in _ACTIVATIONS


def _conv(cls: str, cfg: dict[str, Any], x: Shape) -> Out:
    rank = int(cls[-2]) if cls[-2].isdigit() else 2
    if len(x) != rank + 2:
        return None, 0, 0, False
    dims, kernel, axis = _window(cfg, x, rank, "kernel_size", "strides")
    cin = x[axis]
    if cls.startswith("Depthwise"):
        cout = cin * int(cfg.get("depth_multiplier", 1))
        out = _place(x, dims, cout, axis)
        flops, macs, known = op_cost("Conv", [x, [cout, 1, *kernel]], [out])
    elif cls.startswith("Separable"):
        mid = cin * int(cfg.get("depth_multiplier", 1))
        cout = int(cfg.get("filters", 0))
        depthwise = op_cost("Conv", [x, [mid, 1, *kernel]], [_place(x, dims, mid, axis)])
        out = _place(x, dims, cout, axis)
        pointwise = op_cost("Conv", [x, [cout, mid, *[1] * rank]], [out])
        flops, macs, known = depthwise[0] + pointwise[0], depthwise[1] + pointwise[1], depthwise[2] and pointwise[2]
    elif "Transpose" in cls:
        cout = int(cfg.get("filters", 0))
        strides = _tuple(cfg.get("strides"), rank, 1)
        spatial = x[2:] if axis == 1 else x[1:-1]
        grown = [n * s if cfg.get("padding") == "same" else (n - 1) * s + k
                 for n, s, k in zip(spatial, strides, kernel, strict=False)]
        out = _place(x, grown, cout, axis)
        flops, macs, known = op_cost("ConvTranspose", [[x[0], cin, *spatial], [cin, cout, *kernel]], [out])
    else:
        cout = int(cfg.get("filters", 0))
        groups = int(cfg.get("groups", 1) or 1)
        out = _place(x, dims, cout, axis)
        flops, macs, known = op_cost("Conv", [x, [cout, cin // groups, *kernel]], [out])
    extra, act_known = _activation(cfg, out)
    return out, flops + extra, macs, known and act_known


def _dense(cfg: dict[str, Any], x: Shape) -> Out:
    units = int(cfg.get("units", 0))
    out = [*x[:-1], units]
    flops, macs, known = op_cost("MatMul", [x, [x[-1], units]], [out])
    bias = math.prod(out) if cfg.get("use_bias", True) else 0
    extra, act_known = _activation(cfg, out)
    return out, flops + bias + extra, macs, known and act_known


def _pool(cls: str, cfg: dict[str, Any], x: Shape) -> Out:
    rank = int(cls[-2]) if cls[-2].isdigit() else 2
    if len(x) != rank + 2:
        return None, 0, 0, False
    if cls.startswith("Global"):
        first = cfg.get("data_format") == "channels_first"
        channels = x[1] if first else x[-1]
        out = [x[0], channels] if not cfg.get("keepdims") else _place(x, [1] * rank, channels, 1 if first else -1)
        flops, macs, known = op_cost("GlobalAveragePool", [x], [out])
        return out, flops, macs, known
    dims, kernel, axis = _window(cfg, x, rank, "pool_size", "strides")
    out = _place(x, dims, x[axis], axis)
    flops, macs, known = op_cost("MaxPool", [x], [out], {"kernel_shape": kernel})
    return out, flops, macs, known


def _recurrent(cls: str, cfg: dict[str, Any], x: Shape) -> Out:
    if len(x) != 3:
        return None, 0, 0, False
    op, gates = _RECURRENT[cls]
    batch, steps, features = x
    units = int(cfg.get("units", 0))
    out = [batch, steps, units] if cfg.get("return_sequences") else [batch, units]
    flops, macs, known = op_cost(op, [[steps, batch, features], [1, gates * units, features],
                                      [1, gates * units, units]], [[steps, 1, batch, units]])
    return out, flops, macs, known


def _reshape(cls: str, cfg: dict[str, Any], x: Shape) -> Shape | None:
    if cls == "Flatten":
        return [x[0], math.prod(x[1:])]
    if cls == "Embedding":
        return [*x, int(cfg.get("output_dim", 0))]
    target = cfg.get("target_shape")
    if cls == "Reshape" and isinstance(target, list):
        known = math.prod(int(d) for d in target if d not in (None, -1))
        rest = math.prod(x[1:]) // known if known else 0
        return [x[0], *[rest if d in (None, -1) else int(d) for d in target]]
    return None


def _layer(cls: str, cfg: dict[str, Any], ins: list[Shape | None]) -> Out:
    """One layer's output shape and cost from its input shapes."""
    x = ins[0] if ins else None
    if x is None or not x:
        return None, 0, 0, False
    if "Conv" in cls:
        return _conv(cls, cfg, x)
    if cls == "Dense":
        return _dense(cfg, x)
    if "Pooling" in cls:
        return _pool(cls, cfg, x)
    if cls in _RECURRENT:
        return _recurrent(cls, cfg, x)
    if cls in _IDENTITY:
        return x, 0, 0, True
    if cls in ("Flatten", "Reshape", "Embedding"):
        return _reshape(cls, cfg, x), 0, 0, True
    if cls in _MERGE:
        flops, _, known = op_cost(_MERGE[cls], [x], [x])
        return x, flops * max(1, len(ins) - 1), 0, known and all(s is not None for s in ins)
    if cls == "Concatenate" and all(s is not None and len(s) == len(x) for s in ins):
        axis = int(cfg.get("axis", -1)) % len(x)
        return [*x[:axis], sum(s[axis] for s in ins if s is not None), *x[axis + 1:]], 0, 0, True
    if cls in _NORMS:
        flops, _, known = op_cost(_NORMS[cls], [x], [x])
        return x, flops, 0, known
    if cls == "Activation":
        flops, known = _activation(cfg, x)
        return x, flops, 0, known
    op = {"ReLU": "Relu", "Softmax": "Softmax", "LeakyReLU": "LeakyRelu", "ELU": "Elu", "PReLU": "PRelu"}.get(cls)
    if op is not None:
        flops, _, known = op_cost(op, [x], [x])
        return x, flops, 0, known
    return None, 0, 0, False


def _model(config: dict[str, Any], given: list[Shape | None] | None, totals: _Totals, depth: int
           ) -> list[Shape | None]:
    """Walk one model's layers in config order (topological); its output shapes."""
    body = config.get("config") or {}
    layers = [la for la in body.get("layers", []) if isinstance(la, dict)] if isinstance(body, dict) else []
    outputs: dict[str, list[Shape | None]] = {}
    previous = given
    for layer in layers:
        cls, cfg = str(layer.get("class_name")), layer.get("config") or {}
        name = str(layer.get("name") or cfg.get("name"))
        if cls == "InputLayer":
            shape = _concrete(cfg.get("batch_shape", cfg.get("batch_input_shape")))
            outputs[name] = previous = [shape]
            continue
        ins = _inputs(layer, outputs, previous)
        if isinstance(cfg, dict) and isinstance(cfg.get("layers"), list) and depth < MAX_DEPTH:  # a nested model
            result = _model(layer, ins, totals, depth + 1)
        else:
            try:
                out, flops, macs, known = _layer(cls, cfg if isinstance(cfg, dict) else {}, ins)
            except (TypeError, ValueError, ZeroDivisionError, IndexError, KeyError, AttributeError, OverflowError):
                out, flops, macs, known = None, 0, 0, False  # a config value of the wrong type or range
            if out is not None and any(d < 0 for d in out):
                out, flops, macs, known = None, 0, 0, False  # negative sizes in the config: nothing to count
            _add(totals, cls, flops, macs, known)
            result = [out]
        outputs[name] = previous = result
    if config.get("class_name") == "Sequential" or not isinstance(body.get("output_layers"), list):
        return list(previous or [])
    named = body["output_layers"]
    named = [named] if named and isinstance(named[0], str) else named
    return [outputs.get(str(o[0]), [None])[0] for o in named if isinstance(o, list) and o]


def _add(totals: _Totals, cls: str, flops: int, macs: int, known: bool) -> None:
    if not known:
        totals.unknown[cls] = totals.unknown.get(cls, 0) + 1
    totals.flops += flops
    totals.macs += macs
    entry = totals.by_layer.setdefault(cls, {"count": 0, "flops": 0})
    entry["count"] += 1
    entry["flops"] += flops


def keras_costs(config: Any) -> dict[str, Any]:
    """``flops``, ``macs``, per-layer-class ``op_costs``, the output shapes (batch 1) and the notes
    of a Keras config; no FLOPs
    (and a note saying why) where no layer could be costed."""
    totals = _Totals()
    outputs = _model(config, None, totals, 0) if isinstance(config, dict) else []
    counted = sum(e["count"] for e in totals.by_layer.values()) - sum(totals.unknown.values())
    unknown = ", ".join(f"{k} x{v}" if v > 1 else k for k, v in sorted(totals.unknown.items()))
    if counted <= 0:
        return {"notes": ["FLOPs: no layer of this config has shapes and a formula mlfit can count"
                          + (f" ({unknown})" if unknown else "")]}
    notes = [f"FLOPs leave out layers without known shapes or a formula: {unknown}"] if unknown else []
    return {
        "flops": totals.flops,
        "macs": totals.macs,
        "output_shapes": outputs,  # batch 1; None where not known
        "op_costs": dict(sorted(totals.by_layer.items(), key=lambda kv: kv[1]["flops"], reverse=True)),
        "shape_inference": {"method": "Keras config layer shapes", "assumed_dims": {"batch": 1},
                            "nodes_with_unknown_cost": sum(totals.unknown.values())},
        "notes": notes,
    }
