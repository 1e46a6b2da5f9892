"""Check an ONNX model in the parent before any runtime reads it.

A model from a pull request or a hub can point its external data anywhere on the disk
(``../../etc/passwd``, ``/root/.ssh/id_rsa``, a symlink out of its folder); onnxruntime
would read those bytes as weights. It can also be too big for protobuf, or need a
custom operator library that mlfit must never go looking for on its own. Every such
case is refused here, with the cause and the fix, by mlfit's own bounded walk over the
protobuf (:func:`walk_model`: memory-mapped, never parsed into objects, never the runtime)
and without reading any external data. The walk finds every tensor wherever onnxruntime
would read one (initializers, sparse initializers, node attributes, subgraphs at any depth,
local functions, training graphs) and counts nodes, so the static analysis can be bounded
before onnx parses the file.
"""

from __future__ import annotations

import math
import os
import stat
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import Any

from mlfit.errors import ConfigError, ModelError
from mlfit.formats._wire.protobuf import WireError, read_varint

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
    nodes: int = 0  # at every depth (subgraphs and functions included)
    inline_bytes: int = 0  # tensor payloads held in the .onnx file itself


def onnxruntime_version() -> str:
    """The installed onnxruntime's version, read from its metadata (never imported here)."""
    from importlib import metadata

    for name in ("onnxruntime", "onnxruntime-gpu", "onnxruntime-openvino", "onnxruntime-directml"):
        try:
            return metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return "(not installed)"


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


# ---------------------------------------------------------------- the wire-format walker
#
# mlfit's own walk over the ONNX protobuf, driven by onnx's message descriptors, so that every
# TensorProto anywhere in the model is seen: initializers, sparse initializers (values and
# indices), Constant and other node attributes (t, tensors, sparse_tensor, sparse_tensors),
# subgraphs of If/Loop/Scan at any depth, local functions (their nodes and default
# attributes) and training graphs. It reads the file through a memory map, never builds the
# model, never reads a tensor's bytes, and follows protobuf's semantics: the last occurrence
# of a singular field wins and repeated occurrences of a singular message are merged.

_MSG, _STR, _VARINT, _F64, _F32 = range(5)
_TENSOR, _ENTRY, _NODE, _FUNCTION = "TensorProto", "StringStringEntryProto", "NodeProto", "FunctionProto"
# Fields whose values the walk keeps (by message type); everything else is skipped over.
_CAPTURE = {_TENSOR: {"dims", "data_type", "name", "data_location", "external_data"},
            _ENTRY: {"key", "value"}, _NODE: {"op_type", "domain"}, _FUNCTION: {"name", "domain"}}
PROTOBUF_DEPTH = 100  # protobuf's own recursion limit: a deeper model cannot be parsed by anyone
MAX_WALK_ELEMENTS = 50_000_000  # protobuf fields visited; each costs ~1 µs
MAX_WALK_SECONDS = 120.0
# Nodes at every depth. Real models have thousands (a large transformer tens of thousands);
# millions of trivial nodes only exhaust the parent and the runtime.
MAX_MODEL_NODES = 500_000
MAX_DISTINCT_OPS = 10_000


@dataclass
class _Spec:
    name: str
    fields: dict[int, tuple[int, _Spec | None, bool, str, bool]]  # number -> kind, sub, repeated, name, kept


_SPECS: dict[str, _Spec] = {}


