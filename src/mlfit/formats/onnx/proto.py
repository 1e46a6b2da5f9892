"""An ONNX file as protobuf objects (``onnx.load``), within the parent's bounds: the static
analysis and the declared-input reader parse the file through here, after mlfit's own bounded
walk (:mod:`mlfit.formats.onnx.safety`) has said it is small enough to parse."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mlfit.errors import ModelError

# Bounds on the parent's static analysis (each overridable: MLFIT_MAX_STATIC_NODES, ...).
# The analysis costs about 100 µs and a few KB per node in Python, and holds the file's
# inline tensors in memory while onnx parses it; past these bounds it is skipped with a
# note (or refused by `mlfit inspect`), and the measurement still runs in the worker under
# its own time and memory limits. 4 million trivial nodes took 195 s and 7.9 GB before.
MAX_STATIC_NODES = 100_000
MAX_STATIC_INLINE_BYTES = 1 << 30
MAX_STATIC_SECONDS = 60
# protobuf fields of any kind (metadata entries, shape dims, names): each becomes an object when
# onnx parses the file, so millions of tiny ones cost gigabytes however few the nodes.
MAX_STATIC_FIELDS = 5_000_000


class StaticTooLarge(ModelError):
    """The model is too large to analyse statically within the parent's bounds (exit 3 for
    ``inspect``; a note for ``check``/``profile``, which still measure it)."""


def _limits() -> tuple[int, int, int]:
    from mlfit import safeio

    return (safeio.limit("static_nodes", MAX_STATIC_NODES),
            safeio.limit("static_inline_bytes", MAX_STATIC_INLINE_BYTES),
            safeio.limit("static_seconds", MAX_STATIC_SECONDS))


class _Deadline:
    """Raises StaticTooLarge once the analysis has run past its time bound (checked in loops)."""

    def __init__(self, path: Path, seconds: float) -> None:
        import time

        self.path, self.seconds = path, seconds
        self.end = time.monotonic() + seconds

    def left(self) -> float:
        import time

        return self.end - time.monotonic()

    def check(self) -> None:
        if self.left() < 0:
            raise StaticTooLarge(f"{self.path}: too large to analyse statically (the analysis ran past "
                                 f"{self.seconds:g} s)", _TOO_LARGE_HINT)


_TOO_LARGE_HINT = ("the measurement still runs, in the worker under its own limits; MLFIT_MAX_STATIC_NODES, "
                   "MLFIT_MAX_STATIC_INLINE_BYTES and MLFIT_MAX_STATIC_SECONDS raise the bounds")


def check_static_bounds(path: Path) -> _Deadline:
    """Refuse (StaticTooLarge) a model too large to analyse here, from mlfit's own bounded walk
    over the file (no protobuf objects built); the deadline for the analysis that follows."""
    from mlfit import safeio
    from mlfit.formats.onnx.safety import OnnxWalkError, walk_error, walk_model

    max_nodes, max_inline, seconds = _limits()
    try:
        census = walk_model(path, judge_external=False)
    except OnnxWalkError as exc:
        raise walk_error(path, exc) from None
    if census.nodes > max_nodes:
        raise StaticTooLarge(f"{path}: too large to analyse statically ({census.nodes} nodes, over the bound of "
                             f"{max_nodes})", _TOO_LARGE_HINT)
    max_fields = safeio.limit("static_fields", MAX_STATIC_FIELDS)
    if census.elements > max_fields:
        raise StaticTooLarge(f"{path}: too large to analyse statically ({census.elements} protobuf fields, over the "
                             f"bound of {max_fields})", _TOO_LARGE_HINT)
    if census.inline_bytes > max_inline:
        raise StaticTooLarge(f"{path}: too large to analyse statically ({census.inline_bytes / 2**30:.1f} GiB of "
                             f"tensors inside the file, over the bound of {max_inline / 2**30:.1f} GiB)",
                             _TOO_LARGE_HINT)
    return _Deadline(path, seconds)


def _dtype_name(elem_type: int) -> str:
    from mlfit.onnxpb import dtype_name

    name = dtype_name(elem_type)  # without importing onnx (ml_dtypes alone costs 0.6 s of CPU)
    return {"float32": "float32", "object": "string"}.get(name, name)


def _shape(value_info: Any) -> list[int | str | None]:
    dims: list[int | str | None] = []
    for dim in value_info.type.tensor_type.shape.dim:
        if dim.HasField("dim_value") and dim.dim_value > 0:
            dims.append(int(dim.dim_value))
        elif dim.HasField("dim_param") and dim.dim_param:
            dims.append(dim.dim_param)
        else:
            dims.append(None)
    return dims


# The last file parsed, kept for the next reader of the same file (the declared inputs, then the
# static analysis): one parse per run. Only files up to this size: a copy is handed out each
# time (readers change the model), so a kept model costs its size twice while in use.
MAX_KEPT_PARSE_BYTES = 256 * 2**20
_LAST_PARSE: list[tuple[tuple[object, ...], Any]] = []


def load_onnx_proto(path: Path) -> Any:
    """``onnx.load`` without external data, as ModelError/StaticTooLarge when it fails; a fresh
    copy of the last parse when the same file (path, inode, size, mtime) is asked for again."""
    import os

    from google.protobuf.message import DecodeError

    from mlfit import onnxpb  # onnx's ModelProto without importing onnx (0.6 s of CPU)

    try:
        st = os.stat(path)
        key: tuple[object, ...] = (str(path), st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)
        for kept_key, kept in _LAST_PARSE:
            if kept_key == key:
                fresh = onnxpb.model_proto()()
                fresh.CopyFrom(kept)
                return fresh
        model = onnxpb.load_model(path)
        if st.st_size <= MAX_KEPT_PARSE_BYTES:
            fresh = onnxpb.model_proto()()
            fresh.CopyFrom(model)
            _LAST_PARSE[:] = [(key, fresh)]
        return model
    except (DecodeError, ValueError, OSError) as exc:
        raise ModelError(f"{path}: not a valid onnx file ({exc})", "re-export the model") from None
    except MemoryError:
        raise StaticTooLarge(f"{path}: too large to analyse statically (ran out of memory parsing it)",
                             _TOO_LARGE_HINT) from None
    except RecursionError:
        raise ModelError(f"{path}: not a valid onnx file (nested too deeply)", "re-export the model") from None
