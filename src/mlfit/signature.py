"""What a model file states about its inputs, read in the parent without importing a runtime.

Used before the worker starts (:func:`plan_inputs`), so that a run that cannot succeed stops in
a fraction of a second instead of after TensorFlow's 17 s import, and so that the values fed
to integer inputs come from the model instead of a guess:

- declared inputs (name, dtype, shape) per format: ONNX graph inputs; a SavedModel's signature
  def in ``saved_model.pb``; a Keras config's input layers (``.keras`` and ``.h5``); a TFLite
  flatbuffer's subgraph inputs (and their quantization); a ``.skops`` schema's
  ``n_features_in_``. Pickles state nothing readable without unpickling: the worker decides.
  Names and dims follow the backends exactly (a free leading dim is ``batch`` in TensorFlow,
  TFLite and scikit-learn), so a flag suggested here is the flag the worker accepts.
- the valid range of integer inputs where the graph determines it: the rows of the table an
  input indexes (ONNX Gather / EmbedLayerNormalization, Keras Embedding ``input_dim``), a OneHot
  depth, a Clip's bounds, followed through value-preserving ops (casts, reshapes, the branches of a
  Where/SELECT: exporters turn ``x < 0 ? x + n : x`` into one). Comparisons alone (Less, Greater)
  are not used: they test a value, they do not bound it.

Anything that cannot be read (an odd file, a truncated protobuf) gives None: the worker, which
loads the model, still checks everything; this module only lets the parent refuse earlier.
"""

from __future__ import annotations

import json
import mmap
import struct
import zipfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlfit.errors import ConfigError
from mlfit.formats import ModelFormat, read_varint
from mlfit.inputspec import InputSpec, batch_filled, refuse_unranged_integers, resolve_shapes
from mlfit.result import TensorInfo

if TYPE_CHECKING:
    from mlfit.catalog.loader import Target

BATCH_DIM = "batch"  # the name TensorFlow, TFLite and scikit-learn backends give a free leading dim
_MAX_PB_BYTES = 512 * 2**20  # saved_model.pb larger than this: leave it to the worker
_MAX_JSON_BYTES = 64 * 2**20


@dataclass(frozen=True)
class Declared:
    """A model's inputs as its file states them, with what the graph says about their values."""

    inputs: list[TensorInfo]
    quantized: frozenset[str] = frozenset()  # integer inputs that are quantized reals (TFLite)
    ranges: dict[str, tuple[float, float]] = field(default_factory=dict)  # [low, high), by input
    range_sources: dict[str, str] = field(default_factory=dict)


def _free_leading(shape: Sequence[int | None]) -> list[int | str | None]:
    """TensorFlow/TFLite convention (backends/tensorflow.spec_shape): -1/None leading is 'batch'."""
    return [d if isinstance(d, int) and d >= 0 else (BATCH_DIM if i == 0 else None) for i, d in enumerate(shape)]


# ---------------------------------------------------------------- ONNX

_PASS_THROUGH = {"Cast", "Reshape", "Unsqueeze", "Squeeze", "Flatten", "Identity", "Expand", "Transpose",
                 "Slice", "Tile", "Gather"}  # value-preserving when the tensor is their first input


def _onnx_constants(graph: Any) -> dict[str, Any]:
    from onnx import numpy_helper

    small: dict[str, Any] = {}
    for tensor in graph.initializer:
        if tensor.data_location != 1 and len(tensor.dims) <= 1 and (not tensor.dims or tensor.dims[0] <= 16):
            small[tensor.name] = numpy_helper.to_array(tensor)
    for node in graph.node:
        if node.op_type == "Constant" and node.output:
            for attr in node.attribute:
                if attr.name == "value" and len(attr.t.dims) <= 1 and (not attr.t.dims or attr.t.dims[0] <= 16):
                    small[node.output[0]] = numpy_helper.to_array(attr.t)
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
        value = constants.get(name)
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


def _onnx(path: Path) -> Declared | None:
    from mlfit.analysis.graph import StaticTooLarge, _dtype_name, _shape, check_static_bounds, load_onnx_proto

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


# ---------------------------------------------------------------- SavedModel (protobuf by hand)

