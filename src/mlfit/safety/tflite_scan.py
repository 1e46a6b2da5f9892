"""Judge a TFLite model's custom and Flex (Select TF) ops against allowlists, reading the
flatbuffer directly (a small bounded reader; no interpreter, no TensorFlow).

TFLite builtin ops compute on tensors and carry no code. Two kinds of op can do more:

- **Flex ops** (``custom_code`` "Flex<Op>", converted with ``SELECT_TF_OPS``) run a TensorFlow
  kernel described by a ``NodeDef`` stored in the operator's ``custom_options`` (a flexbuffer
  vector ``[op name, serialized NodeDef]``). That NodeDef, the op that actually runs, is
  parsed with TensorFlow's descriptors and judged by the same allowlist as SavedModels
  (:data:`mlfit.safety.tf_ops.ALLOWED_OPS`); a function-valued attribute or an attribute
  placeholder is refused, and so is a name that differs from the NodeDef's op.
- **Other custom ops** need a registration in the interpreter; only those the stock
  interpreter ships are allowed (:data:`ALLOWED_CUSTOM_OPS`).

Everything else is refused by name (exit 3) unless ``--trust-model``.
"""

from __future__ import annotations

import mmap
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlfit.formats._wire.flatbuffers import FlatBuffer
from mlfit.safety.tf_ops import ALLOWED_OPS, PRINT_STREAMS

ALLOWED_CUSTOM_OPS = frozenset({"TFLite_Detection_PostProcess", "Mfcc", "AudioSpectrogram"})
CUSTOM = 32  # BuiltinOperator.CUSTOM
MAX_OPERATORS = 2_000_000
MAX_SUBGRAPHS = 10_000


class TFLiteScanError(Exception):
    """The flatbuffer cannot be read."""


@dataclass
class TFLiteScan:
    custom_ops: dict[str, int] = field(default_factory=dict)  # custom_code -> uses
    flex_ops: dict[str, int] = field(default_factory=dict)  # TF op run through Flex -> uses
    problems: list[str] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)  # op names, first-seen order


def _flex_vector(blob: bytes) -> list[bytes]:
    """The strings/blobs of a flexbuffer vector (the Flex op's ``[name, NodeDef]``)."""
    if len(blob) < 3:
        raise TFLiteScanError("Flex op options too short")
    root_width = blob[-1]
    packed = blob[-2]
    if root_width not in (1, 2, 4, 8) or len(blob) < 2 + root_width:
        raise TFLiteScanError("Flex op options are not a flexbuffer")
    root_pos = len(blob) - 2 - root_width
    kind, width = packed >> 2, 1 << (packed & 3)

    def uint(pos: int, size: int) -> int:
        if pos < 0 or pos + size > len(blob):
            raise TFLiteScanError("a flexbuffer offset points outside the options")
        return int.from_bytes(blob[pos : pos + size], "little")

    if kind != 10:  # FBT_VECTOR (untyped)
        raise TFLiteScanError(f"Flex op options are not a flexbuffer vector (type {kind})")
    vec = root_pos - uint(root_pos, root_width)
    length = uint(vec - width, width)
    if length > 16:
        raise TFLiteScanError("Flex op options hold an unexpected vector")
    types = [uint(vec + length * width + i, 1) for i in range(length)]
    out: list[bytes] = []
    for i, item_packed in enumerate(types):
        item_kind = item_packed >> 2
        if item_kind not in (5, 25):  # FBT_STRING, FBT_BLOB
            raise TFLiteScanError("Flex op options hold something other than strings")
        item = vec + i * width
        data = item - uint(item, width)
        size = uint(data - width, width)
        if data + size > len(blob):
            raise TFLiteScanError("a flexbuffer string runs past the options")
        out.append(blob[data : data + size])
    return out


