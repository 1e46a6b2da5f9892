"""Static facts of an ONNX graph, read without executing anything.

Imports ``onnx`` lazily (it is a parser, not a runtime) and never loads external data.
With the input spec applied (``dims``/``shapes``), onnx's shape inference gives every
tensor a shape; from those come per-node FLOPs/MACs and bytes, totals, and a sweep over
live tensors in topological order that estimates the peak activation memory.
Where onnx leaves shapes unknown, onnxruntime's symbolic shape inference is tried in a
subprocess (the parent never imports a runtime).
"""

from __future__ import annotations

import json
import sys
from collections import Counter
from pathlib import Path
from typing import Any, NamedTuple

from mlfit.analysis.costs import FUSED_ACTIVATIONS, FUSING_PRODUCERS, node_totals
from mlfit.analysis.nodecost import node_cost, scalar_constants
from mlfit.formats.onnx.proto import (
    _Deadline,
    _dtype_name,
    _shape,
    check_static_bounds,
    load_onnx_proto,
)
from mlfit.lifeline import ChildTimeout, run_child
from mlfit.scratch import run_folder

_CONTROL_FLOW = {"If", "Loop", "Scan"}
_STANDARD_DOMAINS = ("ai.onnx", "ai.onnx.ml", "com.microsoft")
TOP_N = 5


def _itemsize(dtype: str) -> int:
    import numpy as np

    if dtype in ("string", "undefined"):
        return 0
    if dtype == "bfloat16":
        return 2
    try:
        return int(np.dtype(dtype).itemsize)
    except TypeError:
        return 1  # float8 / int4 variants: about a byte


def _fix_inputs(model: Any, dims: dict[str, int], shapes: dict[str, list[int]]) -> dict[str, int]:
    """Write concrete input dims into the graph (in place); unnamed/symbolic dims left over
    are assumed to be 1 and returned, so the report can say so."""
    initializer_names = {i.name for i in model.graph.initializer}
    assumed: dict[str, int] = {}
    for value in model.graph.input:
        if value.name in initializer_names or not value.type.HasField("tensor_type"):
            continue
        tensor_dims = value.type.tensor_type.shape.dim
        wanted = shapes.get(value.name)
        if wanted is not None and len(wanted) == len(tensor_dims):
            for dim, size in zip(tensor_dims, wanted, strict=True):
                dim.dim_value = int(size)
            continue
        for i, dim in enumerate(tensor_dims):
            if dim.HasField("dim_value") and dim.dim_value > 0:
                continue
            name = dim.dim_param if dim.HasField("dim_param") else ""
            if name and name in dims:
                dim.dim_value = int(dims[name])
            else:
                assumed[name or f"{value.name}[{i}]"] = 1
                dim.dim_value = 1
    return assumed


def _bind_values(model: Any, values: dict[str, float]) -> list[str]:
    """Turn inputs given a constant value (``--value NAME=V``) into initializers of that value (in
    place), so shape inference can compute the shapes that depend on them; the names bound."""
    if not values:
        return []  # the usual case
    from mlfit.onnxpb import filled

    bound: list[str] = []
    initializer_names = {i.name for i in model.graph.initializer}
    for value in list(model.graph.input):
        if value.name not in values or value.name in initializer_names:
            continue
        tensor = value.type.tensor_type
        shape = [max(1, d.dim_value) for d in tensor.shape.dim]
        # the plain numeric types without onnx (0.6 s of CPU to import: `inspect --value` paid it)
        constant = filled(value.name, tensor.elem_type, shape, values[value.name])
        model.graph.initializer.append(constant if constant is not None else
                                       _filled_by_onnx(value.name, tensor.elem_type, shape, values[value.name]))
        model.graph.input.remove(value)
        bound.append(value.name)
    return bound


def _filled_by_onnx(name: str, elem_type: int, shape: list[int], value: float) -> Any:
    """The same constant through onnx's helpers, for the element types :func:`mlfit.onnxpb.filled`
    does not build (float16, bfloat16, the narrow float types)."""
    import numpy as np
    import onnx
    from onnx import numpy_helper

    return numpy_helper.from_array(np.full(shape, value, dtype=onnx.helper.tensor_dtype_to_np_dtype(elem_type)), name)


# Constant nodes whose tensors count as parameters: any floating tensor, and integer tensors
# larger than a shape or axis list (quantized weights), so that weights stored as Constant
# nodes (common in exported OCR and detection models) are counted like initializers.
_CONSTANT_PARAM_MIN_INT_ELEMENTS = 64