_TF_DTYPES = {1: "float32", 2: "float64", 3: "int32", 4: "uint8", 5: "int16", 6: "int8", 7: "string", 9: "int64",
              10: "bool", 14: "bfloat16", 17: "uint16", 19: "float16", 22: "uint32", 23: "uint64"}


def _fields(data: memoryview) -> Iterator[tuple[int, int | memoryview]]:
    """(field number, int or bytes) of one protobuf message; ValueError when malformed."""
    pos, end = 0, len(data)
    while pos < end:
        key, pos = read_varint(data, pos)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = read_varint(data, pos)
            yield number, value
        elif wire == 2:
            length, pos = read_varint(data, pos)
            if pos + length > end:
                raise ValueError("truncated field")
            yield number, data[pos:pos + length]
            pos += length
        elif wire in (1, 5):
            pos += 8 if wire == 1 else 4
        else:
            raise ValueError(f"wire type {wire}")


def _message(data: memoryview, number: int) -> list[memoryview]:
    return [v for n, v in _fields(data) if n == number and isinstance(v, memoryview)]


def _int64(value: int) -> int:
    return value - (1 << 64) if value >= 1 << 63 else value


def _savedmodel(path: Path, signature: str) -> Declared | None:
    from mlfit import safeio
    from mlfit.errors import MlfitError

    pb = path / "saved_model.pb"
    if not pb.is_file() or pb.stat().st_size > _MAX_PB_BYTES:
        return None
    try:  # a regular file inside the folder, read within its cap (mlfit.safeio)
        data = memoryview(safeio.read_bounded(pb, "saved_model_pb", "saved_model.pb", within=path))
    except MlfitError:
        return None
    for meta in _message(data, 2):
        for entry in _message(meta, 5):  # map<string, SignatureDef>
            key = next((bytes(v).decode("utf-8", "replace") for n, v in _fields(entry)
                        if n == 1 and isinstance(v, memoryview)), "")
            if key != signature:
                continue
            inputs: list[TensorInfo] = []
            for sig in _message(entry, 2):
                for item in _message(sig, 1):  # map<string, TensorInfo>
                    name, dtype, shape = "", "", None
                    for n, v in _fields(item):
                        if n == 1 and isinstance(v, memoryview):
                            name = bytes(v).decode("utf-8", "replace")
                        elif n == 2 and isinstance(v, memoryview):
                            info = dict(_fields(v))
                            dtype_code = info.get(2)
                            dtype = _TF_DTYPES.get(dtype_code, "") if isinstance(dtype_code, int) else ""
                            shape_msg = info.get(3)
                            if isinstance(shape_msg, memoryview):
                                shape_fields = list(_fields(shape_msg))
                                if any(k == 3 and v2 for k, v2 in shape_fields):
                                    return None  # unknown rank: only the worker can say
                                dims = []
                                for k, dim in shape_fields:
                                    if k == 2 and isinstance(dim, memoryview):
                                        size = next((d for m, d in _fields(dim) if m == 1 and isinstance(d, int)), 0)
                                        dims.append(_int64(size))
                                shape = dims
                            else:
                                shape = []
                    if not dtype or shape is None:
                        return None
                    inputs.append(TensorInfo(name=name, dtype=dtype, shape=_free_leading(shape)))
            return Declared(inputs=sorted(inputs, key=lambda t: t.name))
    return None  # no such signature: the worker says which exist


# ---------------------------------------------------------------- Keras

def _keras_dtype(value: Any) -> str:
    if isinstance(value, dict):  # a DTypePolicy
        value = (value.get("config") or {}).get("name")
    return {"float": "float32", "half": "float16", "double": "float64"}.get(str(value), str(value or "float32"))


def _inbound_names(layer: dict[str, Any]) -> list[str]:
    """Names of the layers feeding ``layer`` (Keras 3 keras_history, or Keras 2 nested lists)."""
    names: list[str] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            history = (node.get("config") or {}).get("keras_history") if "config" in node else None
            if isinstance(history, list) and history and isinstance(history[0], str):
                names.append(history[0])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            if len(node) >= 3 and isinstance(node[0], str) and isinstance(node[1], int):
                names.append(node[0])
            for value in node:
                walk(value)

    walk(layer.get("inbound_nodes", []))
    return names


