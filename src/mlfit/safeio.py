"""Bounded reads for everything the parent process parses.

Every file the parent reads (a model while sniffing and scanning it, a profile or hardware
YAML, a zip member's JSON, a baseline report, the calibration cache, a SavedModel folder
while hashing it) goes through this module, so that a hostile input can neither hang the
parent nor exhaust its memory:

- only **regular files** are opened: a FIFO, a character device (``/dev/zero``), a socket
  or a directory is refused from ``fstat`` after an ``O_NONBLOCK | O_NOFOLLOW`` open
  (opening a FIFO that way never blocks); the path's symlinks are resolved first and, where
  a containing folder is given (a SavedModel's files, ONNX external data), the real path
  must stay inside it;
- a **size cap per kind** (:data:`CAPS`) is checked on ``st_size`` before a byte is read,
  and at most ``cap`` bytes are read even when ``st_size`` lies (``/proc`` files say 0);
- **zip members** are capped on their declared decompressed size (``ZipInfo.file_size``)
  and read in bounded chunks (a member that inflates past its declaration is refused too);
  the central directory is bounded before :mod:`zipfile` builds it;
- **JSON** is bounded in values and nesting before :func:`json.loads` builds any object.

Failures raise the caller's :class:`~mlfit.errors.MlfitError` subclass (``ModelError``,
exit 3, for models; ``ConfigError``, exit 2, for configuration) with one line naming the
file and the cause. ``MLFIT_MAX_<KIND>`` (bytes, e.g. ``MLFIT_MAX_ZIP_JSON``) overrides a
cap; the tests use it to exercise caps with small files.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
import struct
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

from mlfit.errors import MlfitError, ModelError

MiB = 1 << 20
GiB = 1 << 30

# Size caps per kind of file, in bytes (checked before reading). Each is far above what a
# genuine file of that kind needs and far below what would hurt the parent.
CAPS: dict[str, int] = {
    "profile": 1 * MiB,  # a profile or hardware YAML is a few hundred bytes
    "report": 64 * MiB,  # a result JSON (raw samples, per-node costs): --baseline, the worker's answer
    "calibration": 4 * MiB,  # mlfit's own host-calibration cache
    "zip_json": 64 * MiB,  # config.json of a .keras, schema.json of a .skops (decompressed)
    "saved_model_pb": 2 * GiB - 1,  # protobuf (and so TensorFlow) cannot parse more
    "saved_model_pbtxt": 32 * MiB,  # text format parses slowly; real ones are small
    "model_tree": 256 * GiB,  # a SavedModel folder hashed file by file, all files together
}
# Values (objects, arrays, strings, numbers) one JSON document may hold: a Keras config of
# a model with thousands of layers holds tens of thousands; a bomb of tiny objects millions.
# (Nesting is bounded by json's own recursion check, turned into an error below.)
MAX_JSON_VALUES = 2_000_000
# Entries in a model archive or folder (a .keras holds three, a SavedModel a dozen).
MAX_ZIP_ENTRIES = 10_000
MAX_TREE_FILES = 100_000
_CHUNK = 1 << 20


def cap(kind: str) -> int:
    """The size cap for ``kind``; ``MLFIT_MAX_<KIND>`` overrides it (bytes)."""
    override = os.environ.get(f"MLFIT_MAX_{kind.upper()}")
    if override:
        try:
            return max(0, int(override))
        except ValueError:
            pass
    return CAPS[kind]


def limit(name: str, default: int) -> int:
    """A count limit (``MLFIT_MAX_<NAME>`` overrides it), for caps that are not byte sizes."""
    override = os.environ.get(f"MLFIT_MAX_{name.upper()}")
    if override:
        try:
            return max(0, int(override))
        except ValueError:
            pass
    return default


def size_text(size: int) -> str:
    if size >= GiB:
        return f"{size / GiB:.1f} GiB"
    if size >= MiB:
        return f"{size / MiB:.1f} MiB"
    return f"{size} bytes"


def _kind_of(mode: int) -> str:
    if stat.S_ISDIR(mode):
        return "a directory"
    if stat.S_ISFIFO(mode):
        return "a FIFO (named pipe)"
    if stat.S_ISCHR(mode):
        return "a character device"
    if stat.S_ISBLK(mode):
        return "a block device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "not a regular file"


def inside(real: Path, folder: Path) -> bool:
    """Whether the resolved ``real`` is ``folder`` or lies below it (``folder`` resolved too)."""
    return real == folder or folder in real.parents


def resolve_within(path: Path, within: Path | None, what: str, error: type[MlfitError]) -> Path:
    """``path`` with every symlink resolved; refused when it leaves ``within`` (when given)."""
    try:
        real = path.resolve(strict=False)
    except (OSError, RuntimeError) as exc:  # a symlink loop
        raise error(f"{path}: cannot resolve {what} ({exc})", "replace the symlink with the file") from None
    if within is not None:
        folder = within.resolve()
        if not inside(real, folder):
            raise error(f"{path}: {what} is a symlink leading out of the model's folder (to {real}); refused",
                        "copy the file into the model's folder instead of linking it")
    return real


def open_regular(path: Path, what: str = "file", error: type[MlfitError] = ModelError,
                 within: Path | None = None) -> IO[bytes]:
    """Open a regular file for reading, never blocking: FIFOs, devices, sockets and
    directories are refused after ``fstat``, symlinks resolved (and kept inside ``within``)."""
    real = resolve_within(path, within, what, error)
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(real, flags)
    except OSError as exc:
        reason = exc.strerror or str(exc)
        raise error(f"{path}: cannot read {what} ({reason})", "check the path and permissions") from None
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            raise error(f"{path}: {what} is {_kind_of(mode)}, not a regular file; refused",
                        "give a regular file")
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def _too_big(path: Path, what: str, size: int, limit_: int, kind: str, error: type[MlfitError],
             before: bool = True) -> MlfitError:
    files = f"the {size_text(limit_)} limit for {kind.replace('_', ' ')} files"
    text = (f"{what} is {size_text(size)}, over {files}; refused before reading it" if before else
            f"{what} holds more than {files} (more than its size on disk says); refused at the limit")
    return error(f"{path}: {text}",
                 f"a genuine file of this kind is far smaller; MLFIT_MAX_{kind.upper()}=BYTES raises the limit")


def read_limited(fh: IO[bytes], path: Path, what: str, kind: str, error: type[MlfitError]) -> bytes:
    """Up to the cap of ``kind`` from an open regular file: the size is checked first, and the
    read stops at the cap even when the file keeps giving bytes."""
    limit_ = cap(kind)
    size = os.fstat(fh.fileno()).st_size
    if size > limit_:
        raise _too_big(path, what, size, limit_, kind, error)
    # Read what st_size announces (one byte more, to see growth), then in chunks up to the cap:
    # one read of cap + 1 bytes would allocate the whole cap up front, whatever the file holds.
    chunks = [fh.read(size + 1)]
    total = len(chunks[0])
    while total <= limit_:
        chunk = fh.read(min(_CHUNK, limit_ + 1 - total))
        if not chunk:
            break
        chunks.append(chunk)
        total += len(chunk)
    if total > limit_:
        raise _too_big(path, what, limit_, limit_, kind, error, before=False)
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)


def read_bounded(path: Path, kind: str, what: str = "file", error: type[MlfitError] = ModelError,
                 within: Path | None = None) -> bytes:
    """The bytes of a regular file, at most ``cap(kind)`` of them (refused beyond)."""
    try:
        with open_regular(path, what, error, within) as fh:
            return read_limited(fh, path, what, kind, error)
    except MemoryError:
        raise error(f"{path}: ran out of memory reading {what}", "free memory or check the file") from None
    except OSError as exc:
        raise error(f"{path}: cannot read {what} ({exc.strerror or exc})", "check the path") from None


def read_text_bounded(path: Path, kind: str, what: str = "file", error: type[MlfitError] = ModelError,
                      within: Path | None = None) -> str:
    data = read_bounded(path, kind, what, error, within)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise error(f"{path}:1:1: cannot read {what} as UTF-8 text ({exc.reason} at byte {exc.start})",
                    "save the file as UTF-8") from None


# ---------------------------------------------------------------------------------- JSON


def loads_bounded(data: bytes, path: Path | str, what: str, error: type[MlfitError] = ModelError,
                  max_values: int | None = None) -> Any:
    """``json.loads`` after bounding the number of values and the nesting depth."""
    limit_ = max_values if max_values is not None else limit("json_values", MAX_JSON_VALUES)
    values = data.count(b",") + data.count(b":") + data.count(b"[") + data.count(b"{") + 1
    if values > limit_:
        raise error(f"{path}: {what} holds up to {values} JSON values, over the limit of {limit_}; refused "
                    "before parsing it", "a genuine file holds far fewer; re-save the model")
    try:
        return json.loads(data)
    except (ValueError, UnicodeDecodeError) as exc:  # JSONDecodeError, digits over int's limit
        raise error(f"{path}: {what} is not valid JSON ({exc})", "re-save the model") from None
    except RecursionError:
        raise error(f"{path}: {what} is nested too deeply", "re-save the model") from None
    except MemoryError:
        raise error(f"{path}: ran out of memory parsing {what}", "re-save the model") from None


def non_finite_field(data: Any, where: str = "") -> str | None:
    """The dotted path of the first NaN or Infinity in parsed JSON (or a model dump), None when there
    is none. Also covers the free-form dicts (``analysis``, ``projection``, ``extra``) that
    ``allow_inf_nan`` does not reach."""
    import math

    if isinstance(data, float):
        return None if math.isfinite(data) else (where or "(top level)")
    if isinstance(data, dict):
        items: Any = data.items()
    elif isinstance(data, (list, tuple)):
        items = enumerate(data)
    else:
        return None
    for key, value in items:
        found = non_finite_field(value, f"{where}.{key}" if where else str(key))
        if found is not None:
            return found
    return None



# ----------------------------------------------------------------------------------- zip

_EOCD = b"PK\x05\x06"
_EOCD64_LOCATOR = b"PK\x06\x07"


def zip_directory(fh: IO[bytes]) -> tuple[int, int] | None:
    """(entries, central directory bytes) from a zip's end records, or None when the file has
    no end-of-central-directory record (zipfile's rule: within the last 64 KiB + 22 bytes)."""
    size = os.fstat(fh.fileno()).st_size
    if size < 22:
        return None
    tail_size = min(size, 65535 + 22)
    fh.seek(size - tail_size)
    tail = fh.read(tail_size)
    at = tail.rfind(_EOCD)
    if at < 0 or at + 22 > len(tail):
        return None
    _, _, _, _, entries, cd_size, _, _ = struct.unpack("<4s4H2LH", tail[at:at + 22])
    locator = tail.rfind(_EOCD64_LOCATOR, 0, at)
    if locator >= 0 and locator + 20 <= len(tail):
        (record_at,) = struct.unpack("<Q", tail[locator + 8:locator + 16])
        if record_at + 56 <= size:
            fh.seek(record_at)
            record = fh.read(56)
            if record[:4] == b"PK\x06\x06":
                entries, cd_size = struct.unpack("<QQ", record[32:40] + record[40:48])
    fh.seek(0)
    return int(entries), int(cd_size)


@contextmanager
def open_zip(fh: IO[bytes], path: Path, what: str = "archive",
             error: type[MlfitError] = ModelError) -> Iterator[zipfile.ZipFile]:
    """A zipfile over an open regular file, after bounding its central directory (entries and
    bytes) so that zipfile never builds millions of entries."""
    directory = zip_directory(fh)
    if directory is not None:
        entries, cd_size = directory
        max_entries = limit("zip_entries", MAX_ZIP_ENTRIES)
        if entries > max_entries or cd_size > max_entries * 1024:
            raise error(f"{path}: {what} lists {entries} entries ({size_text(cd_size)} of directory), over "
                        f"the limit of {max_entries}; refused", "a model archive holds a handful of files")
    try:
        archive = zipfile.ZipFile(fh)
    except Exception as exc:  # BadZipFile, NotImplementedError (a version field), struct.error, ...: all "not a zip"
        raise error(f"{path}: {what} is not a readable zip archive ({exc})", "re-save the model") from None
    with archive:
        if len(archive.infolist()) > limit("zip_entries", MAX_ZIP_ENTRIES):
            raise error(f"{path}: {what} holds too many entries; refused", "a model archive holds a handful of files")
        yield archive


def read_zip_member(archive: zipfile.ZipFile, member: str, path: Path, kind: str = "zip_json",
                    error: type[MlfitError] = ModelError) -> bytes:
    """One member's bytes, capped on the declared size and while inflating (in chunks)."""
    limit_ = cap(kind)
    what = f"{member} in the archive"
    info = archive.getinfo(member)  # KeyError: the caller says what is missing
    if info.file_size > limit_:
        raise error(f"{path}: {what} inflates to {size_text(info.file_size)}, over the {size_text(limit_)} limit; "
                    "refused before decompressing it", f"a genuine {member} is far smaller; re-save the model")
    chunks: list[bytes] = []
    total = 0
    try:
        with archive.open(info) as stream:
            while True:
                chunk = stream.read(min(_CHUNK, limit_ + 1 - total))
                if not chunk:
                    break
                total += len(chunk)
                if total > limit_:
                    raise error(f"{path}: {what} inflates past {size_text(limit_)} (more than it declares); refused",
                                "re-save the model")
                chunks.append(chunk)
    except (zipfile.BadZipFile, OSError, EOFError, ValueError, NotImplementedError, RuntimeError) as exc:
        # zlib.error is an Exception subclass raised through here too
        raise error(f"{path}: {what} cannot be decompressed ({exc})", "re-save the model") from None
    except Exception as exc:  # zlib.error, lzma.LZMAError, bz2 errors: a corrupt member
        if isinstance(exc, MlfitError):
            raise
        raise error(f"{path}: {what} cannot be decompressed ({exc})", "re-save the model") from None
    return b"".join(chunks)


# ------------------------------------------------------------------------- folder trees


def tree_files(folder: Path, error: type[MlfitError] = ModelError, what: str = "model folder"
               ) -> list[tuple[str, Path, int]]:
    """Every file of a model folder as (relative name, real path, size), sorted by name.

    Only regular files: a FIFO, device or socket is refused; a symlink is followed only when
    its target stays inside the folder; at most ``MAX_TREE_FILES`` files and
    ``cap('model_tree')`` bytes in all.
    """
    root = folder.resolve()
    max_files = limit("tree_files", MAX_TREE_FILES)
    limit_ = cap("model_tree")
    out: list[tuple[str, Path, int]] = []
    total = 0
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        here = Path(dirpath)
        # symlinked folders are not descended (followlinks=False); check they stay inside anyway
        for name in [*dirnames, *filenames]:
            entry = here / name
            try:
                st = entry.lstat()
            except OSError as exc:
                raise error(f"{entry}: cannot read the {what} ({exc.strerror})", "check permissions") from None
            rel = str(entry.relative_to(root))
            if stat.S_ISLNK(st.st_mode):
                real = resolve_within(entry, root, f"'{rel}' in the {what}", error)
                try:
                    st = real.stat()
                except OSError:
                    raise error(f"{entry}: '{rel}' in the {what} is a dangling symlink", "remove it") from None
                if stat.S_ISDIR(st.st_mode):
                    continue  # a link to a folder inside: its files are walked where they live
            else:
                real = entry
            if stat.S_ISDIR(st.st_mode):
                continue
            if not stat.S_ISREG(st.st_mode):
                raise error(f"{entry}: '{rel}' in the {what} is {_kind_of(st.st_mode)}; refused",
                            "a model folder holds regular files only")
            out.append((rel, real, int(st.st_size)))
            total += int(st.st_size)
            if len(out) > max_files:
                raise error(f"{folder}: the {what} holds more than {max_files} files; refused",
                            "a SavedModel holds a dozen files")
            if total > limit_:
                raise _too_big(folder, f"the {what}", total, limit_, "model_tree", error)
    out.sort(key=lambda item: item[0])
    return out


def sha256_of(path: Path, error: type[MlfitError] = ModelError) -> str:
    """SHA-256 of a regular file, or of a folder's regular files (relative names included,
    sorted); each file read at most to the size it had when listed (a file that grows, a
    ``/proc`` file that never ends, is refused)."""
    digest = hashlib.sha256()
    is_dir = path.is_dir()
    files = tree_files(path, error) if is_dir else [(path.name, path, -1)]
    root = path.resolve() if is_dir else None
    for rel, real, size in files:
        if is_dir:
            digest.update(rel.encode())
        with open_regular(real, "model file", error, within=root) as fh:
            expected = os.fstat(fh.fileno()).st_size if size < 0 else size
            left = expected
            while left > 0:
                block = fh.read(min(_CHUNK, left))
                if not block:
                    break
                digest.update(block)
                left -= len(block)
            if fh.read(1):
                raise error(f"{real}: the file grew while it was hashed (it is not a plain file); refused",
                            "give a regular file that does not change")
    return digest.hexdigest()


def size_of(path: Path, error: type[MlfitError] = ModelError) -> int:
    """Bytes of a file, or of every regular file of a folder (walked as :func:`tree_files`)."""
    if path.is_dir():
        return sum(size for _, _, size in tree_files(path, error))
    return path.stat().st_size


# A Git LFS pointer: what a checkout without the LFS objects holds in a model's place
# (https://github.com/git-lfs/git-lfs/blob/main/docs/spec.md: the first line is exactly this).
LFS_POINTER_HEAD = b"version https://git-lfs.github.com/spec/v1\n"
LFS_FIX = ("fetch the LFS objects: `git lfs pull` (in GitHub Actions: `lfs: true` on actions/checkout, or "
           "`lfs: true` on mlfit's action)")


def lfs_pointer(head: bytes, size: int) -> str | None:
    """'a Git LFS pointer to a 5.2 MiB object' when ``head`` (the file's first bytes) starts one, else
    None. A pointer is a few lines of text under 1 KiB; its ``size`` line names the real object's size."""
    if size > 1024 or not head.startswith(LFS_POINTER_HEAD):
        return None
    for line in head.decode("ascii", "replace").splitlines():
        key, _, value = line.partition(" ")
        if key == "size" and value.strip().isdigit():
            return f"a Git LFS pointer to a {size_text(int(value))} object, not the file itself"
    return "a Git LFS pointer, not the file itself"


def refuse_lfs_pointer(path: Path, what: str, error: type[MlfitError] = ModelError) -> None:
    """Raise ``error`` naming the fix when the regular file ``path`` is a Git LFS pointer."""
    try:
        size = path.stat().st_size
        if size > 1024 or not path.is_file():
            return
        with open_regular(path, what, error) as fh:
            head = fh.read(1024)
    except OSError:
        return
    found = lfs_pointer(head, size)
    if found is not None:
        raise error(f"{path}: {what} is {found} (the checkout did not fetch the LFS objects)", LFS_FIX)