class _TensorHead(NamedTuple):
    """What the parameter count needs of a tensor, without its data."""

    name: str
    dims: list[int]
    data_type: int
    data_location: int = 0


def _constant_tensors(graph: Any) -> list[Any]:
    """The tensors of Constant nodes in ``graph`` and of initializers and Constant nodes in every
    subgraph (If/Loop/Scan bodies): weights that do not live in the main graph's initializers."""
    out: list[Any] = []

    def walk(g: Any, top: bool) -> None:
        if not top:
            out.extend(_TensorHead(i.name, list(i.dims), i.data_type, i.data_location) for i in g.initializer)
        for node in g.node:
            if node.op_type == "Constant" and (node.domain or "") in ("", "ai.onnx"):
                for attr in node.attribute:
                    if attr.name == "value" and attr.HasField("t"):
                        # named as the graph refers to it (the node's output); the header only
                        name = node.output[0] if node.output else attr.t.name
                        out.append(_TensorHead(name, list(attr.t.dims), attr.t.data_type, attr.t.data_location))
            for attr in node.attribute:
                if attr.HasField("g"):
                    walk(attr.g, False)
                for sub in attr.graphs:
                    walk(sub, False)

    walk(graph, True)
    return out


def _is_parameter(tensor: Any) -> bool:
    import math

    count = math.prod(int(d) for d in tensor.dims) if tensor.dims else 1
    dtype = _dtype_name(tensor.data_type)
    return dtype.startswith(("float", "bfloat")) or count > _CONSTANT_PARAM_MIN_INT_ELEMENTS


# onnx's data propagation materialises initializers: a 100 MB weight cost 2 GB and a 1 GB
# external one (never loaded) 17 GB in this process. Only small tensors (shapes, axes,
# pads) feed shape computations, so larger ones become typed graph inputs in a copy.
_DATA_PROP_MAX_ELEMENTS = 4096


def _light(model: Any) -> Any:
    """A copy of ``model`` whose large initializers are declared graph inputs instead."""
    import math

    from mlfit import onnxpb

    graph = model.graph
    big = [t for t in graph.initializer if math.prod(int(d) for d in t.dims) > _DATA_PROP_MAX_ELEMENTS]
    if not big:
        return model
    light = onnxpb.model_proto()()
    light.CopyFrom(model)
    kept = [t for t in light.graph.initializer if math.prod(int(d) for d in t.dims) <= _DATA_PROP_MAX_ELEMENTS]
    del light.graph.initializer[:]
    light.graph.initializer.extend(kept)
    declared = {i.name for i in light.graph.input}
    light.graph.input.extend(onnxpb.value_info(t.name, t.data_type, list(t.dims))
                             for t in big if t.name not in declared)
    return light


def _long_vector(model: Any) -> bool:
    """Whether a tensor of rank 0 or 1 holds more than a few thousand elements: onnx's data
    propagation spells such a tensor out as one shape dim per element (tens of bytes each)."""
    graph = model.graph
    for value in [*graph.input, *graph.output, *graph.value_info]:
        dims = value.type.tensor_type.shape.dim
        if len(dims) <= 1 and any(d.dim_value > _DATA_PROP_MAX_ELEMENTS for d in dims):
            return True
    return False


def _infer(model: Any) -> Any:
    """onnx's shape inference (its C++ function, called without ``import onnx``: mlfit.onnxpb)."""
    from mlfit import onnxpb

    try:
        light = _light(model)
        plain = onnxpb.infer_shapes(light)
        if _long_vector(plain):  # data propagation would take gigabytes; the plain shapes must do
            return plain
        return onnxpb.infer_shapes(light, data_prop=True)
    except Exception:  # onnx raises several types for odd graphs; fall back to the declared shapes
        return model


_ORT_SYMBOLIC = """
import sys, onnx
from onnxruntime.tools.symbolic_shape_infer import SymbolicShapeInference
m = onnx.load(sys.argv[1], load_external_data=False)
out = SymbolicShapeInference.infer_shapes(m, auto_merge=True, guess_output_rank=True)
onnx.save(out, sys.argv[2])
"""


