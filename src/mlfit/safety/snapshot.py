"""A private copy of a model, made before any check reads it: the checks read the copy and
the worker loads the copy, so a file swapped into place after the checks is never loaded.

Decisions (see docs/refusals.md, "The bytes checked are the bytes loaded"):

- The copy lives in a fresh folder from :func:`mlfit.scratch.run_folder` (mode 0700, removed at the
  end of the run); copied files are made read-only (0400).
- Every file that holds a graph, or anything else that decides what runs, is always
  **copied**, whatever its size: every single-file model (``.onnx``, ``.tflite``, ``.keras``,
  ``.h5``, pickles, ``.skops``), and in a SavedModel folder ``saved_model.pb``/``.pbtxt``,
  ``variables.index``, ``fingerprint.pb``, ``keras_metadata.pb`` and every asset.
- Only **pure tensor data** above 64 MiB is **hard-linked** when it lives on the same file
  system: SavedModel variable shards (``variables/variables.data-*``) and ONNX external-data
  files. A hard link keeps the inode that was checked, so a file renamed over the original
  afterwards is not seen; a rewrite *in place* of such a file reaches the worker, and can
  change weights but never the graph, whose ops the checks judged. Across file systems it is
  copied.
- Trade-off: a large ONNX file with its weights inline (up to protobuf's 2 GiB) is copied,
  costing its size in the temporary folder and about a second per GB; that is the price of
  "the graph that runs is the graph that was checked" for every format (issue 18, item 9:
  a linked ONNX file rewritten in place after the checks ran a different graph). Hashing
  what the worker loaded was the alternative; it would need every runtime to load from bytes
  mlfit hands it, which TensorFlow's SavedModel and Keras loaders do not offer.
- Only regular files are taken: a FIFO, device or socket is refused (never opened for
  reading: no hang), a symlink is followed only to a regular file inside the model's own
  folder (its content is copied), and folder depth and entry counts are bounded.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from mlfit import safeio
from mlfit.errors import ModelError

LINK_THRESHOLD = 64 * 2**20
MAX_ENTRIES = 100_000
_CHUNK = 1 << 20


def _no_tensor_data(rel: str) -> bool:
    return False


@dataclass(frozen=True)
class CopyPolicy:
    """A format's rule for its private copy (each format states its own, mlfit.formats): which
    files of a folder are pure tensor data (linked when large; everything else, graph included,
    is copied byte for byte), and whether an ONNX file's external data comes along."""

    tensor_data: Callable[[str], bool] = field(default=_no_tensor_data)
    onnx_external: bool = False


# Where an ONNX model names external data (a StringStringEntryProto with key "location").
_ONNX_LOCATION_KEY = b"\x0a\x08location"


def _copy_file(src: Path, dst: Path, find: bytes | None = None, within: Path | None = None) -> bool:
    """Copy ``src`` (a regular file, read to exactly the size it had when opened, through
    :func:`mlfit.safeio.open_regular`) to ``dst``, read-only; True when ``find`` occurs in it."""
    found, tail = False, b""
    with safeio.open_regular(src, "model file", within=within) as fh, open(dst, "xb") as out:
        left = os.fstat(fh.fileno()).st_size
        while left > 0:
            chunk = fh.read(min(_CHUNK, left))
            if not chunk:
                raise ModelError(f"{src}: the file shrank while it was being copied", "check the model again")
            if find is not None and not found:
                found = find in tail + chunk
                tail = chunk[-len(find):]
            out.write(chunk)
            left -= len(chunk)
        if fh.read(1):
            raise ModelError(f"{src}: the file grew while it was copied (it is not a plain file); refused",
                             "give a regular file that does not change")
    os.chmod(dst, 0o400)
    return found


def _link_or_copy(src: Path, dst: Path, within: Path | None = None) -> None:
    with safeio.open_regular(src, "model file", within=within):  # refuse special files before linking
        pass
    try:
        os.link(src, dst, follow_symlinks=False)
    except OSError:  # another file system, or links not allowed: copy
        _copy_file(src, dst, within=within)


def _copy_tree(src: Path, dst: Path, tensor_data: Callable[[str], bool]) -> None:
    """Every regular file of the folder (:func:`mlfit.safeio.tree_files`: no FIFO, device or
    socket, links kept inside, bounded counts), at the same relative places."""
    root = src.resolve()
    dst.mkdir(mode=0o700)
    for rel, real, size in safeio.tree_files(src):
        target = dst / rel
        target.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        if tensor_data(rel) and size > LINK_THRESHOLD:
            _link_or_copy(real, target, root)
        else:
            _copy_file(real, target, within=root)


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
        if not safeio.inside(real, folder.resolve()):  # said here: in the copy it would only look missing
            raise ModelError(f"{original}: external data '{location}' is a symlink leading out of the model's "
                             f"folder (to {real}); refused",
                             "copy the data file into the model's folder instead of linking it")
        target.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        if real.stat().st_size > LINK_THRESHOLD:
            _link_or_copy(real, target, folder.resolve())
        else:
            _copy_file(real, target, within=folder.resolve())


def _make(path: Path, policy: CopyPolicy, target: Path) -> None:
    if path.is_dir():
        _copy_tree(path, target, policy.tensor_data)
    elif policy.onnx_external:
        # The .onnx file holds the graph: always copied, however large (never linked: a
        # rewrite in place would reach the worker). Only its external data may be linked.
        if _copy_file(path, target, find=_ONNX_LOCATION_KEY):
            _copy_onnx_external(path, target)
    else:
        _copy_file(path, target)


@contextlib.contextmanager
def private_copy(path: Path, policy: CopyPolicy) -> Iterator[Path]:
    """Yield the path of a private copy of ``path`` (a model file or folder); removed afterwards."""
    from mlfit.scratch import run_folder

    # run_folder: an owner marker, so a copy left by a killed run is swept by the next run
    with run_folder("mlfit-model-") as scratch:
        target = scratch / (path.name or "model")
        try:
            _make(path, policy, target)
        except OSError as exc:
            raise ModelError(
                f"{path}: cannot make the private copy the checks and the worker use in {scratch.parent} "
                f"({exc.strerror or exc})", "check free space in the temporary folder (TMPDIR)") from None
        yield target
