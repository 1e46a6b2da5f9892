"""Check an ONNX model in the parent before any runtime reads it.

A model from a pull request or a hub can point its external data anywhere on the disk
(``../../etc/passwd``, ``/root/.ssh/id_rsa``, a symlink out of its folder); onnxruntime
would read those bytes as weights. It can also be too big for protobuf, or need a
custom operator library that mlfit must never go looking for on its own. Every such
case is refused here, with the cause and the fix, using only the ``onnx`` parser
(never the runtime) and without reading any external data.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import Any

from mlfit.errors import ConfigError, ModelError

# protobuf cannot parse a message of 2 GiB or more: a single-file model must stay below.
PROTOBUF_LIMIT = 2**31 - 1

# Domains onnxruntime implements itself. Anything else needs a --custom-op-library.
BUILTIN_DOMAINS = frozenset({"", "ai.onnx", "ai.onnx.ml", "ai.onnx.preview.training", "ai.onnx.training",
                             "com.microsoft", "com.microsoft.nchwc", "com.microsoft.experimental",
                             "com.ms.internal.nhwc", "org.pytorch.aten"})

_EXTERNAL = 1  # onnx.TensorProto.EXTERNAL
# Bytes per element of onnx.TensorProto.DataType values (strings and undefined: unknown).
_ITEMSIZE = {1: 4, 2: 1, 3: 1, 4: 2, 5: 2, 6: 4, 7: 8, 9: 1, 10: 2, 11: 8, 12: 4, 13: 8, 14: 8, 15: 16, 16: 2,
             17: 1, 18: 1, 19: 1, 20: 1, 21: 1, 22: 1, 23: 1}


@dataclass(frozen=True)
class OnnxSafety:
    """What the parent learned while validating: sizes for the static fit check."""

    tensor_bytes: int = 0  # every initializer and constant, inline or external
    external_bytes: int = 0
    external_files: tuple[str, ...] = ()
    custom_ops: tuple[str, ...] = ()  # DOMAIN::OP outside onnxruntime's own domains
    notes: list[str] = field(default_factory=list)


def onnxruntime_version() -> str:
    """The installed onnxruntime's version, read from its metadata (never imported here)."""
    from importlib import metadata

    for name in ("onnxruntime", "onnxruntime-gpu", "onnxruntime-openvino", "onnxruntime-directml"):
        try:
            return metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return "(not installed)"


def _tensors(graph: Any) -> Iterator[Any]:
    """Every TensorProto a graph holds: initializers, sparse ones, Constant attributes, subgraphs."""
    yield from graph.initializer
    for sparse in graph.sparse_initializer:
        yield sparse.values
        yield sparse.indices
    for node in graph.node:
        for attr in node.attribute:
            if attr.HasField("t"):
                yield attr.t
            yield from attr.tensors
            if attr.HasField("g"):
                yield from _tensors(attr.g)
            for sub in attr.graphs:
                yield from _tensors(sub)


def _nodes(graph: Any) -> Iterator[Any]:
    for node in graph.node:
        yield node
        for attr in node.attribute:
            if attr.HasField("g"):
                yield from _nodes(attr.g)
            for sub in attr.graphs:
                yield from _nodes(sub)


def _expected_bytes(tensor: Any) -> int | None:
    itemsize = _ITEMSIZE.get(int(tensor.data_type))
    if itemsize is None:
        return None
    return math.prod(int(d) for d in tensor.dims) * itemsize


def _unsafe_location(location: str) -> str | None:
    """Why a location may not be used, judged on the text alone (before touching the disk)."""
    if not location:
        return "an empty location"
    if "\x00" in location:
        return "a location containing a NUL byte"
    if (PurePosixPath(location).is_absolute() or PureWindowsPath(location).is_absolute()
            or PureWindowsPath(location).drive or location.startswith(("/", "\\", "~"))):
        return "an absolute path"
    if ".." in PurePosixPath(location.replace("\\", "/")).parts:
        return "a path with '..'"
    return None


def _external_entry(tensor: Any) -> dict[str, str]:
    return {entry.key: entry.value for entry in tensor.external_data}