def _ort_symbolic(model: Any, timeout: float = 120.0) -> Any | None:
    """onnxruntime's symbolic shape inference, in a subprocess; None when unavailable."""
    import importlib.util

    from mlfit import onnxpb

    if importlib.util.find_spec("onnxruntime") is None or importlib.util.find_spec("sympy") is None:
        return None
    with run_folder("mlfit-shapes-") as tmp:
        src, dst = Path(tmp) / "in.onnx", Path(tmp) / "out.onnx"
        src.write_bytes(_light(model).SerializeToString())  # onnx.save, without importing onnx here
        try:
            if run_child([sys.executable, "-c", _ORT_SYMBOLIC, str(src), str(dst)], max(1.0, timeout)).returncode:
                return None
            return onnxpb.load_model(dst)
        except (ChildTimeout, OSError, ValueError):
            return None


def _value_types(model: Any) -> dict[str, tuple[str, list[int] | None]]:
    """tensor name -> (dtype, concrete shape or None)."""
    out: dict[str, tuple[str, list[int] | None]] = {}
    graph = model.graph
    for value in [*graph.input, *graph.output, *graph.value_info]:
        if not value.type.HasField("tensor_type"):
            continue
        tt = value.type.tensor_type
        shape: list[int] | None = None
        if tt.HasField("shape"):
            dims = _shape(value)
            shape = [d for d in dims if isinstance(d, int)]
            if len(shape) != len(dims):
                shape = None
        out[value.name] = (_dtype_name(tt.elem_type), shape)
    for init in graph.initializer:
        out[init.name] = (_dtype_name(init.data_type), [int(d) for d in init.dims])
    for node in graph.node:  # Constant nodes carry their tensor in an attribute
        if node.op_type == "Constant" and node.output:
            for attr in node.attribute:
                if attr.name == "value" and attr.HasField("t"):
                    out[node.output[0]] = (_dtype_name(attr.t.data_type), [int(d) for d in attr.t.dims])
    return out


def _nbytes(types: dict[str, tuple[str, list[int] | None]], name: str) -> int | None:
    if not name or name not in types:
        return None if name else 0
    dtype, shape = types[name]
    if shape is None:
        return None
    count = 1
    for d in shape:
        count *= d
    return count * _itemsize(dtype)


def _node_costs(
    model: Any, types: dict[str, tuple[str, list[int] | None]], params: set[str], deadline: _Deadline | None = None
) -> tuple[list[dict[str, Any]], int]:
    constants = scalar_constants(model.graph)
    nodes: list[dict[str, Any]] = []
    unknown = 0
    for index, node in enumerate(model.graph.node):
        if deadline is not None and not index & 0xFFF:
            deadline.check()
        domain = node.domain or "ai.onnx"
        op = node.op_type if domain in ("ai.onnx", "") else f"{domain}::{node.op_type}"
        cost = node_cost(node, types, constants)
        read = [_nbytes(types, n) for n in node.input]
        written = [_nbytes(types, n) for n in node.output]
        # a node whose cost the formulas could not read: the projection takes its host-measured time.
        # An output onnx infers no shape for (contrib and ai.onnx.ml ops) is taken as large as the
        # largest input when the formula itself is known.
        if cost.known and any(b is None for b in written) and not any(b is None for b in read):
            written = [b if b is not None else max([0, *(r or 0 for r in read)]) for b in written]
        known = cost.known and not any(b is None for b in [*read, *written])
        unknown += not known
        group = next((a.i for a in node.attribute if a.name == "group"), 1)
        entry: dict[str, Any] = {
            "name": node.name or f"{node.op_type}_{index}",
            "op": op,
            "flops": cost.flops,
            "macs": cost.macs,
            "bytes_read": sum(b or 0 for b in read) + cost.extra_bytes,
            "bytes_written": sum(b or 0 for b in written),
            "param_bytes": sum(b or 0 for n, b in zip(node.input, read, strict=True) if n in params),
            # grouped (depthwise when group == channels) convolutions run at another efficiency
            "group": int(group or 1),
            "cost_known": known,
        }
        if cost.steps > 1:
            entry["steps"] = cost.steps  # kernels run one after another (recurrent steps, loop bodies)
        if cost.matrix_flops:
            entry["matrix_flops"] = cost.matrix_flops
        nodes.append(entry)
    _mark_fused(model.graph.node, nodes)
    return nodes, unknown