def _spec(descriptor: Any) -> _Spec:
    """The walk's table for one message type (built once from onnx's descriptors)."""
    found = _SPECS.get(descriptor.full_name)
    if found is not None:
        return found
    spec = _Spec(descriptor.name, {})
    _SPECS[descriptor.full_name] = spec
    kept = _CAPTURE.get(descriptor.name, set())
    for f in descriptor.fields:
        if f.type == f.TYPE_MESSAGE:
            kind, sub = _MSG, _spec(f.message_type)
        elif f.type in (f.TYPE_STRING, f.TYPE_BYTES):
            kind, sub = _STR, None
        elif f.type in (f.TYPE_DOUBLE, f.TYPE_FIXED64, f.TYPE_SFIXED64):
            kind, sub = _F64, None
        elif f.type in (f.TYPE_FLOAT, f.TYPE_FIXED32, f.TYPE_SFIXED32):
            kind, sub = _F32, None
        elif f.type == f.TYPE_GROUP:  # ONNX has none; never walked
            continue
        else:
            kind, sub = _VARINT, None
        repeated = f.is_repeated if hasattr(f, "is_repeated") else f.label == f.LABEL_REPEATED
        spec.fields[f.number] = (kind, sub, bool(repeated), f.name, f.name in kept)
    return spec


class OnnxWalkError(Exception):
    """The file is not a protobuf the walk can follow (truncated, malformed, too deep)."""


class OnnxTooLarge(OnnxWalkError):
    """The walk's bounds were reached (nodes, fields, distinct operators, time)."""


def walk_error(path: Path, exc: OnnxWalkError) -> ModelError:
    """The one-line refusal for a file the walk could not finish."""
    if isinstance(exc, OnnxTooLarge):
        return ModelError(f"{path}: too large to check safely ({exc}); refused before any runtime reads it",
                          "MLFIT_MAX_MODEL_NODES, MLFIT_MAX_WALK_ELEMENTS and MLFIT_MAX_WALK_SECONDS raise the "
                          "bounds; see docs/refusals.md")
    return ModelError(f"{path}: not a valid onnx file ({exc}); refused before any runtime reads it",
                      "re-export the model or check the download")


@dataclass
class Census:
    """What one walk over a model found (bounded: tensors are judged as they are met)."""

    model_path: Path
    nodes: int = 0
    elements: int = 0
    tensor_bytes: int = 0  # every tensor's declared size, inline or external
    external_bytes: int = 0
    inline_bytes: int = 0  # raw_data and repeated-value payloads held in the file
    ops: set[tuple[bytes, bytes]] = field(default_factory=set)  # (domain, op_type), undecoded

    def op_names(self) -> list[tuple[str, str]]:
        return sorted({(_text(domain), _text(op)) for domain, op in self.ops})
    functions: set[tuple[str, str]] = field(default_factory=set)  # (domain, name) of local functions
    seen: dict[str, int] = field(default_factory=dict)  # external file -> bytes needed
    deadline: float = 0.0
    max_elements: int = MAX_WALK_ELEMENTS
    judge: bool = True  # judge external data (validation); False: count only (analysis)
    max_nodes: int = MAX_MODEL_NODES

    def over(self) -> None:
        import time

        if self.elements > self.max_elements:
            raise OnnxTooLarge(f"more than {self.max_elements} protobuf fields")
        if time.monotonic() > self.deadline:
            raise OnnxTooLarge("the walk over its protobuf fields ran out of time")


def _text(value: Any) -> str:
    return bytes(value).decode("utf-8", "replace") if value is not None else ""


