"""Recognise a model's format from its content (magic bytes, zip members, directory
layout), never from its suffix alone. Pure Python; imports no runtime.
"""

from __future__ import annotations

import os
import zipfile
from pathlib import Path
from typing import IO

from mlfit.errors import ModelError
from mlfit.formats._wire.protobuf import FileBytes
from mlfit.formats.kinds import ModelFormat
from mlfit.formats.onnx.sniff import onnx_problem
from mlfit.formats.registry import by_suffix, folder_format

_HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"


def _zip_kind(archive: zipfile.ZipFile) -> ModelFormat | None:
    names = set(archive.namelist())
    if "schema.json" in names:
        return ModelFormat.SKOPS
    if "config.json" in names and ("metadata.json" in names or "model.weights.h5" in names):
        return ModelFormat.KERAS
    return None


def _zip_format(fh: IO[bytes], path: Path) -> tuple[bool, ModelFormat | None]:
    """(whether zipfile reads the file as an archive, the model format it holds)."""
    from mlfit import safeio

    if safeio.zip_directory(fh) is None:
        return False, None
    try:
        with safeio.open_zip(fh, path) as archive:
            if not archive.infolist():
                return False, None
            return True, _zip_kind(archive)
    except ModelError as exc:
        if "not a readable zip archive" in exc.message:
            return False, None
        raise


def _hdf5_offset(fh: IO[bytes], size: int) -> int | None:
    """Where the HDF5 library would find a superblock: byte 0, 512, 1024, 2048, ... (a user
    block of any power-of-two size may precede it), or None."""
    offset = 0
    while offset + len(_HDF5_MAGIC) <= size:
        fh.seek(offset)
        if fh.read(len(_HDF5_MAGIC)) == _HDF5_MAGIC:
            return offset
        offset = 512 if offset == 0 else offset * 2
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


def _sniff_folder(path: Path) -> ModelFormat:
    from mlfit import safeio

    found = folder_format(path)
    if found is not None:
        # Every file of the folder is a regular file inside it (no FIFO, device, or link out),
        # so nothing that reads the folder later (the scan, hashing, the copy) can hang or leak.
        for name, real, size in safeio.tree_files(path, ModelError, "SavedModel folder"):
            if size <= 1024:  # a checkout without its LFS objects: name it, not "cannot parse"
                safeio.refuse_lfs_pointer(real, f"{name} of the model folder")
        return found
    raise ModelError(f"{path}: not a valid model directory (no saved_model.pb)",
                     "give a SavedModel directory or a model file")


def sniff(path: Path) -> ModelFormat:
    """The format the content says, or a ModelError that says why it is none.

    Every format's test is applied: a file that parses as two (an HDF5 model with a .keras
    zip appended, a pickle that is also a zip, ...) is refused, since a scan could judge it
    as one format while a runtime loads it as the other.
    """
    if path.is_dir():
        return _sniff_folder(path)
    from mlfit import safeio

    claimed = by_suffix(path.suffix)
    what = claimed.value if claimed else "model"
    with safeio.open_regular(path, "model file") as fh:
        size = os.fstat(fh.fileno()).st_size
        head = fh.read(64)
        if size == 0 or not head:
            raise ModelError(f"{path}: not a valid {what} file (it is empty)", "re-export the model")
        if head.startswith(safeio.LFS_POINTER_HEAD):  # before any parser calls it a broken model
            safeio.refuse_lfs_pointer(path, "the model file")
        found: dict[str, tuple[ModelFormat | None, str]] = {}  # label -> (format, evidence)
        hdf5_at = _hdf5_offset(fh, size)
        if hdf5_at is not None:
            found["h5"] = (ModelFormat.H5, f"HDF5 signature at byte {hdf5_at}")
        if len(head) >= 8 and head[4:8] == b"TFL3":
            found["tflite"] = (ModelFormat.TFLITE, "TFLite identifier at byte 4")
        is_zip, zip_kind = _zip_format(fh, path)
        if is_zip:
            label = zip_kind.value if zip_kind else "zip"
            found[label] = (zip_kind, f"a zip archive holding a {label} model" if zip_kind else "a zip archive")
        if head[:1] == b"\x80" and len(head) > 1 and 2 <= head[1] <= 5:
            found["pickle"] = (ModelFormat.PICKLE, "a pickle header")
        elif _pickle_format(path, head, claimed) is not None:
            found["pickle"] = (ModelFormat.PICKLE, "a compressed or text pickle")
        if size > 2**31 + 2**20:
            if claimed is ModelFormat.ONNX and not found:
                # refused here, before a run copies 2 GB into its private snapshot only to refuse it
                from mlfit.formats.onnx.safety import check_protobuf_size

                check_protobuf_size(path)
            problem: str | None = "over protobuf's 2 GiB limit"
        else:
            problem = onnx_problem(FileBytes(fh, size))
        if problem is None:
            found["onnx"] = (ModelFormat.ONNX, "a complete ONNX protobuf")
    if len(found) > 1:
        (first, (_, why1)), (second, (_, why2)) = list(found.items())[:2]
        raise ModelError(f"{path}: refused: the file parses as two formats, {first} ({why1}) and "
                         f"{second} ({why2}); one could be checked while the other is loaded",
                         "re-export the model as one plain file")
    fmt = next(iter(found.values()))[0] if found else None
    if fmt is not None:
        return fmt
    if head.startswith(b"PK\x03\x04") or is_zip:
        raise ModelError(f"{path}: not a valid {what} file (a zip archive that is neither .keras nor .skops)",
                         "re-export the model")
    if claimed is ModelFormat.TFLITE:
        raise ModelError(f"{path}: not a valid tflite file (no TFL3 identifier; {size} bytes)",
                         "re-export with the TFLite converter")
    if claimed is ModelFormat.ONNX or claimed is None:
        raise ModelError(f"{path}: not a valid onnx file ({problem})",
                         "re-export the model or check the download")
    raise ModelError(f"{path}: not a valid {what} file (content not recognised)", "re-export the model")


def suffix_mismatch(path: Path, found: ModelFormat) -> str | None:
    """A note when the suffix claims another format than the content."""
    claimed = by_suffix(path.suffix)
    if claimed is None or claimed is found or path.is_dir():
        return None
    return (f"{path.name}: the suffix says {claimed.value} but the content is {found.value}; "
            f"using {found.value}")