def _mark_fused(graph_nodes: Any, nodes: list[dict[str, Any]]) -> None:
    """``fused``: a clamp-like activation whose input is the output of a convolution or a matrix
    product read by nothing else: runtimes apply it in that product's epilogue (no kernel, no pass
    over memory of its own; mlfit.analysis.costs.FUSED_ACTIVATIONS)."""
    producer: dict[str, str] = {}
    readers: Counter[str] = Counter()
    for node in graph_nodes:
        for name in node.output:
            producer[name] = node.op_type
        for name in node.input:
            readers[name] += 1
    for node, entry in zip(graph_nodes, nodes, strict=True):
        data = node.input[0] if node.input else ""
        if (node.op_type in FUSED_ACTIVATIONS and producer.get(data) in FUSING_PRODUCERS and readers[data] == 1
                and (node.domain or "ai.onnx") in ("ai.onnx", "")):
            entry["fused"] = True


def _activation_sweep(
    model: Any, types: dict[str, tuple[str, list[int] | None]], params: set[str], deadline: _Deadline | None = None
) -> tuple[int, list[dict[str, Any]]]:
    """Peak bytes of live activations walking the nodes in (topological) file order, and
    the largest activations. Initializers are parameters and counted apart."""
    graph = model.graph
    last_use: dict[str, int] = {}
    for i, node in enumerate(graph.node):
        for name in node.input:
            last_use[name] = i
    keep = {o.name for o in graph.output}
    live: dict[str, int] = {}
    for value in graph.input:
        if value.name not in params:
            live[value.name] = _nbytes(types, value.name) or 0
    total = sum(live.values())  # kept as a running sum: summing the live set per node is quadratic
    peak = total
    sizes: dict[str, int] = {}
    for i, node in enumerate(graph.node):
        if deadline is not None and not i & 0xFFF:
            deadline.check()
        if node.op_type == "Constant":
            continue
        for name in node.output:
            size = _nbytes(types, name) or 0
            total += size - live.get(name, 0)
            live[name] = size
            sizes[name] = size
        peak = max(peak, total)
        for name in node.input:
            if last_use.get(name) == i and name in live and name not in keep:
                total -= live.pop(name)
    largest = sorted(sizes.items(), key=lambda kv: kv[1], reverse=True)[:TOP_N]
    top = [{"name": n, "bytes": b, "shape": types.get(n, ("", None))[1]} for n, b in largest if b > 0]
    return peak, top


def analyze_onnx(
    path: Path, dims: dict[str, int] | None = None, shapes: dict[str, list[int]] | None = None,
    values: dict[str, float] | None = None,
) -> dict[str, Any]:
    """Opset, IR version, op histogram, parameters by dtype (wherever the weights live:
    initializers, Constant nodes, subgraphs), dtypes, I/O, control flow, and with shapes
    inferred: FLOPs/MACs and bytes per node, totals and peak activation memory. ``values``
    binds inputs to a constant (``--value``) before shape inference."""
    deadline = check_static_bounds(path)  # nodes and inline bytes, from a bounded walk, before parsing
    model = load_onnx_proto(path)
    facts, initializer_names = _structure(model)
    facts.update(_costs(model, facts, initializer_names, deadline, dims, shapes, values))
    return facts


def _op_histogram(graph: Any) -> tuple[Counter[str], set[str]]:
    """Ops by name (a custom domain's prefixed), subgraphs included, and the custom domains."""
    ops: Counter[str] = Counter()
    custom: set[str] = set()

    def walk(g: Any) -> None:
        for node in g.node:
            domain = node.domain or "ai.onnx"
            ops[node.op_type if domain in ("ai.onnx", "") else f"{domain}::{node.op_type}"] += 1
            if domain not in _STANDARD_DOMAINS:
                custom.add(domain)
            for attr in node.attribute:
                if attr.g is not None and attr.g.node:
                    walk(attr.g)
                for sub in attr.graphs:
                    walk(sub)

    walk(graph)
    return ops, custom