def keras_declared(config: Any) -> Declared | None:
    """Inputs and Embedding ranges from a Keras model config (Sequential or Functional)."""
    if not isinstance(config, dict):
        return None
    body = config.get("config") or {}
    layers = [layer for layer in body.get("layers", []) if isinstance(layer, dict)]
    inputs: list[TensorInfo] = []
    ranges: dict[str, tuple[float, float]] = {}
    sources: dict[str, str] = {}
    for layer in layers:
        if layer.get("class_name") != "InputLayer":
            continue
        cfg = layer.get("config") or {}
        shape = cfg.get("batch_shape", cfg.get("batch_input_shape"))
        if not isinstance(shape, list):
            return None
        inputs.append(TensorInfo(name=str(cfg.get("name") or layer.get("name")), dtype=_keras_dtype(cfg.get("dtype")),
                                 shape=_free_leading(shape)))
    if config.get("class_name") == "Sequential":
        if not inputs:  # Keras 2 Sequential: no InputLayer, and the worker names the input itself
            return None
        body_layers = [la for la in layers if la.get("class_name") != "InputLayer"]
        if len(inputs) == 1 and body_layers and body_layers[0].get("class_name") == "Embedding":
            n = (body_layers[0].get("config") or {}).get("input_dim")
            if isinstance(n, int) and n > 0:
                ranges[inputs[0].name] = (0, n)
                sources[inputs[0].name] = f"the model: feeds Embedding '{body_layers[0]['config'].get('name')}' " \
                                          f"of input_dim {n}"
    else:
        input_names = {t.name for t in inputs}
        for layer in layers:
            if layer.get("class_name") != "Embedding":
                continue
            n = (layer.get("config") or {}).get("input_dim")
            feeding = sorted({name for name in _inbound_names(layer) if name in input_names})
            if isinstance(n, int) and n > 0 and len(feeding) == 1:
                ranges[feeding[0]] = (0, n)
                label = layer.get("name") or layer["config"].get("name")
                sources[feeding[0]] = f"the model: feeds Embedding '{label}' of input_dim {n}"
        declared_order = body.get("input_layers")
        if isinstance(declared_order, list) and declared_order and isinstance(declared_order[0], list):
            order = [str(item[0]) for item in declared_order if isinstance(item, list) and item]
            if sorted(order) == sorted(t.name for t in inputs):
                inputs = sorted(inputs, key=lambda t: order.index(t.name))
    if not inputs:
        return None
    return Declared(inputs=inputs, ranges=ranges, range_sources=sources)


def _keras(path: Path, fmt: ModelFormat) -> Declared | None:
    from mlfit.safety.keras_scan import KerasConfigError, h5_config, keras_zip_config

    try:
        config = keras_zip_config(path) if fmt is ModelFormat.KERAS else h5_config(path)
    except KerasConfigError:
        return None
    declared = keras_declared(config)
    return declared if declared is not None and declared.inputs else None


# ---------------------------------------------------------------- TFLite (flatbuffer by hand)

_TFLITE_DTYPES = {0: "float32", 1: "float16", 2: "int32", 3: "uint8", 4: "int64", 5: "string", 6: "bool",
                  7: "int16", 9: "int8", 10: "float64", 12: "uint64", 15: "uint32", 16: "uint16"}


