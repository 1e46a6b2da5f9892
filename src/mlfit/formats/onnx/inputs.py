"""What an ONNX file declares about its inputs: graph inputs, and the valid range of integer
inputs where the graph determines it (the rows of the table an input indexes through Gather or
EmbedLayerNormalization, a OneHot depth, a Clip's bounds), followed through value-preserving ops
(casts, reshapes, the branches of a Where: exporters turn ``x < 0 ? x + n : x`` into one).
Comparisons alone (Less, Greater) are not used: they test a value, they do not bound it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mlfit.formats.base import Declared
from mlfit.result import TensorInfo

_PASS_THROUGH = {"Cast", "Reshape", "Unsqueeze", "Squeeze", "Flatten", "Identity", "Expand", "Transpose",
                 "Slice", "Tile", "Gather"}  # value-preserving when the tensor is their first input


def _onnx_constants(graph: Any) -> dict[str, Any]:
    """The small tensors (initializers and Constant nodes), read as arrays only when a bound needs
    one: reading them all imported numpy before the worker could start (0.1-0.3 s), for none."""
    small: dict[str, Any] = {}
    for tensor in graph.initializer:
        if tensor.data_location != 1 and len(tensor.dims) <= 1 and (not tensor.dims or tensor.dims[0] <= 16):
            small[tensor.name] = tensor
    for node in graph.node:
        if node.op_type == "Constant" and node.output:
            for attr in node.attribute:
                if attr.name == "value" and len(attr.t.dims) <= 1 and (not attr.t.dims or attr.t.dims[0] <= 16):
                    small[node.output[0]] = attr.t
    return small


def _onnx_table_rows(graph: Any) -> dict[str, tuple[int, str]]:
    """Leading dim of every initializer / Constant tensor (known without reading its data)."""
    rows: dict[str, tuple[int, str]] = {}
    for tensor in graph.initializer:
        if tensor.dims:
            rows[tensor.name] = (int(tensor.dims[0]), tensor.name)
    for node in graph.node:
        if node.op_type == "Constant" and node.output:
            for attr in node.attribute:
                if attr.name == "value" and attr.t.dims:
                    rows[node.output[0]] = (int(attr.t.dims[0]), node.output[0])
    return rows


def onnx_integer_ranges(model: Any) -> tuple[dict[str, tuple[float, float]], dict[str, str]]:
    """Valid [low, high) per graph input, read from the ops the input reaches through
    value-preserving ops: Gather/EmbedLayerNormalization tables, OneHot depth, Clip bounds."""
    graph = model.graph
    consumers: dict[str, list[tuple[Any, int]]] = {}
    for node in graph.node:
        for index, name in enumerate(node.input):
            consumers.setdefault(name, []).append((node, index))
    constants = _onnx_constants(graph)
    rows = _onnx_table_rows(graph)
    initializers = {t.name for t in graph.initializer}
    ranges: dict[str, tuple[float, float]] = {}
    sources: dict[str, str] = {}

    def scalar(name: str) -> float | None:
        from mlfit.onnxpb import to_array  # numpy_helper's answer without importing onnx

        tensor = constants.get(name)
        value = None if tensor is None else to_array(tensor)
        return None if value is None or value.size != 1 else float(value.reshape(-1)[0])

    def bound(graph_input: str, low: float, high: float, why: str) -> None:
        old = ranges.get(graph_input)
        if old is None or (high - low) < (old[1] - old[0]):
            ranges[graph_input] = (low, high)
            sources[graph_input] = why

    for value in graph.input:
        if value.name in initializers:
            continue
        frontier, seen = [value.name], {value.name}
        while frontier:
            tensor = frontier.pop()
            for node, index in consumers.get(tensor, []):
                op = node.op_type
                where = f"'{node.name}'" if node.name else f"({op})"
                if op == "Gather" and index == 1 and node.input[0] in rows:
                    axis = next((a.i for a in node.attribute if a.name == "axis"), 0)
                    if axis == 0:
                        n, table = rows[node.input[0]]
                        bound(value.name, 0, n, f"the model: indexes the {n}-row table '{table}' (Gather {where})")
                elif op == "EmbedLayerNormalization" and index in (0, 1) and len(node.input) > 2 + index:
                    table_name = node.input[2] if index == 0 else node.input[4] if len(node.input) > 4 else ""
                    if table_name in rows:
                        n, table = rows[table_name]
                        bound(value.name, 0, n, f"the model: indexes the {n}-row table '{table}' "
                              f"(EmbedLayerNormalization {where})")
                elif op == "OneHot" and index == 0:
                    depth = scalar(node.input[1]) if len(node.input) > 1 else None
                    if depth is not None and depth >= 1:
                        bound(value.name, 0, depth, f"the model: OneHot {where} of depth {int(depth)}")
                elif op == "Clip" and index == 0:
                    low = scalar(node.input[1]) if len(node.input) > 1 and node.input[1] else None
                    high = scalar(node.input[2]) if len(node.input) > 2 and node.input[2] else None
                    if low is not None and high is not None and low <= high:
                        bound(value.name, low, high + 1, f"the model: Clip {where} to [{low:g}, {high:g}]")
                if (op in _PASS_THROUGH and index == 0) or (op == "Where" and index in (1, 2)):
                    for out in node.output:
                        if out and out not in seen:
                            seen.add(out)
                            frontier.append(out)
    return ranges, sources


def declared_inputs(path: Path) -> Declared | None:
    """Graph inputs (initializers excluded) with the integer ranges the graph implies."""
    from mlfit.formats.onnx.proto import StaticTooLarge, _dtype_name, _shape, check_static_bounds, load_onnx_proto

    try:  # the same bounds as the static analysis: past them the worker resolves the inputs
        check_static_bounds(path)
    except StaticTooLarge:
        return None
    model = load_onnx_proto(path)
    initializers = {t.name for t in model.graph.initializer}
    inputs = [TensorInfo(name=v.name, dtype=_dtype_name(v.type.tensor_type.elem_type), shape=_shape(v))
              for v in model.graph.input if v.name not in initializers]
    ranges, sources = onnx_integer_ranges(model)
    return Declared(inputs=inputs, ranges=ranges, range_sources=sources)