def _judge_flex(code: str, options: bytes | None, scan: TFLiteScan) -> None:
    from mlfit.safety.tfproto import ProtoError, parse_binary

    name = code[len("Flex"):]
    if options is None:
        raise TFLiteScanError(f"Flex op {name} without its NodeDef")
    parts = _flex_vector(options)
    if len(parts) < 2:
        raise TFLiteScanError(f"Flex op {name} without its NodeDef")
    try:
        node = parse_binary(parts[1], "tensorflow.NodeDef")
    except ProtoError as exc:
        raise TFLiteScanError(f"Flex op {name}: {exc}") from None
    op = node.op
    scan.flex_ops[op] = scan.flex_ops.get(op, 0) + 1
    why = None
    if op != name or parts[0].decode("utf-8", "replace") != op:
        why = f"named {name} but runs {op}"
    elif op not in ALLOWED_OPS:
        why = "not on mlfit's allowlist of pure compute ops"
    elif any(v.WhichOneof("value") in ("func", "placeholder") or (v.WhichOneof("value") == "list" and v.list.func)
             for v in node.attr.values()):
        why = "carries a function or an unresolved attribute"
    elif op == "PrintV2" and "output_stream" in node.attr and (
            node.attr["output_stream"].s.decode("utf-8", "replace") not in PRINT_STREAMS):
        why = "prints to a file"
    if why:
        scan.problems.append(f"Flex op {op}: {why}")
        if op not in scan.refused:
            scan.refused.append(op)


def scan_tflite_bytes(data: Any) -> TFLiteScan:
    buf = FlatBuffer(data, TFLiteScanError)
    scan = TFLiteScan()
    root = buf.deref(0)
    codes: list[tuple[int, str | None]] = []
    for table in buf.tables(root, 1, 100_000):  # Model.operator_codes
        deprecated = buf.field(table, 0)
        builtin = buf.field(table, 3)
        code = max(buf.u8(deprecated) if deprecated else 0, buf.i32(builtin) if builtin else 0)
        raw = buf.bytes_field(table, 1)
        codes.append((code, raw.decode("utf-8", "replace") if raw is not None else None))
    total = 0
    for subgraph in buf.tables(root, 2, MAX_SUBGRAPHS):  # Model.subgraphs
        for operator in buf.tables(subgraph, 3, MAX_OPERATORS):  # SubGraph.operators
            total += 1
            if total > MAX_OPERATORS:
                raise TFLiteScanError(f"more than {MAX_OPERATORS} operators")
            index_pos = buf.field(operator, 0)
            index = buf.u32(index_pos) if index_pos else 0
            if index >= len(codes):
                raise TFLiteScanError("an operator names an operator code that does not exist")
            code, custom = codes[index]
            if code != CUSTOM:
                continue
            custom = custom or ""
            if custom.startswith("Flex"):
                options = buf.bytes_field(operator, 5)
                large_at, large_size = buf.field(operator, 9), buf.field(operator, 10)
                if options is None and large_at and large_size:
                    start, size = buf.u64(large_at), buf.u64(large_size)
                    buf.need(start, size)
                    options = bytes(data[start : start + size])
                _judge_flex(custom, options, scan)
                continue
            scan.custom_ops[custom] = scan.custom_ops.get(custom, 0) + 1
            if custom not in ALLOWED_CUSTOM_OPS and custom not in scan.refused:
                scan.refused.append(custom)
                scan.problems.append(f"custom op {custom!r}: not one the stock interpreter ships")
    return scan


def scan_tflite(path: Path) -> TFLiteScan:
    try:
        with open(path, "rb") as fh:
            if fh.seek(0, 2) == 0:
                raise TFLiteScanError("the file is empty")
            with mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as view:
                return scan_tflite_bytes(view)
    except (OSError, ValueError) as exc:
        raise TFLiteScanError(f"cannot read: {exc}") from None
    except (struct.error, IndexError, RecursionError, MemoryError) as exc:
        raise TFLiteScanError(f"malformed flatbuffer ({type(exc).__name__})") from None
