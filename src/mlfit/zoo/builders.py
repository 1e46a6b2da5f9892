"""ONNX graph builders for well-known networks: MobileNetV1, MobileNetV2, MobileNetV3, ResNet-50, an MLP, a
transformer encoder block, a single Add. Weights are random; shapes and FLOPs are real.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OPSET = 17


class GraphBuilder:
    """Accumulates nodes and initializers with unique names."""

    def __init__(self, seed: int = 0) -> None:
        self.nodes: list[onnx.NodeProto] = []
        self.initializers: list[onnx.TensorProto] = []
        self.rng = np.random.default_rng(seed)
        self.counter = 0

    def name(self, prefix: str) -> str:
        self.counter += 1
        return f"{prefix}_{self.counter}"

    def weight(self, shape: tuple[int, ...], scale: float | None = None, prefix: str = "w") -> str:
        fan_in = int(np.prod(shape[1:])) if len(shape) > 1 else shape[0]
        std = scale if scale is not None else (2.0 / max(1, fan_in)) ** 0.5
        array = (self.rng.standard_normal(shape) * std).astype(np.float32)
        return self.constant(array, prefix)

    def constant(self, array: np.ndarray, prefix: str = "c") -> str:
        name = self.name(prefix)
        self.initializers.append(numpy_helper.from_array(array, name))
        return name

    def node(self, op: str, inputs: list[str], **attrs: Any) -> str:
        out = self.name(op.lower())
        self.nodes.append(helper.make_node(op, inputs, [out], name=out, **attrs))
        return out

    def conv(self, x: str, c_in: int, c_out: int, k: int, stride: int = 1, group: int = 1) -> str:
        w = self.weight((c_out, c_in // group, k, k))
        b = self.constant(np.zeros(c_out, np.float32), "b")
        pad = k // 2
        return self.node("Conv", [x, w, b], kernel_shape=[k, k], strides=[stride, stride],
                         pads=[pad, pad, pad, pad], group=group)

    def relu6(self, x: str) -> str:
        lo = self.constant(np.array(0.0, np.float32), "lo")
        hi = self.constant(np.array(6.0, np.float32), "hi")
        return self.node("Clip", [x, lo, hi])

    def model(self, inputs: list[onnx.ValueInfoProto], outputs: list[onnx.ValueInfoProto],
              name: str) -> onnx.ModelProto:
        graph = helper.make_graph(self.nodes, name, inputs, outputs, self.initializers)
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)],
                                  producer_name="mlfit.zoo", producer_version="1")
        model.ir_version = 8
        onnx.checker.check_model(model)
        return model


def _make_divisible(v: float, divisor: int = 8) -> int:
    new_v = max(divisor, int(v + divisor / 2) // divisor * divisor)
    return new_v + divisor if new_v < 0.9 * v else new_v


def mobilenet_v2(width: float = 1.0, resolution: int = 224, classes: int = 1000, batch: int | str = 1,
                 seed: int = 0) -> onnx.ModelProto:
    """MobileNetV2 (Sandler et al. 2018): 3.4M params, ~300M MACs at width 1.0, 224x224."""
    b = GraphBuilder(seed)
    settings = [(1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2),
                (6, 320, 1, 1)]
    c_in = _make_divisible(32 * width)
    last = _make_divisible(1280 * max(1.0, width))
    x = b.relu6(b.conv("input", 3, c_in, 3, stride=2))
    for t, c, n, s in settings:
        c_out = _make_divisible(c * width)
        for i in range(n):
            stride = s if i == 0 else 1
            hidden = c_in * t
            y = x
            if t != 1:
                y = b.relu6(b.conv(y, c_in, hidden, 1))
            y = b.relu6(b.conv(y, hidden, hidden, 3, stride=stride, group=hidden))
            y = b.conv(y, hidden, c_out, 1)
            x = b.node("Add", [x, y]) if stride == 1 and c_in == c_out else y
            c_in = c_out
    x = b.relu6(b.conv(x, c_in, last, 1))
    x = b.node("GlobalAveragePool", [x])
    x = b.node("Flatten", [x], axis=1)
    w = b.weight((classes, last))
    bias = b.constant(np.zeros(classes, np.float32), "b")
    logits = b.node("Gemm", [x, w, bias], transB=1)
    out = b.node("Softmax", [logits], axis=1)
    b.nodes[-1].output[0] = "probabilities"
    del out
    inp = helper.make_tensor_value_info("input", TensorProto.FLOAT, [batch, 3, resolution, resolution])
    outp = helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, [batch, classes])
    return b.model([inp], [outp], f"mobilenet_v2_{width}_{resolution}")


def mobilenet_v1(width: float = 1.0, resolution: int = 224, classes: int = 1000, batch: int | str = 1,
                 seed: int = 0) -> onnx.ModelProto:
    """MobileNetV1 (Howard et al. 2017): 4.2M params, ~569M MACs at width 1.0, 224x224.
    BatchNorm folded into Conv; ReLU6 after every convolution."""
    b = GraphBuilder(seed)
    # (output channels, stride) of the 13 depthwise-separable blocks
    blocks = [(64, 1), (128, 2), (128, 1), (256, 2), (256, 1), (512, 2), *[(512, 1)] * 5, (1024, 2), (1024, 1)]
    c_in = _make_divisible(32 * width)
    x = b.relu6(b.conv("input", 3, c_in, 3, stride=2))
    for c, stride in blocks:
        c_out = _make_divisible(c * width)
        x = b.relu6(b.conv(x, c_in, c_in, 3, stride=stride, group=c_in))
        x = b.relu6(b.conv(x, c_in, c_out, 1))
        c_in = c_out
    x = b.node("Flatten", [b.node("GlobalAveragePool", [x])], axis=1)
    w = b.weight((classes, c_in))
    bias = b.constant(np.zeros(classes, np.float32), "b")
    b.node("Gemm", [x, w, bias], transB=1)
    b.nodes[-1].output[0] = "logits"
    inp = helper.make_tensor_value_info("input", TensorProto.FLOAT, [batch, 3, resolution, resolution])
    outp = helper.make_tensor_value_info("logits", TensorProto.FLOAT, [batch, classes])
    return b.model([inp], [outp], f"mobilenet_v1_{width}_{resolution}")


_MNV3_LARGE = [  # kernel, expanded, out, squeeze-excite, hard-swish, stride
    (3, 16, 16, False, False, 1), (3, 64, 24, False, False, 2), (3, 72, 24, False, False, 1),
    (5, 72, 40, True, False, 2), (5, 120, 40, True, False, 1), (5, 120, 40, True, False, 1),
    (3, 240, 80, False, True, 2), (3, 200, 80, False, True, 1), (3, 184, 80, False, True, 1),
    (3, 184, 80, False, True, 1), (3, 480, 112, True, True, 1), (3, 672, 112, True, True, 1),
    (5, 672, 160, True, True, 2), (5, 960, 160, True, True, 1), (5, 960, 160, True, True, 1),
]
_MNV3_SMALL = [
    (3, 16, 16, True, False, 2), (3, 72, 24, False, False, 2), (3, 88, 24, False, False, 1),
    (5, 96, 40, True, True, 2), (5, 240, 40, True, True, 1), (5, 240, 40, True, True, 1),
    (5, 120, 48, True, True, 1), (5, 144, 48, True, True, 1), (5, 288, 96, True, True, 2),
    (5, 576, 96, True, True, 1), (5, 576, 96, True, True, 1),
]


def mobilenet_v3(size: str = "large", resolution: int = 224, classes: int = 1000, batch: int | str = 1,
                 seed: int = 0) -> onnx.ModelProto:
    """MobileNetV3 Large/Small (Howard et al. 2019): ~219M / ~56M MACs, 5.4M / 2.5M params at 224x224.
    Squeeze-excite with hard-sigmoid, hard-swish activations; BatchNorm folded into Conv."""
    b = GraphBuilder(seed)
    table, last, head = (_MNV3_LARGE, 960, 1280) if size == "large" else (_MNV3_SMALL, 576, 1024)

    def act(x: str, hswish: bool) -> str:
        return b.node("HardSwish", [x]) if hswish else b.node("Relu", [x])

    x = act(b.conv("input", 3, 16, 3, stride=2), True)
    c_in = 16
    for k, exp, c_out, se, hs, stride in table:
        y = x
        if exp != c_in:
            y = act(b.conv(y, c_in, exp, 1), hs)
        y = act(b.conv(y, exp, exp, k, stride=stride, group=exp), hs)
        if se:
            squeeze = _make_divisible(exp // 4)
            s = b.node("GlobalAveragePool", [y])
            s = b.node("Relu", [b.conv(s, exp, squeeze, 1)])
            s = b.node("HardSigmoid", [b.conv(s, squeeze, exp, 1)], alpha=1.0 / 6, beta=0.5)
            y = b.node("Mul", [y, s])
        y = b.conv(y, exp, c_out, 1)
        x = b.node("Add", [x, y]) if stride == 1 and c_in == c_out else y
        c_in = c_out
    x = act(b.conv(x, c_in, last, 1), True)
    x = b.node("Flatten", [b.node("GlobalAveragePool", [x])], axis=1)
    x = b.node("HardSwish", [b.node("Gemm", [x, b.weight((head, last)), b.constant(np.zeros(head, np.float32))],
                                    transB=1)])
    b.node("Gemm", [x, b.weight((classes, head)), b.constant(np.zeros(classes, np.float32), "b")], transB=1)
    b.nodes[-1].output[0] = "logits"
    inp = helper.make_tensor_value_info("input", TensorProto.FLOAT, [batch, 3, resolution, resolution])
    outp = helper.make_tensor_value_info("logits", TensorProto.FLOAT, [batch, classes])
    return b.model([inp], [outp], f"mobilenet_v3_{size}")


def resnet50(resolution: int = 224, classes: int = 1000, batch: int | str = 1, seed: int = 0,
             version: str = "1.5") -> onnx.ModelProto:
    """ResNet-50 v1.5 (He et al. 2016): 25.6M params, ~4.1G MACs at 224x224. BatchNorm folded into Conv.
    ``version="1"``: the original (Caffe) network, whose downsampling stride sits on the first 1x1
    convolution of a block instead of the 3x3: ~3.9G MACs."""
    b = GraphBuilder(seed)
    x = b.node("Relu", [b.conv("input", 3, 64, 7, stride=2)])
    x = b.node("MaxPool", [x], kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1])
    c_in = 64
    for width, blocks, stride in ((64, 3, 1), (128, 4, 2), (256, 6, 2), (512, 3, 2)):
        for i in range(blocks):
            s = stride if i == 0 else 1
            c_out = width * 4
            s1, s3 = (s, 1) if version == "1" else (1, s)
            y = b.node("Relu", [b.conv(x, c_in, width, 1, stride=s1)])
            y = b.node("Relu", [b.conv(y, width, width, 3, stride=s3)])
            y = b.conv(y, width, c_out, 1)
            shortcut = b.conv(x, c_in, c_out, 1, stride=s) if (s != 1 or c_in != c_out) else x
            x = b.node("Relu", [b.node("Add", [y, shortcut])])
            c_in = c_out
    x = b.node("Flatten", [b.node("GlobalAveragePool", [x])], axis=1)
    w = b.weight((classes, c_in))
    bias = b.constant(np.zeros(classes, np.float32), "b")
    b.node("Gemm", [x, w, bias], transB=1)
    b.nodes[-1].output[0] = "logits"
    inp = helper.make_tensor_value_info("input", TensorProto.FLOAT, [batch, 3, resolution, resolution])
    outp = helper.make_tensor_value_info("logits", TensorProto.FLOAT, [batch, classes])
    return b.model([inp], [outp], "resnet50")


def mlp(features: int = 256, hidden: tuple[int, ...] = (1024, 1024, 512), classes: int = 10,
        batch: int | str = "batch", seed: int = 0) -> onnx.ModelProto:
    b = GraphBuilder(seed)
    x, c_in = "input", features
    for width in hidden:
        w = b.weight((c_in, width))
        x = b.node("Relu", [b.node("Add", [b.node("MatMul", [x, w]), b.constant(np.zeros(width, np.float32))])])
        c_in = width
    b.node("MatMul", [x, b.weight((c_in, classes))])
    b.nodes[-1].output[0] = "logits"
    inp = helper.make_tensor_value_info("input", TensorProto.FLOAT, [batch, features])
    outp = helper.make_tensor_value_info("logits", TensorProto.FLOAT, [batch, classes])
    return b.model([inp], [outp], "mlp")


def transformer_block(d_model: int = 256, heads: int = 4, seq: int | str = "seq", batch: int | str = 1,
                      ff: int = 1024, vocab: int = 1000, seed: int = 0) -> onnx.ModelProto:
    """Token embedding + one pre-norm encoder block (self-attention and feed-forward)."""
    b = GraphBuilder(seed)
    head_dim = d_model // heads
    emb = b.weight((vocab, d_model), scale=0.02)
    x = b.node("Gather", [emb, "input_ids"], axis=0)

    def layer_norm(t: str) -> str:
        return b.node("LayerNormalization", [t, b.constant(np.ones(d_model, np.float32)),
                                             b.constant(np.zeros(d_model, np.float32))], axis=-1)

    def heads_view(t: str) -> str:
        shape = b.constant(np.array([0, -1, heads, head_dim], np.int64))
        return b.node("Transpose", [b.node("Reshape", [t, shape])], perm=[0, 2, 1, 3])

    h = layer_norm(x)
    q = heads_view(b.node("MatMul", [h, b.weight((d_model, d_model))]))
    k = heads_view(b.node("MatMul", [h, b.weight((d_model, d_model))]))
    v = heads_view(b.node("MatMul", [h, b.weight((d_model, d_model))]))
    kt = b.node("Transpose", [k], perm=[0, 1, 3, 2])
    scores = b.node("Mul", [b.node("MatMul", [q, kt]), b.constant(np.array(head_dim**-0.5, np.float32))])
    attn = b.node("MatMul", [b.node("Softmax", [scores], axis=-1), v])
    merged = b.node("Reshape", [b.node("Transpose", [attn], perm=[0, 2, 1, 3]),
                                b.constant(np.array([0, -1, d_model], np.int64))])
    x = b.node("Add", [x, b.node("MatMul", [merged, b.weight((d_model, d_model))])])
    h = layer_norm(x)
    h = b.node("Relu", [b.node("MatMul", [h, b.weight((d_model, ff))])])
    x = b.node("Add", [x, b.node("MatMul", [h, b.weight((ff, d_model))])])
    b.nodes[-1].output[0] = "hidden"
    inp = helper.make_tensor_value_info("input_ids", TensorProto.INT64, [batch, seq])
    outp = helper.make_tensor_value_info("hidden", TensorProto.FLOAT, [batch, seq, d_model])
    return b.model([inp], [outp], "transformer_block")


def bert_encoder(layers: int = 12, d_model: int = 768, heads: int = 12, ff: int = 3072, seq: int = 128,
                 batch: int | str = 1, vocab: int = 30522, share_layer_weights: bool = False,
                 seed: int = 0) -> onnx.ModelProto:
    """BERT's encoder (Devlin et al. 2019; post-norm, GELU): embeddings (token, position, segment),
    ``layers`` blocks of self-attention and feed-forward with biases. BERT-base is the default
    (11.2 GMACs at 128 tokens, 110M parameters); BERT-large is ``layers=24, d_model=1024, heads=16,
    ff=4096``. ``share_layer_weights`` gives every block the first block's initializers: the same
    nodes, shapes and FLOPs in a file ``layers`` times smaller (the device model reads only those)."""
    b = GraphBuilder(seed)
    head_dim = d_model // heads

    def dense(t: str, w: str, bias: str) -> str:
        return b.node("Add", [b.node("MatMul", [t, w]), bias])

    def layer_norm(t: str) -> str:
        return b.node("LayerNormalization", [t, b.constant(np.ones(d_model, np.float32)),
                                             b.constant(np.zeros(d_model, np.float32))], axis=-1, epsilon=1e-12)

    def heads_view(t: str) -> str:
        shape = b.constant(np.array([0, -1, heads, head_dim], np.int64))
        return b.node("Transpose", [b.node("Reshape", [t, shape])], perm=[0, 2, 1, 3])

    def block_weights() -> list[str]:
        shapes = [(d_model, d_model)] * 4 + [(d_model, ff), (ff, d_model)]
        biases = [d_model] * 4 + [ff, d_model]
        return [b.weight(s, scale=0.02) for s in shapes] + [b.constant(np.zeros(n, np.float32), "b") for n in biases]

    x = b.node("Gather", [b.weight((vocab, d_model), scale=0.02), "input_ids"], axis=0)
    x = b.node("Add", [x, b.weight((seq, d_model), scale=0.02)])  # position embeddings
    x = layer_norm(b.node("Add", [x, b.weight((1, d_model), scale=0.02)]))  # segment 0
    shared = block_weights() if share_layer_weights else None
    for _ in range(layers):
        wq, wk, wv, wo, w1, w2, bq, bk, bv, bo, b1, b2 = shared or block_weights()
        q, k, v = (heads_view(dense(x, w, bias)) for w, bias in ((wq, bq), (wk, bk), (wv, bv)))
        kt = b.node("Transpose", [k], perm=[0, 1, 3, 2])
        scores = b.node("Mul", [b.node("MatMul", [q, kt]), b.constant(np.array(head_dim**-0.5, np.float32))])
        attn = b.node("MatMul", [b.node("Softmax", [scores], axis=-1), v])
        merged = b.node("Reshape", [b.node("Transpose", [attn], perm=[0, 2, 1, 3]),
                                    b.constant(np.array([0, -1, d_model], np.int64))])
        x = layer_norm(b.node("Add", [x, dense(merged, wo, bo)]))
        h = dense(x, w1, b1)
        # GELU, erf form (as BERT's ONNX exports): 0.5 * h * (1 + erf(h / sqrt(2)))
        erf = b.node("Erf", [b.node("Div", [h, b.constant(np.array(2**0.5, np.float32))])])
        h = b.node("Mul", [b.node("Mul", [h, b.node("Add", [erf, b.constant(np.array(1.0, np.float32))])]),
                           b.constant(np.array(0.5, np.float32))])
        x = layer_norm(b.node("Add", [x, dense(h, w2, b2)]))
    b.nodes[-1].output[0] = "hidden"
    inp = helper.make_tensor_value_info("input_ids", TensorProto.INT64, [batch, seq])
    outp = helper.make_tensor_value_info("hidden", TensorProto.FLOAT, [batch, seq, d_model])
    return b.model([inp], [outp], "bert_encoder")


def tiny_add(size: int = 16) -> onnx.ModelProto:
    """A single Add: the smallest real model, for measuring the harness's own overhead."""
    b = GraphBuilder(0)
    b.node("Add", ["x", b.constant(np.ones(size, np.float32))])
    b.nodes[-1].output[0] = "y"
    return b.model([helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, size])],
                   [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, size])], "tiny_add")


def example_model() -> onnx.ModelProto:
    """The bundled example: MobileNetV2 width 0.5 at 160x160 with a symbolic batch dim."""
    return mobilenet_v2(width=0.5, resolution=160, batch="batch", seed=42)


def save(model: onnx.ModelProto, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    onnx.save(model, str(tmp))
    tmp.replace(path)
    return path
