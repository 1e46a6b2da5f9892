"""Judge a TensorFlow SavedModel by what loading it and calling one signature can run.

``saved_model.pb`` / ``saved_model.pbtxt`` are parsed with TensorFlow's own descriptors
(:mod:`mlfit.safety.tfproto`: protobuf semantics, text format through ``text_format``),
never with TensorFlow. Then, following ``tf.saved_model.load`` (the worker's loader):

- **TF2 layout** (one meta graph with an object graph): loading runs each resource's
  ``_create_resource``/``_initialize``/``_destroy_resource`` functions and each saveable
  object's save/restore functions; variables are restored by TensorFlow's Python code
  with the model's own variables path (no graph op). The signature is the function the
  object graph names under ``signatures/<name>``, plus the nodes its ``signature_def``
  outputs depend on.
- **TF1 layout** (anything else): the saver's restore op, the init op (``__saved_model_init_op``,
  ``saved_model_main_op``, ``legacy_init_op``), what the default local init runs (local
  variable initializers, ``table_initializer``, ``local_resources``), asset feeds, and the
  signature's inputs and outputs, each with every node it depends on (data and control inputs).

From these roots every call is followed: an op that names a library function, every
function-typed attribute (``f``, ``then_branch``, ``body``, dataset functions, lists of
functions, functions nested in a function's attributes) and attribute placeholders,
resolved with the values the calling node passes (or the callee's defaults). A function's
whole body counts as reachable. Every reachable op must be on the allowlist in
:mod:`mlfit.safety.tf_ops`; ``PrintV2`` must print to stderr/stdout/the log;
``RestoreV2`` is accepted only on the TF1 restore path, with its prefix being exactly the
filename tensor the loader feeds (the model's own ``variables/``). No exemption depends on
a function's name.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlfit.safety.tf_ops import ALLOWED_OPS, PRINT_STREAMS, RUNS_DATA_AS_CODE
from mlfit.safety.tfproto import ProtoError, parse_binary, parse_text

MAX_PROTO_BYTES = 2**31  # protobuf's own limit; TensorFlow cannot read a larger saved_model.pb
MAX_VISITS = 2_000_000  # function instantiations + nodes judged: a bound on hostile call graphs
_RESTORE_OPS = frozenset({"RestoreV2"})
# Read a vocabulary file: allowed only when the filename is one of the model's own assets.
_ASSET_READERS = frozenset({"InitializeTableFromTextFile", "InitializeTableFromTextFileV2"})
_CALL_OPS = frozenset({"PartitionedCall", "StatefulPartitionedCall"})
# TF1 collections whose ops loading runs: the init op (main_op / legacy_init_op) and, without
# one, what Scaffold.default_local_init_op() groups (local variables, table initializers,
# local resources). Training, summary and other collections are never run by a loader.
_INIT_COLLECTIONS = frozenset({"saved_model_main_op", "legacy_init_op", "table_initializer", "local_resources",
                               "local_variables"})


class SavedModelError(Exception):
    """saved_model.pb / .pbtxt cannot be read or parsed."""


@dataclass
class Problem:
    op: str
    where: str
    node: str
    why: str

    def __str__(self) -> str:
        return f"{self.op} at '{self.node}' in {self.where}: {self.why}"


@dataclass
class GraphScan:
    ops: dict[str, int] = field(default_factory=dict)  # reachable op -> count
    functions: int = 0  # distinct functions reached
    layout: str = ""  # "tf2" or "tf1"
    signature_found: bool = False
    problems_found: list[Problem] = field(default_factory=list)

    @property
    def problems(self) -> list[str]:
        return [str(p) for p in self.problems_found]

    @property
    def refused_ops(self) -> list[str]:
        """Names of the refused ops, first-seen order, unique."""
        return list(dict.fromkeys(p.op for p in self.problems_found))


def _node_name(tensor: str) -> str:
    return tensor.lstrip("^").split(":")[0]


def _tensor_name(tensor: str) -> str:
    """A top-level tensor as 'node:index' ('x' is 'x:0'; a control input '^x' is no tensor)."""
    if tensor.startswith("^"):
        return ""
    return tensor if ":" in tensor else f"{tensor}:0"


class _Walker:
    seen_calls: set[tuple[str, int, bytes]]

    def __init__(self, graph: Any, scan: GraphScan, filename_tensor: str | None,
                 assets: dict[str, str] | None = None) -> None:
        self.assets = assets or {}  # top-level tensor node fed with an asset path -> asset filename
        # A name given to two functions: judge both (whichever TensorFlow keeps).
        self.library: dict[str, list[Any]] = {}
        for function in graph.library.function:
            self.library.setdefault(function.signature.name, []).append(function)
        self.nodes = {n.name: n for n in graph.node}
        self.scan = scan
        self.filename_tensor = _tensor_name(filename_tensor) if filename_tensor else None
        self.seen_calls = set()
        self.seen_top: set[str] = set()
        self.functions: set[str] = set()
        self.visits = 0

    def _tick(self) -> None:
        self.visits += 1
        if self.visits > MAX_VISITS:
            raise SavedModelError(f"the graph's call structure is too large to check (over {MAX_VISITS} steps)")

    # -- the top-level graph: only what the roots depend on ------------------------------------
    def top(self, roots: Iterable[str], where: str, restore_path: bool = False) -> None:
        stack = [_node_name(r) for r in roots if r]
        while stack:
            name = stack.pop()
            if name in self.seen_top:
                continue
            self.seen_top.add(name)
            self._tick()
            node = self.nodes.get(name)
            if node is None:
                continue  # TensorFlow fails to load a graph that names a missing node
            self.judge(node, where, {}, restore_path, None)
            stack.extend(_node_name(i) for i in node.input)

    # -- functions: the whole body, with the caller's attribute values ------------------------
    def call(self, name: str, attrs: dict[str, Any], where: str,
             sources: tuple[str | None, ...] = ()) -> None:
        """Judge function ``name`` called with ``attrs``; ``sources[i]`` names the model asset
        its i-th input carries (None: a computed value)."""
        functions = self.library.get(name)
        if not functions:
            self.problem(name, where, name, "calls a function that is not in the model's library")
            return
        for index, function in enumerate(functions):
            bindings: dict[str, Any] = {a.name: a.default_value for a in function.signature.attr
                                        if a.HasField("default_value")}
            bindings.update(attrs)
            key = (name, index, b"".join(k.encode() + b"=" + v.SerializeToString(deterministic=True) + b";"
                                         for k, v in sorted(bindings.items())) + repr(sources).encode())
            if key in self.seen_calls:
                continue
            self.seen_calls.add(key)
            self.functions.add(name)
            self._tick()
            args = {a.name: (sources[i] if i < len(sources) else None)
                    for i, a in enumerate(function.signature.input_arg)}
            for node in function.node_def:
                self.judge(node, f"function {name}", bindings, False, args)

    def _source(self, tensor: str, args: dict[str, str | None] | None) -> str | None:
        """The model asset a node input carries: a function argument bound to one, or a
        top-level tensor the loader feeds with one."""
        if tensor.startswith("^"):
            return None
        if args is not None:
            return args.get(tensor) if ":" not in tensor else None
        return self.assets.get(_node_name(tensor))

    def judge(self, node: Any, where: str, bindings: dict[str, Any], restore_path: bool,
              args: dict[str, str | None] | None) -> None:
        self._tick()
        op = node.op
        self.scan.ops[op] = self.scan.ops.get(op, 0) + 1
        attrs = {k: self._resolve(v, bindings) for k, v in node.attr.items()}
        for key, value in attrs.items():
            if value is None:
                self.problem(op, where, node.name, f"attribute '{key}' is left to a caller that does not set it")
                continue
            direct = value.func.name if op in _CALL_OPS and key == "f" and value.WhichOneof("value") == "func" else None
            passed = tuple(self._source(i, args) for i in node.input) if direct else ()
            for fn_name, fn_attrs in self._functions_in(value, bindings):
                self.call(fn_name, fn_attrs, where, passed if fn_name == direct else ())
        if op in self.library:  # a node whose op is a library function calls it with its attrs
            passed = tuple(self._source(i, args) for i in node.input)
            self.call(op, {k: v for k, v in attrs.items() if v is not None}, where, passed)
            return
        if op in _ASSET_READERS:
            asset = self._source(node.input[1], args) if len(node.input) > 1 else None
            if asset is None:
                self.problem(op, where, node.name, "reads a file that is not one of the model's own assets")
            return
        if op == "PrintV2":
            stream = attrs.get("output_stream")
            target = stream.s.decode("utf-8", "replace") if stream is not None else "stderr"
            if target not in PRINT_STREAMS:
                self.problem(op, where, node.name, f"prints to '{target}' (only stderr, stdout or the log)")
            return
        if op in _RESTORE_OPS:
            if not (restore_path and self.filename_tensor and node.input
                    and _tensor_name(node.input[0]) == self.filename_tensor):
                self.problem(op, where, node.name, "reads a checkpoint other than the one the loader restores")
            return
        if op in RUNS_DATA_AS_CODE:
            self.problem(op, where, node.name, "runs a graph or code carried as data")
        elif op not in ALLOWED_OPS:
            self.problem(op, where, node.name, "not on mlfit's allowlist of pure compute ops")

    def _resolve(self, value: Any, bindings: dict[str, Any]) -> Any:
        if value.WhichOneof("value") == "placeholder":
            return bindings.get(value.placeholder)
        return value

    def _functions_in(self, value: Any, bindings: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
        kind = value.WhichOneof("value")
        funcs = [value.func] if kind == "func" else list(value.list.func) if kind == "list" else []
        out: list[tuple[str, dict[str, Any]]] = []
        for func in funcs:
            attrs = {k: self._resolve(v, bindings) for k, v in func.attr.items()}
            for v in attrs.values():  # functions passed inside a function's attributes run too
                if v is not None:
                    out.extend(self._functions_in(v, bindings))
            out.append((func.name, {k: v for k, v in attrs.items() if v is not None}))
        return out

    def problem(self, op: str, where: str, node: str, why: str) -> None:
        self.scan.problems_found.append(Problem(op, where, node, why))


def _object_functions(graph: Any, node_id: int) -> list[str]:
    if not 0 <= node_id < len(graph.nodes):
        return []
    obj = graph.nodes[node_id]
    kind = obj.WhichOneof("kind")
    if kind == "function":
        return list(obj.function.concrete_functions)
    if kind == "bare_concrete_function":
        return [obj.bare_concrete_function.concrete_function_name]
    return []


def _children(graph: Any, node_ids: list[int], name: str) -> list[int]:
    """Every child called ``name`` of the given objects (a name given twice: judge both)."""
    out: list[int] = []
    for node_id in node_ids:
        if 0 <= node_id < len(graph.nodes):
            out.extend(int(ref.node_id) for ref in graph.nodes[node_id].children if ref.local_name == name)
    return out


def _safe_assets(meta: Any) -> list[str | None]:
    """Each asset's filename when TensorFlow resolves it inside the model's ``assets/`` folder."""
    out: list[str | None] = []
    for asset in meta.asset_file_def:
        name = asset.filename
        parts = name.replace("\\", "/").split("/")
        safe = bool(name) and "\x00" not in name and not name.startswith(("/", "\\", "~")) and ".." not in parts \
            and ":" not in name
        out.append(name if safe else None)
    return out


def _captures(meta: Any, function: str, assets: list[str | None]) -> tuple[str | None, ...]:
    """What each input of a TF2 concrete function carries when the loader calls it: the trailing
    inputs are its captures (``bound_inputs``), and a captured asset is the asset's file."""
    library = {f.signature.name: f for f in meta.graph_def.library.function}
    if function not in library or function not in meta.object_graph_def.concrete_functions:
        return ()
    bound = list(meta.object_graph_def.concrete_functions[function].bound_inputs)
    count = len(library[function].signature.input_arg)
    nodes = meta.object_graph_def.nodes
    sources: list[str | None] = [None] * max(count - len(bound), 0)
    for node_id in bound[-count:] if count else []:
        obj = nodes[node_id] if 0 <= node_id < len(nodes) else None
        index = obj.asset.asset_file_def_index if obj is not None and obj.WhichOneof("kind") == "asset" else -1
        sources.append(assets[index] if 0 <= index < len(assets) else None)
    return tuple(sources)