class _Flat:
    """Just enough of the flatbuffers wire format to read a TFLite model's tensors."""

    def __init__(self, buf: Any) -> None:
        self.buf = buf

    def u32(self, pos: int) -> int:
        return int(struct.unpack_from("<I", self.buf, pos)[0])

    def field(self, table: int, index: int) -> int | None:
        vtable = table - struct.unpack_from("<i", self.buf, table)[0]
        size = struct.unpack_from("<H", self.buf, vtable)[0]
        slot = 4 + 2 * index
        if slot >= size:
            return None
        offset = struct.unpack_from("<H", self.buf, vtable + slot)[0]
        return table + offset if offset else None

    def vector(self, table: int, index: int) -> tuple[int, int]:
        pos = self.field(table, index)
        if pos is None:
            return 0, 0
        start = pos + self.u32(pos)
        return start + 4, self.u32(start)

    def tables(self, table: int, index: int) -> list[int]:
        start, n = self.vector(table, index)
        return [start + 4 * i + self.u32(start + 4 * i) for i in range(n)]

    def ints(self, table: int, index: int, fmt: str = "<i") -> list[Any]:
        start, n = self.vector(table, index)
        width = struct.calcsize(fmt)
        return [struct.unpack_from(fmt, self.buf, start + width * i)[0] for i in range(n)]

    def string(self, table: int, index: int) -> str:
        start, n = self.vector(table, index)
        return bytes(self.buf[start:start + n]).decode("utf-8", "replace")

    def byte(self, table: int, index: int) -> int:
        pos = self.field(table, index)
        return 0 if pos is None else int(self.buf[pos])


def _tflite(path: Path) -> Declared | None:
    from mlfit import safeio

    with safeio.open_regular(path, "the TFLite model") as fh, mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as buf:
        flat = _Flat(buf)
        root = flat.u32(0)
        subgraphs = flat.tables(root, 2)
        if not subgraphs:
            return None
        graph = subgraphs[0]
        tensors = flat.tables(graph, 0)
        inputs: list[TensorInfo] = []
        quantized: set[str] = set()
        for index in flat.ints(graph, 1):
            if not 0 <= index < len(tensors):
                return None
            tensor = tensors[index]
            name = flat.string(tensor, 3)
            dtype = _TFLITE_DTYPES.get(flat.byte(tensor, 1))
            if dtype is None:
                return None
            signature = flat.ints(tensor, 7) or flat.ints(tensor, 0)
            inputs.append(TensorInfo(name=name, dtype=dtype, shape=_free_leading(signature)))
            quant = flat.field(tensor, 4)
            if quant is not None:
                params = quant + flat.u32(quant)
                scales = flat.ints(params, 2, "<f")
                if scales and scales[0] and dtype in ("int8", "uint8", "int16", "int32", "uint16"):
                    quantized.add(name)
        ranges, sources = _tflite_ranges(flat, root, graph, tensors, list(flat.ints(graph, 1)))
        return Declared(inputs=inputs, quantized=frozenset(quantized), ranges=ranges, range_sources=sources)


# TFLite builtin operator codes (schema.fbs BuiltinOperator) used to follow an index to its table.
_TFL_GATHER, _TFL_EMBEDDING_LOOKUP = 36, 7
# op code -> operand positions that carry the value through unchanged (SELECT's branches).
_TFL_PASS_THROUGH = {53: (0,), 22: (0,), 43: (0,), 70: (0,), 39: (0,), 64: (1, 2), 123: (1, 2)}


def _tflite_ranges(flat: _Flat, root: int, graph: int, tensors: list[int],
                   input_indices: list[int]) -> tuple[dict[str, tuple[float, float]], dict[str, str]]:
    """[0, rows) for an input that reaches a GATHER's indices (or EMBEDDING_LOOKUP's ids) through
    value-preserving ops; a Keras Embedding converts to SELECT_V2(x < 0, x + n, x) then GATHER."""
    codes = []
    for code in flat.tables(root, 1):
        deprecated = flat.byte(code, 0)
        pos = flat.field(code, 3)
        builtin = int(struct.unpack_from("<i", flat.buf, pos)[0]) if pos is not None else 0
        codes.append(max(deprecated, builtin))
    consumers: dict[int, list[tuple[int, int, list[int], list[int]]]] = {}
    for op in flat.tables(graph, 3):
        pos = flat.field(op, 0)
        opcode = codes[flat.u32(pos)] if pos is not None and flat.u32(pos) < len(codes) else -1
        ins, outs = list(flat.ints(op, 1)), list(flat.ints(op, 2))
        for slot, tensor in enumerate(ins):
            consumers.setdefault(tensor, []).append((opcode, slot, ins, outs))
    ranges: dict[str, tuple[float, float]] = {}
    sources: dict[str, str] = {}
    for index in input_indices:
        name = flat.string(tensors[index], 3)
        frontier, seen = [index], {index}
        while frontier:
            for opcode, slot, ins, outs in consumers.get(frontier.pop(), []):
                table = ins[0] if (opcode, slot) == (_TFL_GATHER, 1) else \
                    ins[1] if (opcode, slot) == (_TFL_EMBEDDING_LOOKUP, 0) else None
                if table is not None and 0 <= table < len(tensors) and table not in input_indices:
                    shape = flat.ints(tensors[table], 0)
                    if shape and shape[0] > 0 and (name not in ranges or shape[0] < ranges[name][1]):
                        ranges[name] = (0, int(shape[0]))
                        sources[name] = (f"the model: indexes the {shape[0]}-row table "
                                         f"'{flat.string(tensors[table], 3)}' (GATHER)")
                if slot in _TFL_PASS_THROUGH.get(opcode, ()):
                    for out in outs:
                        if out not in seen:
                            seen.add(out)
                            frontier.append(out)
    return ranges, sources


