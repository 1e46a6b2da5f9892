"""TFLite flatbuffers: recognised by the ``TFL3`` identifier, judged by the TFLite op scan
(custom and Flex ops against allowlists), declared inputs read from the flatbuffer with the
shared bounded reader (:mod:`mlfit.formats._wire.flatbuffers`)."""

from __future__ import annotations

import mmap
from pathlib import Path

from mlfit.catalog.schema import Runtime
from mlfit.formats._wire.flatbuffers import FlatBuffer
from mlfit.formats.base import TFLITE_CONVERTERS, BaseFormat, Declared, free_leading
from mlfit.formats.kinds import ModelFormat
from mlfit.result import TensorInfo

TFLITE_DTYPES = {0: "float32", 1: "float16", 2: "int32", 3: "uint8", 4: "int64", 5: "string", 6: "bool",
                  7: "int16", 9: "int8", 10: "float64", 12: "uint64", 15: "uint32", 16: "uint16"}


def declared_inputs(path: Path) -> Declared | None:
    """Subgraph 0's inputs (with quantization) and GATHER table ranges, from the flatbuffer."""
    from mlfit import safeio

    with safeio.open_regular(path, "the TFLite model") as fh, mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as buf:
        flat = FlatBuffer(buf)
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
            dtype = TFLITE_DTYPES.get(flat.byte(tensor, 1))
            if dtype is None:
                return None
            signature = flat.ints(tensor, 7) or flat.ints(tensor, 0)
            inputs.append(TensorInfo(name=name, dtype=dtype, shape=free_leading(signature)))
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


def _tflite_ranges(flat: FlatBuffer, root: int, graph: int, tensors: list[int],
                   input_indices: list[int]) -> tuple[dict[str, tuple[float, float]], dict[str, str]]:
    """[0, rows) for an input that reaches a GATHER's indices (or EMBEDDING_LOOKUP's ids) through
    value-preserving ops; a Keras Embedding converts to SELECT_V2(x < 0, x + n, x) then GATHER."""
    codes = []
    for code in flat.tables(root, 1):
        deprecated = flat.byte(code, 0)
        pos = flat.field(code, 3)
        builtin = flat.i32(pos) if pos is not None else 0
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


class TFLite(BaseFormat):
    kind = ModelFormat.TFLITE
    runtime = Runtime.TFLITE
    suffixes: tuple[str, ...] = (".tflite",)
    converters = TFLITE_CONVERTERS

    def check_safety(self, path: Path, trust_model: bool, signature: str) -> None:
        if not trust_model:
            from mlfit.safety import check_tflite

            check_tflite(path)

    def declared_inputs(self, path: Path, signature: str) -> Declared | None:
        return declared_inputs(path)


FORMAT = TFLite()