def _walk(buf: Any, segments: list[tuple[int, int]], spec: _Spec, census: Census, path: tuple[str, ...],
          depth: int) -> dict[int, Any]:
    """Walk one message (the concatenation of ``segments``, as protobuf merges them)."""
    if depth > PROTOBUF_DEPTH:
        raise OnnxWalkError(f"messages nested deeper than protobuf's limit of {PROTOBUF_DEPTH}")
    kept: dict[int, Any] = {}
    pending: dict[int, list[tuple[int, int]]] = {}
    fields = spec.fields
    in_tensor = spec.name == _TENSOR
    count = 0
    for start, end in segments:
        pos = start
        while pos < end:
            count += 1
            if not count & 0x3FFF:
                census.elements += count
                count = 0
                census.over()
            key = buf[pos]
            pos += 1
            if key >= 0x80:
                key, pos = read_varint(buf, pos - 1, end)
            number, wire = key >> 3, key & 7
            if number == 0:
                raise OnnxWalkError(f"invalid field number 0 at byte {pos - 1}")
            f = fields.get(number)
            if wire == 2:
                if pos >= end:
                    raise OnnxWalkError("truncated varint")
                length = buf[pos]
                pos += 1
                if length >= 0x80:
                    length, pos = read_varint(buf, pos - 1, end)
                begin, pos = pos, pos + length
                if pos > end:
                    raise OnnxWalkError(f"truncated: a field needs {length} bytes, {end - begin} remain")
                if f is None:
                    continue
                kind, sub, repeated, name, keep = f
                if kind == _MSG:
                    assert sub is not None
                    if repeated:
                        census.elements += count
                        count = 0
                        child = _walk(buf, [(begin, pos)], sub, census, (*path, name), depth + 1)
                        if keep:
                            kept.setdefault(number, []).append(child)
                    else:
                        pending.setdefault(number, []).append((begin, pos))
                    continue
                if in_tensor:
                    census.inline_bytes += length
                if not keep:
                    continue
                if kind == _STR:
                    value = buf[begin:pos]
                    if repeated:
                        kept.setdefault(number, []).append(value)
                    else:
                        kept[number] = value
                else:  # packed repeated scalars we keep: dims, a handful of varints
                    values = kept.setdefault(number, [])
                    at = begin
                    while at < pos:
                        value, at = read_varint(buf, at, pos)
                        values.append(value)
            elif wire == 0:
                if pos >= end:
                    raise OnnxWalkError("truncated varint")
                value = buf[pos]
                pos += 1
                if value >= 0x80:
                    value, pos = read_varint(buf, pos - 1, end)
                if f is not None and f[4] and f[0] == _VARINT:
                    if f[2]:
                        kept.setdefault(number, []).append(value)
                    else:
                        kept[number] = value
            elif wire == 1:
                pos += 8
            elif wire == 5:
                pos += 4
            else:
                raise OnnxWalkError(f"unsupported protobuf wire type {wire} at byte {pos - 1}")
            if pos > end:
                raise OnnxWalkError("truncated fixed-width field")
    census.elements += count
    for number, segs in pending.items():
        kind, sub, _, name, keep = fields[number]
        assert sub is not None
        child = _walk(buf, segs, sub, census, (*path, name), depth + 1)
        if keep:
            kept[number] = child
    _finish(spec.name, kept, census, path)
    return kept


def _finish(kind: str, kept: dict[int, Any], census: Census, path: tuple[str, ...]) -> None:
    if kind == _TENSOR:
        _judge_tensor(kept, census, path)
    elif kind == _NODE:
        census.nodes += 1
        if census.nodes > census.max_nodes:
            raise OnnxTooLarge(f"more than {census.max_nodes} nodes")
        op = (kept.get(7, b""), kept.get(4, b""))  # bytes: decoded once, when the walk is over
        if op not in census.ops:
            if len(census.ops) >= MAX_DISTINCT_OPS:
                raise OnnxTooLarge(f"more than {MAX_DISTINCT_OPS} distinct operators")
            census.ops.add(op)
    elif kind == _FUNCTION:
        census.functions.add((_text(kept.get(10)), _text(kept.get(1))))


def _expected(data_type: int, dims: list[int]) -> int | None:
    itemsize = _ITEMSIZE.get(int(data_type))
    if itemsize is None:
        return None
    return math.prod(int(d) for d in dims) * itemsize


def _judge_tensor(kept: dict[int, Any], census: Census, path: tuple[str, ...]) -> None:
    dims = [d - (1 << 64) if d >= 1 << 63 else d for d in kept.get(1, [])]  # int64: two's complement
    expected = _expected(int(kept.get(2, 0)), dims)
    entries = kept.get(13, [])
    if int(kept.get(14, 0)) != _EXTERNAL and not entries:
        census.tensor_bytes += max(expected or 0, 0)
        return
    name = _text(kept.get(8)) or "(unnamed)"
    where = ".".join(p for p in path if p) or "model"
    if census.judge:
        claimed = _check_external(census, name, where, entries, expected)
    else:  # counted, and its file named (never touched): outputs must not be written over it
        claimed = max(expected or 0, 0)
        location = next((_text(e.get(2)) for e in entries if _text(e.get(1)) == "location"), "")
        if location and len(census.seen) < 10_000:
            census.seen.setdefault(location, 0)
    census.tensor_bytes += claimed
    census.external_bytes += claimed