def _signature_tensors(meta: Any, key: str) -> list[str]:
    """Every tensor a signature names (dense, sparse and composite encodings)."""
    if key not in meta.signature_def:
        return []
    sig = meta.signature_def[key]
    out: list[str] = []
    for info in [*sig.inputs.values(), *sig.outputs.values()]:
        kind = info.WhichOneof("encoding")
        if kind == "name":
            out.append(info.name)
        elif kind == "coo_sparse":
            coo = info.coo_sparse
            out += [coo.values_tensor_name, coo.indices_tensor_name, coo.dense_shape_tensor_name]
        elif kind == "composite_tensor":
            out += [c.name for c in info.composite_tensor.components]
    return out


def scan_saved_model_proto(saved_model: Any, signature: str = "serving_default") -> GraphScan:
    """Judge a parsed ``tensorflow.SavedModel`` for loading and calling ``signature``."""
    scan = GraphScan()
    metas = list(saved_model.meta_graphs)
    if not metas:
        raise SavedModelError("no meta graph in the SavedModel")
    tf2 = len(metas) == 1 and metas[0].HasField("object_graph_def")
    scan.layout = "tf2" if tf2 else "tf1"
    for index, meta in enumerate(metas):
        where = "the graph" if len(metas) == 1 else f"meta graph {index}"
        filename = meta.saver_def.filename_tensor_name if meta.HasField("saver_def") else None
        assets = _safe_assets(meta)
        fed = {_node_name(a.tensor_info.name): name for a, name in zip(meta.asset_file_def, assets, strict=True)
               if name is not None}
        walker = _Walker(meta.graph_def, scan, None if tf2 else filename, fed)
        signature_roots = _signature_tensors(meta, signature)
        if tf2:
            objects = meta.object_graph_def
            sig_nodes = _children(objects, _children(objects, [0], "signatures"), signature)
            sig_functions = [name for node in sig_nodes for name in _object_functions(objects, node)]
            scan.signature_found = bool(sig_functions or signature_roots)
            for node in sig_nodes:
                if not _object_functions(objects, node):
                    walker.problem(f"signature '{signature}'", "the object graph", str(node), "is not a function")
            for name in sig_functions:
                walker.call(name, {}, f"signature '{signature}'", _captures(meta, name, assets))
            for node_id, obj in enumerate(objects.nodes):
                if obj.WhichOneof("kind") == "resource":
                    for ref in obj.children:
                        for name in _object_functions(objects, ref.node_id):
                            walker.call(name, {}, f"resource {ref.local_name}", _captures(meta, name, assets))
                for saveable in obj.saveable_objects.values():
                    for fn_id in (saveable.save_function, saveable.restore_function):
                        for name in _object_functions(objects, fn_id):
                            walker.call(name, {}, f"saveable of object {node_id}", _captures(meta, name, assets))
        else:
            scan.signature_found = scan.signature_found or bool(signature_roots)
            if filename:
                walker.top([meta.saver_def.restore_op_name, filename], f"{where} (variable restore)", True)
            init: list[str] = _signature_tensors(meta, "__saved_model_init_op")
            for key, collection in meta.collection_def.items():
                if key not in _INIT_COLLECTIONS:
                    continue
                init.extend(collection.node_list.value)
                init.extend(_variable_initializers(collection.bytes_list.value))
            init.extend(a.tensor_info.name for a in meta.asset_file_def)
            walker.top(init, f"{where} (init ops)")
        walker.top(signature_roots, f"signature '{signature}'")
        scan.functions += len(walker.functions)
    return scan