# ---------------------------------------------------------------- skops

def _skops_n_features(node: Any, depth: int = 0) -> int | None:
    """The first ``n_features_in_`` in a skops schema tree (the estimator's, or a pipeline's first step's)."""
    if depth > 64:
        return None
    if isinstance(node, dict):
        value = node.get("n_features_in_")
        if isinstance(value, dict) and isinstance(value.get("content"), (int, str)):
            try:
                return int(value["content"])
            except ValueError:
                return None
        if isinstance(value, int):
            return value
        for child in node.values():
            found = _skops_n_features(child, depth + 1)
            if found is not None:
                return found
    elif isinstance(node, list):
        for child in node:
            found = _skops_n_features(child, depth + 1)
            if found is not None:
                return found
    return None


def _skops(path: Path) -> Declared | None:
    from mlfit import safeio

    with safeio.open_regular(path, "the .skops archive") as fh, safeio.open_zip(fh, path) as archive:
        info = archive.getinfo("schema.json")
        if info.file_size > _MAX_JSON_BYTES:
            return None
        schema = safeio.loads_bounded(safeio.read_zip_member(archive, "schema.json", path), path,
                                      "schema.json in the archive")
    n = _skops_n_features(schema)
    if n is None:
        return None
    return Declared(inputs=[TensorInfo(name="X", dtype="float64", shape=[BATCH_DIM, n])])


def declared_inputs(path: Path, fmt: ModelFormat, signature: str = "serving_default") -> Declared | None:
    """The inputs a model file states, or None where the file does not say (or cannot be read here)."""
    try:
        if fmt is ModelFormat.ONNX:
            return _onnx(path)
        if fmt is ModelFormat.SAVEDMODEL:
            return _savedmodel(path, signature)
        if fmt in (ModelFormat.KERAS, ModelFormat.H5):
            return _keras(path, fmt)
        if fmt is ModelFormat.TFLITE:
            return _tflite(path)
        if fmt is ModelFormat.SKOPS:
            return _skops(path)
    except (ValueError, KeyError, OSError, struct.error, IndexError, zipfile.BadZipFile, RecursionError,
            UnicodeDecodeError, json.JSONDecodeError, TypeError, AttributeError):
        return None
    except Exception as exc:  # onnx's DecodeError and friends: the worker gives the real message
        if type(exc).__name__ in ("DecodeError", "ModelError"):
            return None
        raise
    return None


# ---------------------------------------------------------------- the plan

def choose_batch(targets: Sequence[Target], batch: int | None) -> tuple[int, str]:
    """The batch that fills free leading dims, and why (for the report)."""
    if batch is not None:
        return batch, "--batch"
    sizes = sorted({t.profile.batch_size for t in targets})
    if not sizes:
        return 1, "no target, so single-stream batch 1"
    names = ", ".join(t.name for t in targets if t.profile.batch_size == sizes[0])
    if len(sizes) == 1:
        return sizes[0], f"the batch_size of target {names}"
    # Each deployment configuration feeds its own targets' batch (mlfit.run.configs); this is the first's.
    return sizes[0], (f"the batch_size of each target's configuration, one run each ({names}: {sizes[0]}; "
                      f"others {', '.join(map(str, sizes[1:]))})")