_ORT_MEMORY_TAG = "*/_ORT_MEM_ADDR_/*"  # onnxruntime reads such "external data" from a memory address


def _check_external(census: Census, name: str, where: str, entries: list[dict[int, Any]],
                    expected: int | None) -> int:
    """Validate one external tensor (a location inside the model's folder, a regular file long
    enough for offset + length); return the bytes it claims."""
    from mlfit import safeio

    model_path = census.model_path
    values: dict[str, str] = {}
    for entry in entries:
        key, value = _text(entry.get(1)), _text(entry.get(2))
        if key in values:
            raise ModelError(f"{model_path}: tensor '{name}' ({where}) gives its external-data '{key}' twice; "
                             "refused", "re-export the model")
        values[key] = value
    location = values.get("location", "")
    why = "onnxruntime's in-memory address tag" if location == _ORT_MEMORY_TAG else _unsafe_location(location)
    if why is not None:
        raise ModelError(f"{model_path}: tensor '{name}' ({where}) names its external data with {why} "
                         f"({location!r}); refused: external data must stay inside the model's folder",
                         "keep the .onnx and its data files in one folder and save with relative locations")
    try:
        offset = int(values.get("offset", "0") or 0)
        length = int(values["length"]) if values.get("length") else None
    except ValueError:
        raise ModelError(f"{model_path}: tensor '{name}' ({where}) has a malformed external-data offset or "
                         "length", "re-export the model") from None
    if offset < 0 or (length is not None and length < 0) or (expected is not None and expected < 0):
        raise ModelError(f"{model_path}: tensor '{name}' ({where}) has a negative external-data offset, length "
                         "or dimension", "re-export the model")
    size = length if length is not None else expected
    need = offset + (size or 0)
    folder = model_path.parent.resolve()
    candidate = folder / location
    if location not in census.seen:
        if len(census.seen) >= safeio.limit("external_files", 100_000):
            raise ModelError(f"{model_path}: external data spread over too many files; refused", "re-export the model")
        # '..' and absolute paths are refused above, so only a symlink can lead elsewhere.
        real = candidate.resolve()
        if not safeio.inside(real, folder):
            raise ModelError(f"{model_path}: external data '{location}' of tensor '{name}' is a symlink leading "
                             f"out of the model's folder (to {real}); refused",
                             "copy the data file into the model's folder instead of linking it")
        if not candidate.exists():
            shown = f"{need} bytes" if size is not None else "an unknown number of bytes"
            raise ModelError(f"{model_path}: external data file for tensor '{name}' is missing: expected "
                             f"{candidate} ({shown})", "copy the data file next to the .onnx file")
        mode = real.stat().st_mode
        if not stat.S_ISREG(mode):
            raise ModelError(f"{model_path}: external data '{location}' of tensor '{name}' is not a regular file; "
                             "refused", "re-export the model")
        census.seen[location] = 0
    have = candidate.stat().st_size
    if have < need:
        raise ModelError(f"{model_path}: external data file {candidate} is truncated: tensor '{name}' "
                         f"needs bytes {offset}..{need}, the file has {have}", "copy the complete data file")
    census.seen[location] = max(census.seen[location], need)
    return size or 0


_LAST_WALK: list[tuple[tuple[object, ...], Census]] = []  # the last walk (validation, then analysis)


