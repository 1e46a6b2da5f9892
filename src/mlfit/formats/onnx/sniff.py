"""Whether bytes are an ONNX ModelProto: its top-level fields walked (headers only, payloads
skipped), without parsing anything into objects."""

from __future__ import annotations

from mlfit.formats._wire.protobuf import ByteSource, WireError, read_varint

# Top-level fields of onnx.ModelProto and their protobuf wire types.
_ONNX_FIELDS = {1: 0, 2: 2, 3: 2, 4: 2, 5: 0, 6: 2, 7: 2, 8: 2, 14: 2, 20: 2, 25: 2, 26: 2}
# A ModelProto has a dozen top-level fields (plus metadata and functions); a file of millions
# is not a model, and walking it would only cost time.
MAX_TOP_LEVEL_FIELDS = 100_000


def onnx_problem(data: ByteSource) -> str | None:
    """None when ``data`` parses as an ONNX ModelProto's top-level fields, else why not."""
    pos = 0
    seen_graph = False
    count = 0
    while pos < len(data):
        count += 1
        if count > MAX_TOP_LEVEL_FIELDS:
            return f"more than {MAX_TOP_LEVEL_FIELDS} top-level fields"
        try:
            key, pos = read_varint(data, pos)
        except WireError:
            return "truncated field header"
        number, wire = key >> 3, key & 7
        if _ONNX_FIELDS.get(number) != wire:
            return f"unexpected protobuf field {number} (wire type {wire}) at byte {pos}"
        try:
            if wire == 0:
                _, pos = read_varint(data, pos)
            else:
                length, pos = read_varint(data, pos)
                if pos + length > len(data):
                    return f"truncated: field {number} needs {length} bytes, {len(data) - pos} remain"
                pos += length
        except WireError as exc:
            return str(exc)
        seen_graph = seen_graph or number == 7
    return None if seen_graph else "no graph in the file"
