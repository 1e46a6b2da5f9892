"""The static cost of one ONNX node, as the graph analysis records it: FLOPs, MACs, the extra bytes
it touches, how many kernels it runs one after another, and whether the cost is modelled.

Beyond :func:`mlfit.analysis.costs.op_cost` (which needs only shapes and a few attributes), this
reads what lives in a node's attributes: a tree ensemble's trees and depth, a linear model's
coefficients, and the bodies of If/Loop/Scan (the costlier branch of an If; a Loop's or Scan's body
times its static trip count). A node whose cost cannot be read stays ``known = False``: the
projection then takes its host-measured time instead (nothing is zero-cost for want of a formula).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from mlfit.analysis.costs import MATRIX_LIKE, op_cost, recurrent_steps

Types = dict[str, tuple[str, list[int] | None]]
# A traversal visits one tree node per level: its record (feature, threshold, children) sits anywhere
# in the node table, so each visit touches a cache line.
TREE_VISIT_BYTES = 64
_WANTED = {"kernel_shape", "transA", "transB", "group", "layout", "num_heads", "equation"}


@dataclass(frozen=True)
class NodeCost:
    flops: int
    macs: int
    known: bool
    extra_bytes: int = 0  # bytes touched beyond the input and output tensors (tree nodes, bodies)
    steps: int = 1  # kernels run one after another (recurrent time steps, loop bodies)
    matrix_flops: int = 0  # the part of the FLOPs that is matrix-product work (dense on a device)


def attributes(node: Any) -> dict[str, object]:
    """The attributes the cost formulas read, plus what is derived from an ai.onnx.ml node's
    attribute tables (trees and depth of a tree ensemble, coefficient and support-vector counts)."""
    from mlfit.onnxpb import attribute_value  # onnx.helper's answer without importing onnx

    out: dict[str, object] = {}
    for a in node.attribute:
        if a.name in _WANTED:
            out[a.name] = attribute_value(a)
    if node.op_type.startswith("TreeEnsemble"):
        out.update(_tree_shape(node))
    elif node.op_type in ("LinearClassifier", "LinearRegressor", "SVMClassifier", "SVMRegressor"):
        for a in node.attribute:
            if a.name == "coefficients":
                out["coefficients_count"] = len(a.floats)
            elif a.name == "support_vectors":
                out["support_vectors_count"] = len(a.floats)
    return out


def _tree_shape(node: Any) -> dict[str, int]:
    """Trees and depth (the mean over trees of the deepest root-to-leaf path, in comparisons, rounded
    up) of a TreeEnsemble* node, from its node tables (ai.onnx.ml 1-3 ``nodes_*`` with
    ``nodes_modes``; ai.onnx.ml 5 ``tree_roots`` with leaf flags per branch)."""
    attrs = {a.name: a for a in node.attribute}

    def ints(name: str) -> list[int]:
        return list(attrs[name].ints) if name in attrs else []

    true_ids, false_ids = ints("nodes_truenodeids"), ints("nodes_falsenodeids")
    children: dict[Any, list[Any]] = {}
    if "tree_roots" in attrs:  # ai.onnx.ml 5: node indices; a child flagged as a leaf is not a node
        true_leaf, false_leaf = ints("nodes_trueleafs"), ints("nodes_falseleafs")
        for i in range(min(len(true_ids), len(false_ids), len(true_leaf), len(false_leaf))):
            children[i] = [c for c, leaf in ((true_ids[i], true_leaf[i]), (false_ids[i], false_leaf[i])) if not leaf]
        roots: list[Any] = ints("tree_roots")
        n_trees = len(roots)
    else:
        trees, ids = ints("nodes_treeids"), ints("nodes_nodeids")
        modes = [m.decode() if isinstance(m, bytes) else str(m) for m in attrs["nodes_modes"].strings] \
            if "nodes_modes" in attrs else []
        for i in range(min(len(trees), len(ids), len(true_ids), len(false_ids), len(modes))):
            if modes[i] != "LEAF":
                children[(trees[i], ids[i])] = [(trees[i], true_ids[i]), (trees[i], false_ids[i])]
        referenced = {c for kids in children.values() for c in kids}
        roots = [k for k in children if k not in referenced]
        n_trees = len(set(trees))
    depths = []
    seen: set[Any] = set()  # each table entry walked once over all trees: a malformed table may loop or share
    for root in roots:
        deepest, stack = 0, [(root, 0)]
        while stack:
            at, level = stack.pop()
            if at in seen:
                continue
            seen.add(at)
            if at in children:  # a branch: one comparison, then one of its children
                deepest = max(deepest, level + 1)
                stack.extend((kid, level + 1) for kid in children[at])
        depths.append(max(1, deepest))
    if not n_trees:
        return {}
    depths.extend([1] * max(0, n_trees - len(depths)))  # a tree that is a single leaf still costs a visit
    return {"trees": n_trees, "depth": -(-sum(depths) // len(depths))}


def subgraph_types(graph: Any, outer: Types) -> Types:
    """Tensor types visible inside a subgraph: the outer scope's, then its own declared ones."""
    from mlfit.formats.onnx.proto import _dtype_name, _shape

    types = dict(outer)
    for value in [*graph.input, *graph.output, *graph.value_info]:
        if not value.type.HasField("tensor_type"):
            continue
        dims = _shape(value) if value.type.tensor_type.HasField("shape") else []
        shape = [d for d in dims if isinstance(d, int)]
        types[value.name] = (_dtype_name(value.type.tensor_type.elem_type), shape if len(shape) == len(dims) else None)
    for init in graph.initializer:
        types[init.name] = (_dtype_name(init.data_type), [int(d) for d in init.dims])
    return types


