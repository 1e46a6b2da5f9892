"""Recognise a model's format from its content (magic bytes, zip members, directory
layout), never from its suffix alone. Pure Python; imports no runtime.
"""

from __future__ import annotations

import zipfile
from enum import Enum
from pathlib import Path

from mlfit.catalog.schema import Runtime
from mlfit.errors import ModelError


class ModelFormat(str, Enum):
    ONNX = "onnx"
    SAVEDMODEL = "savedmodel"
    KERAS = "keras"
    H5 = "h5"
    TFLITE = "tflite"
    SKOPS = "skops"
    PICKLE = "pickle"  # .pkl, .joblib, and joblib files compressed with zlib/gzip/bz2/xz/lzma/lz4

    @property
    def runtime(self) -> Runtime:
        return {
            ModelFormat.ONNX: Runtime.ONNXRUNTIME,
            ModelFormat.SAVEDMODEL: Runtime.TENSORFLOW,
            ModelFormat.KERAS: Runtime.TENSORFLOW,
            ModelFormat.H5: Runtime.TENSORFLOW,
            ModelFormat.TFLITE: Runtime.TFLITE,
            ModelFormat.SKOPS: Runtime.SKLEARN,
            ModelFormat.PICKLE: Runtime.SKLEARN,
        }[self]


_SUFFIXES = {
    ".onnx": ModelFormat.ONNX, ".keras": ModelFormat.KERAS, ".h5": ModelFormat.H5, ".hdf5": ModelFormat.H5,
    ".tflite": ModelFormat.TFLITE, ".skops": ModelFormat.SKOPS, ".pkl": ModelFormat.PICKLE,
    ".pickle": ModelFormat.PICKLE, ".joblib": ModelFormat.PICKLE,
}  # fmt: skip
# What --convert can do (mlfit.convert), here so that checks can suggest it without importing it:
# source runtime -> destination runtime -> (converter module to probe, tool name).
CONVERTERS: dict[Runtime, dict[Runtime, tuple[str, str]]] = {
    Runtime.SKLEARN: {Runtime.ONNXRUNTIME: ("skl2onnx", "skl2onnx")},
    Runtime.TENSORFLOW: {
        Runtime.ONNXRUNTIME: ("tf2onnx", "tf2onnx"),
        Runtime.TFLITE: ("tensorflow", "the TFLite converter"),
    },
}
_HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"
# Top-level fields of onnx.ModelProto and their protobuf wire types.
_ONNX_FIELDS = {1: 0, 2: 2, 3: 2, 4: 2, 5: 0, 6: 2, 7: 2, 8: 2, 14: 2, 20: 2, 25: 2, 26: 2}


def read_varint(data: bytes, pos: int) -> tuple[int, int]:
    """A protobuf varint at ``pos``: (value, next position); ValueError when truncated or malformed."""
    result = shift = 0
    while True:
        if pos >= len(data):
            raise ValueError("truncated varint")
        byte = data[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7
        if shift > 63:
            raise ValueError("malformed varint")


def onnx_problem(data: bytes) -> str | None:
    """None when ``data`` parses as an ONNX ModelProto's top-level fields, else why not."""
    pos = 0
    seen_graph = False
    while pos < len(data):
        try:
            key, pos = read_varint(data, pos)
        except ValueError:
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
        except ValueError as exc:
            return str(exc)
        seen_graph = seen_graph or number == 7
    return None if seen_graph else "no graph in the file"


def _zip_format(path: Path) -> ModelFormat | None:
    try:
        with zipfile.ZipFile(path) as archive:
            names = set(archive.namelist())
    except (zipfile.BadZipFile, OSError):
        return None
    if "schema.json" in names:
        return ModelFormat.SKOPS
    if "config.json" in names and ("metadata.json" in names or "model.weights.h5" in names):
        return ModelFormat.KERAS
    return None


def _pickle_format(path: Path, head: bytes, claimed: ModelFormat | None) -> ModelFormat | None:
    """A compressed joblib file (the pickle inside decompresses), or an old text-protocol pickle."""
    from mlfit.safety.pickle_scan import compression_of, looks_like_pickle

    kind = compression_of(head)
    if kind == "lz4":
        return ModelFormat.PICKLE if claimed is ModelFormat.PICKLE else None
    if kind is not None and looks_like_pickle(path):
        return ModelFormat.PICKLE
    if claimed is ModelFormat.PICKLE and head[:1] in (b"(", b"c", b"]", b"}", b"I", b"S", b"V", b"N"):
        return ModelFormat.PICKLE  # protocols 0 and 1 have no header; the scan decides if it parses
    return None


def sniff(path: Path) -> ModelFormat:
    """The format the content says, or a ModelError that says why it is none."""
    if path.is_dir():
        if (path / "saved_model.pb").is_file() or (path / "saved_model.pbtxt").is_file():
            return ModelFormat.SAVEDMODEL
        raise ModelError(f"{path}: not a valid model directory (no saved_model.pb)",
                         "give a SavedModel directory or a model file")
    try:
        size = path.stat().st_size
        with path.open("rb") as fh:
            head = fh.read(64)
    except OSError as exc:
        raise ModelError(f"{path}: cannot read ({exc.strerror})", "check the path and permissions") from None
    claimed = _SUFFIXES.get(path.suffix.lower())
    what = claimed.value if claimed else "model"
    if size == 0:
        raise ModelError(f"{path}: not a valid {what} file (it is empty)", "re-export the model")
    if head.startswith(_HDF5_MAGIC):
        return ModelFormat.H5
    if len(head) >= 8 and head[4:8] == b"TFL3":
        return ModelFormat.TFLITE
    if head.startswith(b"PK\x03\x04"):
        found = _zip_format(path)
        if found is not None:
            return found
        raise ModelError(f"{path}: not a valid {what} file (a zip archive that is neither .keras nor .skops)",
                         "re-export the model")
    if head[:1] == b"\x80" and len(head) > 1 and 2 <= head[1] <= 5:
        return ModelFormat.PICKLE
    found_pickle = _pickle_format(path, head, claimed)
    if found_pickle is not None:
        return found_pickle
    if claimed is ModelFormat.TFLITE:
        raise ModelError(f"{path}: not a valid tflite file (no TFL3 identifier; {size} bytes)",
                         "re-export with the TFLite converter")
    if size > 2**31 + 2**20 and claimed is ModelFormat.ONNX:
        return ModelFormat.ONNX  # over protobuf's 2 GB limit; the static analysis explains
    with path.open("rb") as fh:
        data = fh.read()
    problem = onnx_problem(data)
    if problem is None:
        return ModelFormat.ONNX
    if claimed is ModelFormat.ONNX or claimed is None:
        raise ModelError(f"{path}: not a valid onnx file ({problem})",
                         "re-export the model or check the download")
    raise ModelError(f"{path}: not a valid {what} file (content not recognised)", "re-export the model")


def suffix_mismatch(path: Path, found: ModelFormat) -> str | None:
    """A note when the suffix claims another format than the content."""
    claimed = _SUFFIXES.get(path.suffix.lower())
    if claimed is None or claimed is found or path.is_dir():
        return None
    return (f"{path.name}: the suffix says {claimed.value} but the content is {found.value}; "
            f"using {found.value}")