def _structure(model: Any) -> tuple[dict[str, Any], set[str]]:
    """What the file says without shape inference: versions, ops, parameters, I/O; and the names
    of the weights (initializers and parameter-like constants)."""
    import numpy as np

    graph = model.graph
    opsets = {o.domain or "ai.onnx": int(o.version) for o in model.opset_import}
    ops, custom = _op_histogram(graph)
    params = 0
    param_bytes: Counter[str] = Counter()
    external = 0
    initializers: list[tuple[str, int, list[int], str]] = []
    constants = [c for c in _constant_tensors(graph) if _is_parameter(c)]
    for init in [*graph.initializer, *constants]:
        count = int(np.prod([int(d) for d in init.dims])) if init.dims else 1
        params += count
        dtype = _dtype_name(init.data_type)
        size = count * (_itemsize(dtype) if dtype != "string" else 1)
        param_bytes[dtype] += size
        initializers.append((init.name, size, [int(d) for d in init.dims], dtype))
        if init.data_location == 1:
            external += 1
    initializer_names = {i.name for i in graph.initializer} | {c.name for c in constants if c.name}
    inputs = [
        {"name": i.name, "dtype": _dtype_name(i.type.tensor_type.elem_type), "shape": _shape(i)}
        for i in graph.input
        if i.name not in initializer_names
    ]
    outputs = [
        {"name": o.name, "dtype": _dtype_name(o.type.tensor_type.elem_type), "shape": _shape(o)}
        for o in graph.output
    ]
    largest = sorted(initializers, key=lambda t: t[1], reverse=True)[:TOP_N]
    facts: dict[str, Any] = {
        "format": "onnx",
        "ir_version": int(model.ir_version),
        "opset": opsets.get("ai.onnx"),
        "opsets": opsets,
        "producer": f"{model.producer_name} {model.producer_version}".strip(),
        "ops": dict(ops.most_common()),
        "node_count": sum(ops.values()),
        "parameters": params,
        "parameter_bytes": dict(param_bytes),
        "constant_parameters": sum(int(np.prod([int(d) for d in c.dims])) if c.dims else 1 for c in constants),
        "external_initializers": external,
        "inputs": inputs,
        "outputs": outputs,
        "dynamic_dims": sorted({d for t in inputs for d in t["shape"] if isinstance(d, str)}),
        "control_flow": sorted(set(ops) & _CONTROL_FLOW),
        "custom_domains": sorted(custom),
        "top_initializers": [{"name": n, "bytes": b, "shape": s, "dtype": d} for n, b, s, d in largest],
    }
    return facts, initializer_names


def _costs(model: Any, facts: dict[str, Any], initializer_names: set[str], deadline: Any,
           dims: dict[str, int] | None, shapes: dict[str, list[int]] | None,
           values: dict[str, float] | None) -> dict[str, Any]:
    """With shapes inferred (the user's dims/shapes first, anything still symbolic assumed 1 and
    reported): dtypes, FLOPs/MACs and bytes per node and per op, the activation peak."""
    assumed = _fix_inputs(model, dict(dims or {}), dict(shapes or {}))
    deadline.check()
    bound = _bind_values(model, dict(values or {}))
    inferred = _infer(model)
    deadline.check()
    types = _value_types(inferred)
    nodes, unknown = _node_costs(inferred, types, initializer_names, deadline)
    method = "onnx shape inference"
    if unknown and not facts["control_flow"] and not facts["custom_domains"]:
        fallback = _ort_symbolic(model, deadline.left())
        if fallback is not None:
            types2 = _value_types(fallback)
            nodes2, unknown2 = _node_costs(fallback, types2, initializer_names, deadline)
            if unknown2 < unknown:
                inferred, types, nodes, unknown = fallback, types2, nodes2, unknown2
                method = "onnxruntime symbolic shape inference"
    activation_peak, top_activations = _activation_sweep(inferred, types, initializer_names, deadline)
    used = {types[n][0] for node in inferred.graph.node for n in [*node.input, *node.output] if n in types}
    io = [*facts["inputs"], *facts["outputs"]]
    return {
        "dtypes": sorted({*facts["parameter_bytes"], *(t["dtype"] for t in io), *used} - {"undefined", ""}),
        "activation_peak_bytes": activation_peak,
        "top_activations": top_activations,
        **node_totals(nodes),
        "shape_inference": {
            "method": method,
            "assumed_dims": assumed,
            "values_bound": bound,
            "nodes_with_unknown_cost": unknown,
            "note": (
                "control flow: an If counts its costlier branch, a Loop or Scan its body times a static "
                "trip count (a Loop with none has no static cost: its host-measured time is projected)"
                if facts["control_flow"] else ""
            ),
        },
        "nodes": nodes,
    }


def compact(facts: dict[str, Any]) -> dict[str, Any]:
    """The facts without the per-node list (for the terminal and small JSON)."""
    return {k: v for k, v in facts.items() if k != "nodes"}


def dumps(facts: dict[str, Any]) -> str:
    return json.dumps(facts)