def _variable_initializers(serialized: Iterable[bytes]) -> list[str]:
    from mlfit.safety.tfproto import message_class

    out: list[str] = []
    cls = message_class("tensorflow.VariableDef")
    for data in serialized:
        try:
            var = cls.FromString(data)
        except Exception:  # not a VariableDef: TensorFlow's collection would fail to load too
            continue
        out.extend(n for n in (var.initializer_name, var.snapshot_name) if n)
    return out


def _read_regular(path: Path) -> bytes:
    """The bytes of a regular file inside the SavedModel folder, read through mlfit.safeio: devices,
    FIFOs and links out of the folder refused, capped per kind before reading (saved_model.pb at
    protobuf's 2 GiB limit, saved_model.pbtxt lower: text parses slowly)."""
    from mlfit import safeio

    kind = "saved_model_pbtxt" if path.suffix == ".pbtxt" else "saved_model_pb"
    return safeio.read_bounded(path, kind, path.name, within=path.parent)


def parse_savedmodel(folder: Path) -> Any:
    """The ``tensorflow.SavedModel`` TensorFlow would read from ``folder`` (pb first, then pbtxt)."""
    pb = folder / "saved_model.pb"
    try:
        if pb.exists() or pb.is_symlink():
            return parse_binary(_read_regular(pb))
        text = _read_regular(folder / "saved_model.pbtxt")
        try:
            decoded = text.decode("utf-8")
        except UnicodeDecodeError:
            raise SavedModelError("saved_model.pbtxt is not UTF-8 text") from None
        return parse_text(decoded)
    except ProtoError as exc:
        raise SavedModelError(str(exc)) from None
    except (MemoryError, RecursionError):
        raise SavedModelError("the SavedModel protobuf is too large or too deeply nested to parse") from None


def scan_savedmodel(folder: Path, signature: str = "serving_default") -> GraphScan:
    """Parse ``folder``'s SavedModel and judge what loading it and calling ``signature`` runs."""
    saved_model = parse_savedmodel(folder)
    try:
        return scan_saved_model_proto(saved_model, signature)
    except RecursionError:
        raise SavedModelError("the SavedModel's functions nest too deeply to check") from None