def _check_external(model_path: Path, tensor: Any, seen: dict[str, int]) -> int:
    """Validate one external tensor's location; return the bytes it claims."""
    entry = _external_entry(tensor)
    location = entry.get("location", "")
    name = tensor.name or "(unnamed)"
    why = _unsafe_location(location)
    if why is not None:
        raise ModelError(f"{model_path}: tensor '{name}' names its external data with {why} ({location!r}); "
                         "refused: external data must stay inside the model's folder",
                         "keep the .onnx and its data files in one folder and save with relative locations")
    folder = model_path.parent.resolve()
    candidate = folder / location
    try:
        offset = int(entry.get("offset", "0") or 0)
        length = int(entry["length"]) if entry.get("length") else None
    except ValueError:
        raise ModelError(f"{model_path}: tensor '{name}' has a malformed external-data offset or length",
                         "re-export the model") from None
    if offset < 0 or (length is not None and length < 0):
        raise ModelError(f"{model_path}: tensor '{name}' has a negative external-data offset or length",
                         "re-export the model")
    expected = length if length is not None else _expected_bytes(tensor)
    need = offset + (expected or 0)
    # '..' and absolute paths are refused above, so only a symlink can lead elsewhere.
    real = candidate.resolve()
    if real != folder and folder not in real.parents:
        raise ModelError(f"{model_path}: external data '{location}' of tensor '{name}' is a symlink leading "
                         f"out of the model's folder (to {real}); refused",
                         "copy the data file into the model's folder instead of linking it")
    if not candidate.exists():
        size = f"{need} bytes" if expected is not None else "an unknown number of bytes"
        raise ModelError(f"{model_path}: external data file for tensor '{name}' is missing: expected "
                         f"{candidate} ({size})", "copy the data file next to the .onnx file")
    if not candidate.is_file():
        raise ModelError(f"{model_path}: external data '{location}' of tensor '{name}' is not a regular file",
                         "re-export the model")
    have = candidate.stat().st_size
    if have < need:
        raise ModelError(f"{model_path}: external data file {candidate} is truncated: tensor '{name}' "
                         f"needs bytes {offset}..{need}, the file has {have}", "copy the complete data file")
    seen[location] = max(seen.get(location, 0), need)
    return expected or 0


def _standard_op(node: Any) -> bool:
    """Whether an op of a standard ONNX domain exists in the ONNX spec (others are custom in disguise)."""
    if node.domain not in ("", "ai.onnx", "ai.onnx.ml"):
        return True  # onnxruntime's own contrib domains: the runtime decides
    import onnx.defs

    return bool(onnx.defs.has(node.op_type, "" if node.domain == "ai.onnx" else node.domain))


def _custom_library_paths(libraries: Sequence[str]) -> list[str]:
    """Only libraries the user named explicitly, and only files that exist."""
    paths: list[str] = []
    for library in libraries:
        path = Path(library)
        if not path.is_file():
            raise ConfigError(f"--custom-op-library '{library}': file does not exist",
                              "give the path of the operator library (.so, .dylib or .dll)")
        paths.append(str(path.resolve()))
    return paths


def check_protobuf_size(path: Path) -> None:
    """Refuse a single-file model protobuf cannot parse, before anything tries (and reads 2 GB)."""
    size = path.stat().st_size
    if size > PROTOBUF_LIMIT:
        raise ModelError(f"{path}: single-file ONNX model is {size / 2**30:.2f} GiB, over protobuf's 2 GiB "
                         "limit; no runtime can parse it, so it was not loaded",
                         "re-export with external data: onnx.save_model(m, path, save_as_external_data=True)")


def validate_onnx(path: Path, custom_op_libraries: Sequence[str] = ()) -> OnnxSafety:
    """Refuse an ONNX model that is unsafe or impossible to load, before any runtime sees it.

    Raises ModelError (exit 3) for hostile or missing external data, a single file over
    protobuf's limit, or a custom operator without its library; ConfigError (exit 2) for a
    --custom-op-library that does not exist.
    """
    libraries = _custom_library_paths(custom_op_libraries)
    check_protobuf_size(path)
    from mlfit.analysis.graph import load_onnx_proto

    model = load_onnx_proto(path)
    total = external = 0
    seen: dict[str, int] = {}
    graphs = [model.graph, *(f for f in model.functions)]
    for graph in graphs:
        for tensor in _tensors(graph) if hasattr(graph, "initializer") else _function_tensors(graph):
            if tensor.data_location == _EXTERNAL:
                claimed = _check_external(path, tensor, seen)
                external += claimed
                total += claimed
            else:
                total += _expected_bytes(tensor) or 0
    custom: list[str] = []
    for graph in graphs:
        for node in _nodes(graph):
            op = f"{node.domain or 'ai.onnx'}::{node.op_type}"
            if op not in custom and (node.domain not in BUILTIN_DOMAINS or not _standard_op(node)):
                custom.append(op)
    local_functions = {(f.domain, f.name) for f in model.functions}
    custom = [op for op in custom if tuple(op.split("::", 1)) not in local_functions]
    if custom and not libraries:
        more = f" (and {len(custom) - 1} more: {', '.join(custom[1:4])})" if len(custom) > 1 else ""
        version = onnxruntime_version()
        raise ModelError(f"custom operator {custom[0]} is not available in onnxruntime {version}{more}",
                         "give the library that implements it with --custom-op-library PATH; "
                         "mlfit never searches for one")
    notes: list[str] = []
    if custom:
        notes.append(f"custom operators {', '.join(custom)} loaded from {', '.join(libraries)}")
    return OnnxSafety(tensor_bytes=total, external_bytes=external, external_files=tuple(sorted(seen)),
                      custom_ops=tuple(custom), notes=notes)


def _function_tensors(function: Any) -> Iterator[Any]:
    for node in function.node:
        for attr in node.attribute:
            if attr.HasField("t"):
                yield attr.t
            yield from attr.tensors

