"""Parameter counts of a Keras file, read from its HDF5 weights without a runtime: the shape and
dtype of every stored variable (h5py reads the object headers; no value is read, no model code
runs). A ``.keras`` archive keeps them in ``model.weights.h5``, stored uncompressed, which h5py
reads in place through a window on the archive; a legacy ``.h5`` keeps them under
``model_weights``. Optimizer state (``optimizer``, ``optimizer_weights``) is not the model's."""

from __future__ import annotations

import io
import struct
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

WEIGHTS_MEMBER = "model.weights.h5"
_OPTIMIZER_GROUPS = frozenset({"optimizer", "optimizer_weights"})
MAX_OBJECTS = 200_000  # HDF5 objects walked; a model with 10k layers holds ~40k


@dataclass
class Weights:
    """What the weights say: parameters, bytes per dtype, or why they were not read."""

    parameters: int = 0
    by_dtype: dict[str, int] = field(default_factory=dict)
    problem: str | None = None  # set: the counts are not given


class _Window(io.RawIOBase):
    """Bytes [start, start + size) of an open file as a seekable file of their own."""

    def __init__(self, fh: IO[bytes], start: int, size: int) -> None:
        super().__init__()
        self._fh, self._start, self._size, self._pos = fh, start, size, 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self._size}[whence]
        self._pos = max(0, base + offset)
        return self._pos

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        want = max(0, min(len(view), self._size - self._pos))
        self._fh.seek(self._start + self._pos)
        got = self._fh.readinto(view[:want])  # type: ignore[attr-defined]
        self._pos += got or 0
        return got or 0


def _member_window(fh: IO[bytes], info: zipfile.ZipInfo) -> _Window | None:
    """The member's bytes in place, when stored uncompressed (Keras never compresses its weights)."""
    if info.compress_type != zipfile.ZIP_STORED:
        return None
    fh.seek(info.header_offset)
    header = fh.read(30)
    if len(header) != 30 or header[:4] != b"PK\x03\x04":
        return None
    name_len, extra_len = struct.unpack("<HH", header[26:30])
    return _Window(fh, info.header_offset + 30 + name_len + extra_len, info.file_size)


def _count(h5file: Any, top: str | None) -> Weights:
    """Sum the numeric datasets under ``top`` (None: every group but the optimizer's)."""
    import h5py

    out = Weights()
    roots = [h5file[top]] if top is not None else [h5file[k] for k in h5file if k not in _OPTIMIZER_GROUPS]
    seen = 0

    def visit(_name: str, obj: Any) -> bool | None:
        nonlocal seen
        seen += 1
        if seen > MAX_OBJECTS:
            out.problem = f"the weights hold more than {MAX_OBJECTS:,} HDF5 objects"
            return True  # stops the walk
        if isinstance(obj, h5py.Dataset) and obj.dtype.kind in "biufc":
            count = 1
            for dim in obj.shape or ():
                count *= int(dim)
            out.parameters += count
            out.by_dtype[obj.dtype.name] = out.by_dtype.get(obj.dtype.name, 0) + count * obj.dtype.itemsize
        return None

    for root in roots:
        if isinstance(root, h5py.Dataset):
            visit(root.name, root)
        elif root.visititems(visit):
            break
    return out


def keras_weights(path: Path, zipped: bool) -> Weights:
    """The parameters stored in a ``.keras`` archive or a legacy ``.h5`` file."""
    from mlfit import safeio

    try:
        import h5py
    except ImportError:
        return Weights(problem="h5py is not installed")
    try:
        with safeio.open_regular(path, "the Keras model") as fh:
            if not zipped:
                with h5py.File(fh, "r") as h5:
                    return _count(h5, "model_weights" if "model_weights" in h5 else None)
            with safeio.open_zip(fh, path) as archive:
                try:
                    info = archive.getinfo(WEIGHTS_MEMBER)
                except KeyError:
                    return Weights(problem=f"the archive has no {WEIGHTS_MEMBER}")
                window = _member_window(fh, info)
                if window is None:
                    return Weights(problem=f"{WEIGHTS_MEMBER} is compressed in the archive (Keras stores it as is)")
                with h5py.File(window, "r") as h5:
                    return _count(h5, None)
    except (OSError, ValueError, KeyError, RuntimeError) as exc:  # h5py's errors for a broken file
        return Weights(problem=f"the weights cannot be read ({str(exc)[:120]})")