def external_files(path: Path) -> list[Path]:
    """The external-data files a model names (inside its folder or not), for the output check;
    empty when the file cannot be walked (the checks that follow say why)."""
    try:
        census = walk_model(path, judge_external=False)
    except (OnnxWalkError, ModelError, OSError):
        return []
    return [path.parent / location for location in census.seen]


def walk_model(path: Path, judge_external: bool = True) -> Census:
    """Walk ``path``'s protobuf (memory-mapped, never parsed into objects), judging every
    tensor's external data on the way (unless ``judge_external`` is False: counts only);
    OnnxWalkError when the file cannot be walked within its bounds."""
    import mmap
    import time

    from mlfit import onnxpb, safeio

    seconds = float(safeio.limit("walk_seconds", int(MAX_WALK_SECONDS)))
    census = Census(model_path=path, deadline=time.monotonic() + seconds,
                    max_elements=safeio.limit("walk_elements", MAX_WALK_ELEMENTS), judge=judge_external,
                    max_nodes=safeio.limit("model_nodes", MAX_MODEL_NODES))
    with safeio.open_regular(path, "the ONNX model") as fh:
        st = os.fstat(fh.fileno())
        key = (str(path), st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)
        for cached_key, cached in _LAST_WALK:
            if cached_key == key and not judge_external:  # counts for the analysis; a judgement is never reused
                return cached
        if st.st_size == 0:
            raise OnnxWalkError("the file is empty")
        with mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as buf:
            try:
                _walk(buf, [(0, st.st_size)], _spec(onnxpb.model_proto().DESCRIPTOR), census, (), 0)
            except WireError as exc:  # the shared varint reader's "truncated"/"malformed"
                raise OnnxWalkError(str(exc)) from None
    _LAST_WALK[:] = [(key, census)]  # reused only for counts (analysis, input plan), never for a judgement
    return census

def _standard_op(domain: str, op_type: str) -> bool:
    """Whether an op of a standard ONNX domain exists in the ONNX spec (others are custom in disguise)."""
    if domain not in ("", "ai.onnx", "ai.onnx.ml"):
        return True  # onnxruntime's own contrib domains: the runtime decides
    from mlfit.formats.onnx.standard_ops import BY_DOMAIN

    if op_type in BY_DOMAIN[domain]:
        return True  # answered without importing onnx (0.6 s of CPU)
    import onnx.defs  # not in the list: a custom op, or one a newer onnx added

    return bool(onnx.defs.has(op_type, "" if domain == "ai.onnx" else domain))


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

    Raises ModelError (exit 3) for hostile or missing external data anywhere in the model
    (mlfit's own walk, :func:`walk_model`), a single file over protobuf's limit, or a custom
    operator without its library; ConfigError (exit 2) for a --custom-op-library that does
    not exist.
    """
    libraries = _custom_library_paths(custom_op_libraries)
    check_protobuf_size(path)
    try:
        census = walk_model(path)
    except OnnxWalkError as exc:
        raise walk_error(path, exc) from None
    custom: list[str] = []
    for domain, op_type in census.op_names():
        op = f"{domain or 'ai.onnx'}::{op_type}"
        if (domain, op_type) in census.functions:
            continue
        if domain not in BUILTIN_DOMAINS or not _standard_op(domain, op_type):
            custom.append(op)
    if custom and not libraries:
        more = f" (and {len(custom) - 1} more: {', '.join(custom[1:4])})" if len(custom) > 1 else ""
        version = onnxruntime_version()
        raise ModelError(f"custom operator {custom[0]} is not available in onnxruntime {version}{more}",
                         "give the library that implements it with --custom-op-library PATH; "
                         "mlfit never searches for one")
    notes: list[str] = []
    if custom:
        notes.append(f"custom operators {', '.join(custom)} loaded from {', '.join(libraries)}")
    return OnnxSafety(tensor_bytes=census.tensor_bytes, external_bytes=census.external_bytes,
                      external_files=tuple(sorted(census.seen)), custom_ops=tuple(custom), notes=notes,
                      nodes=census.nodes, inline_bytes=census.inline_bytes)