def _npz_names(path: str) -> set[str]:
    from mlfit import safeio
    from mlfit.errors import MlfitError

    try:  # a regular file, its zip directory bounded (mlfit.safeio)
        with safeio.open_regular(Path(path), "the --data file") as fh, safeio.open_zip(fh, Path(path)) as archive:
            return {n[:-4] for n in archive.namelist() if n.endswith(".npy")}
    except (OSError, MlfitError):
        return set()


@dataclass(frozen=True)
class InputPlan:
    spec: InputSpec
    notes: list[str]
    shapes: dict[str, list[int]] | None  # concrete shapes when the file states its inputs
    # Every input's leading dim is free, so a batched-throughput phase can run (the worker's rule);
    # None where the file does not state its inputs. Fixed: one configuration serves every batch.
    batch_free: bool | None = None


def plan_inputs(path: Path, fmt: ModelFormat, targets: Sequence[Target], spec: InputSpec,
                batch: int | None = None, signature: str = "serving_default") -> InputPlan:
    """Fill the batch, read integer ranges from the model, and refuse (ConfigError, exit 2) what
    cannot be measured, before any worker starts, for every format whose file states its inputs."""
    if spec.batch is None:
        size, why = choose_batch(targets, batch)
        spec = spec.model_copy(update={"batch": size, "batch_source": why})
    declared = declared_inputs(path, fmt, signature)
    if declared is None:
        return InputPlan(spec, [], None)
    derived = {k: v for k, v in declared.ranges.items() if k not in spec.ranges and k not in spec.values}
    if derived:
        reasons = {k: declared.range_sources.get(k, "the model") for k in derived}
        spec = spec.model_copy(update={"derived_ranges": {**spec.derived_ranges, **derived},
                                       "range_sources": {**spec.range_sources, **reasons}})
    data_names = set(spec.data_arrays) | (_npz_names(spec.data_file) if spec.data_file else set())
    checked = [t for t in declared.inputs if t.name not in data_names]
    problems: list[ConfigError] = []
    shapes: dict[str, list[int]] | None = None
    try:
        shapes = resolve_shapes(checked, spec.model_copy(update={"data_arrays": {}}), {}) if len(checked) == len(
            declared.inputs) else _resolve_partial(checked, spec)
    except ConfigError as exc:
        problems.append(exc)
    try:
        refuse_unranged_integers(declared.inputs, spec, data_names, set(declared.quantized))
    except ConfigError as exc:
        problems.append(exc)
    if problems:  # every missing flag in one message: one round trip
        raise ConfigError("; and ".join(p.message for p in problems),
                          "; ".join(p.hint for p in problems if p.hint) or None)
    notes: list[str] = []
    filled = batch_filled(declared.inputs, spec, data_names)
    if filled:
        notes.append(f"batch dim of {', '.join(filled)} set to {spec.batch} from {spec.batch_source} "
                     f"(--batch N or --dim NAME=N sets it)")
    for name in derived:
        low, high = derived[name]
        notes.append(f"input {name}: values uniform in [{low:g}, {high:g}) from {spec.range_sources[name]} "
                     f"(--range {name}=LOW:HIGH overrides)")
    free = bool(declared.inputs) and all(t.shape and not isinstance(t.shape[0], int) for t in declared.inputs)
    return InputPlan(spec, notes, shapes, batch_free=free)


def _resolve_partial(inputs: list[TensorInfo], spec: InputSpec) -> dict[str, list[int]] | None:
    """With --data for some inputs, the others are still checked; their shapes are not all known."""
    names = {t.name for t in inputs}
    trimmed = spec.model_copy(update={
        "data_arrays": {}, "data_file": None, "shapes": {k: v for k, v in spec.shapes.items() if k in names},
        "values": {k: v for k, v in spec.values.items() if k in names},
        "ranges": {k: v for k, v in spec.ranges.items() if k in names}})
    try:
        resolve_shapes(inputs, trimmed, {})
    except ConfigError as exc:
        if "which the model does not have" not in exc.message:
            raise
    return None