def _graph_cost(graph: Any, types: Types, constants: dict[str, int], depth: int) -> NodeCost:
    flops = macs = extra = steps = matrix = 0
    known = True
    for node in graph.node:
        c = node_cost(node, types, constants, depth + 1)
        flops, macs, extra = flops + c.flops, macs + c.macs, extra + c.extra_bytes
        steps, known = steps + c.steps, known and c.known
        # a body's matrix products (MatMul, Conv, Gemm: any op with MACs) are dense work on a device
        matrix += c.matrix_flops if node.op_type in ("If", "Loop", "Scan") else (c.flops if c.macs else 0)
    return NodeCost(flops, macs, known, extra, max(1, steps), matrix)


def _body(node: Any, name: str) -> Any | None:
    for a in node.attribute:
        if a.name == name and a.HasField("g"):
            return a.g
    return None


def _control_flow(node: Any, types: Types, constants: dict[str, int], depth: int) -> NodeCost:
    """If: the costlier branch. Loop: the body times the trip count when it is a constant (a
    Loop bounded only by its condition has no static cost). Scan: the body times the scan length."""
    if depth > 8:
        return NodeCost(0, 0, False)
    if node.op_type == "If":
        branches = [_body(node, "then_branch"), _body(node, "else_branch")]
        costs = [_graph_cost(g, subgraph_types(g, types), constants, depth) for g in branches if g is not None]
        if not costs:
            return NodeCost(0, 0, False)
        worst = max(costs, key=lambda c: (c.flops, c.extra_bytes))
        return NodeCost(worst.flops, worst.macs, all(c.known for c in costs), worst.extra_bytes, worst.steps,
                        worst.matrix_flops)
    body = _body(node, "body")
    if body is None:
        return NodeCost(0, 0, False)
    trips: int | None = None
    if node.op_type == "Loop":
        trips = constants.get(node.input[0]) if node.input and node.input[0] else None
    else:  # Scan: the scan inputs are the last num_scan_inputs, scanned along axis 0 unless told
        attrs = {a.name: a for a in node.attribute}
        n_scan = int(attrs["num_scan_inputs"].i) if "num_scan_inputs" in attrs else 1
        axes = list(attrs["scan_input_axes"].ints) if "scan_input_axes" in attrs else [0]
        first = node.input[len(node.input) - n_scan] if n_scan <= len(node.input) else ""
        shape = types.get(first, ("", None))[1]
        axis = axes[0] if axes else 0
        if shape is not None and -len(shape) <= axis < len(shape):
            trips = int(shape[axis])
    c = _graph_cost(body, subgraph_types(body, types), constants, depth)
    if trips is None or trips < 0:
        return NodeCost(c.flops, c.macs, False, c.extra_bytes, c.steps, c.matrix_flops)
    return NodeCost(c.flops * trips, c.macs * trips, c.known, c.extra_bytes * trips, max(1, c.steps * trips),
                    c.matrix_flops * trips)


def node_cost(node: Any, types: Types, constants: dict[str, int], depth: int = 0) -> NodeCost:
    """The static cost of ``node`` given the tensor types in scope and the graph's integer scalars."""
    domain = node.domain or "ai.onnx"
    if node.op_type in ("If", "Loop", "Scan") and domain in ("ai.onnx", ""):
        return _control_flow(node, types, constants, depth)
    ins = [types.get(n, ("", None))[1] if n else None for n in node.input]
    outs = [types.get(n, ("", None))[1] for n in node.output]
    attrs = attributes(node)
    flops, macs, known = op_cost(node.op_type, ins, outs, attrs)
    extra = 0
    if node.op_type.startswith("TreeEnsemble") and known:
        extra = flops // 2 * TREE_VISIT_BYTES  # one visited tree node per compare
    matrix = 2 * macs if node.op_type in MATRIX_LIKE else 0
    return NodeCost(flops, macs, known, extra, recurrent_steps(node.op_type, ins, attrs), matrix)


def scalar_constants(graph: Any) -> dict[str, int]:
    """Integer scalars (and one-element tensors) of the graph's initializers and Constant nodes: a
    Loop's trip count is one of them when it is static."""
    from mlfit.onnxpb import to_array  # numpy_helper's answer without importing onnx

    out: dict[str, int] = {}
    tensors = [(t.name, t) for t in graph.initializer]
    for node in graph.node:
        if node.op_type == "Constant" and node.output:
            for a in node.attribute:
                if a.name == "value" and a.HasField("t"):
                    tensors.append((node.output[0], a.t))
    for name, t in tensors:
        if len(t.dims) <= 1 and (not t.dims or int(t.dims[0]) == 1) and t.data_type in (6, 7):  # int32, int64
            try:
                out[name] = int(to_array(t).reshape(-1)[0])
            except (ValueError, IndexError):
                continue
    return out
