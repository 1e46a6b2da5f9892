"""A private copy of a model, made before any check reads it: the checks read the copy and
the worker loads the copy, so a file swapped into place after the checks is never loaded.

Decisions (see docs/refusals.md, "The bytes checked are the bytes loaded"):

- The copy lives in a fresh folder from :func:`tempfile.mkdtemp` (mode 0700, removed at the
  end of the run); copied files are made read-only (0400).
- Bytes that decide what code runs are always **copied**: every single-file model except a
  large ONNX file, and in a SavedModel folder ``saved_model.pb``/``.pbtxt`` and every file up
  to 64 MiB (``variables.index``, ``fingerprint.pb``, ``keras_metadata.pb``, small assets).
- Pure tensor data above 64 MiB (SavedModel ``variables.data-*`` shards, large assets, ONNX
  external data, and a single ONNX file above 64 MiB, which runs no code) is **hard-linked**
  when it lives on the same file system, so a multi-GB model costs no copy; the link keeps
  the inode that was checked, so a file renamed over the original afterwards is not seen (a
  rewrite in place could change weights, never code). Across file systems it is copied.
- Only regular files are taken: a FIFO, device or socket is refused (never opened for
  reading: no hang), a symlink is followed only to a regular file inside the model's own
  folder (its content is copied), and folder depth and entry counts are bounded.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path

from mlfit.errors import ModelError
from mlfit.formats import ModelFormat

LINK_THRESHOLD = 64 * 2**20
MAX_ENTRIES = 100_000
MAX_DEPTH = 32
_CHUNK = 1 << 20
_GRAPH_FILES = frozenset({"saved_model.pb", "saved_model.pbtxt"})
# Where an ONNX model names external data (a StringStringEntryProto with key "location").
_ONNX_LOCATION_KEY = b"\x0a\x08location"


def _refuse(path: Path, why: str) -> ModelError:
    return ModelError(f"{path}: {why}; refused (only regular files are read)",
                      "give the model as regular files inside its own folder")


def _open_regular(path: Path) -> tuple[int, os.stat_result]:
    """An fd on a regular file, opened without blocking on a FIFO and without following a final symlink."""
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOFOLLOW", 0)
    try:
        fd = os.open(path, flags)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise _refuse(path, "it became a symlink while being read") from None
        raise ModelError(f"{path}: cannot read ({exc.strerror})", "check the path and permissions") from None
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode):
        os.close(fd)
        raise _refuse(path, "not a regular file")
    return fd, info


def _copy_file(src: Path, dst: Path, find: bytes | None = None) -> bool:
    """Copy ``src`` (a regular file, exactly the size it had when opened) to ``dst``; True when
    ``find`` occurs in the bytes copied."""
    fd, info = _open_regular(src)
    found, tail, left = False, b"", info.st_size
    with os.fdopen(fd, "rb") as fh, open(dst, "xb") as out:
        while left > 0:
            chunk = fh.read(min(_CHUNK, left))
            if not chunk:
                raise ModelError(f"{src}: the file shrank while it was being copied", "check the model again")
            if find is not None and not found:
                found = find in tail + chunk
                tail = chunk[-len(find):]
            out.write(chunk)
            left -= len(chunk)
    os.chmod(dst, 0o400)
    return found


def _link_or_copy(src: Path, dst: Path) -> None:
    fd, _ = _open_regular(src)  # refuse special files before linking
    os.close(fd)
    try:
        os.link(src, dst, follow_symlinks=False)
    except OSError:  # another file system, or links not allowed: copy
        _copy_file(src, dst)


def _inside(folder: Path, target: Path) -> bool:
    try:
        target.relative_to(folder)
    except ValueError:
        return False
    return True


def _copy_tree(src: Path, dst: Path, root: Path, budget: list[int], depth: int = 0) -> None:
    if depth > MAX_DEPTH:
        raise _refuse(src, f"folders nested more than {MAX_DEPTH} deep")
    dst.mkdir(mode=0o700)
    with os.scandir(src) as entries:
        for entry in entries:
            budget[0] -= 1
            if budget[0] < 0:
                raise _refuse(src, f"more than {MAX_ENTRIES} files and folders in the model")
            source, target = Path(entry.path), dst / entry.name
            if entry.is_symlink():
                real = source.resolve()
                if not _inside(root, real) or not real.is_file():
                    raise _refuse(source, "a symlink leading out of the model's folder or not to a regular file")
                source = real
            elif entry.is_dir(follow_symlinks=False):
                _copy_tree(source, target, root, budget, depth + 1)
                continue
            size = entry.stat(follow_symlinks=True).st_size if entry.is_file() else 0
            if entry.name not in _GRAPH_FILES and size > LINK_THRESHOLD:
                _link_or_copy(source, target)
            else:
                _copy_file(source, target)


def _onnx_external_locations(model: Path) -> list[str]:
    """Locations of external data named anywhere in an ONNX file, found in its raw bytes.

    An entry is a ``StringStringEntryProto`` whose key is "location" (bytes ``0a 08 location``,
    then field 2 with the value), wherever the tensor sits (initializers, sparse tensors,
    ``Constant`` attributes, subgraphs, functions). Reading the bytes instead of parsing keeps
    this cheap and bounded for any model size; a spurious match names a file that is not
    there and is skipped.
    """
    import mmap
    import re

    pattern = re.compile(re.escape(_ONNX_LOCATION_KEY) + rb"\x12([\x00-\x7f]|[\x80-\xff][\x00-\x7f])")
    found: list[str] = []
    with open(model, "rb") as fh, mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as view:
        for match in pattern.finditer(view):
            raw = match.group(1)
            length = raw[0] if len(raw) == 1 else (raw[0] & 0x7F) | (raw[1] << 7)
            value = bytes(view[match.end() : match.end() + length])
            found.append(value.decode("utf-8", "replace"))
            if len(found) > MAX_ENTRIES:
                break
    return list(dict.fromkeys(found))


def _copy_onnx_external(original: Path, copy: Path) -> None:
    """Link (or copy) the external data files an ONNX model names, at the same relative places.

    Locations that are unsafe or missing are left out: the external-data check then refuses them
    with its own message."""
    folder, private = original.parent, copy.parent
    locations = _onnx_external_locations(copy)
    for location in locations:
        relative = Path(location.replace("\\", "/"))
        if relative.is_absolute() or ".." in relative.parts or not location or "\x00" in location:
            continue
        source, target = folder / relative, private / relative
        if target.exists() or not source.exists():
            continue
        real = source.resolve()
        if not _inside(folder.resolve(), real):
            continue
        target.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        if real.stat().st_size > LINK_THRESHOLD:
            _link_or_copy(real, target)
        else:
            _copy_file(real, target)


def _make(path: Path, fmt: ModelFormat, target: Path) -> None:
    if path.is_dir():
        _copy_tree(path, target, path.resolve(), [MAX_ENTRIES])
    elif fmt is ModelFormat.ONNX:
        if os.stat(path).st_size > LINK_THRESHOLD:
            _link_or_copy(path, target)
            has_external = True
        else:
            has_external = _copy_file(path, target, find=_ONNX_LOCATION_KEY)
        if has_external:
            _copy_onnx_external(path, target)
    else:
        _copy_file(path, target)


@contextlib.contextmanager
def private_copy(path: Path, fmt: ModelFormat) -> Iterator[Path]:
    """Yield the path of a private copy of ``path`` (a model file or folder); removed afterwards."""
    scratch = Path(tempfile.mkdtemp(prefix="mlfit-model-"))
    try:
        target = scratch / (path.name or "model")
        try:
            _make(path, fmt, target)
        except OSError as exc:
            raise ModelError(
                f"{path}: cannot make the private copy the checks and the worker use ({exc.strerror or exc})",
                "check free space in the temporary folder (TMPDIR)") from None
        yield target
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
