"""Write files so that a reader never sees half of one and an old one is never lost."""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

from mlfit.errors import ConfigError


def check_writable(path: Path) -> None:
    """Fail before measuring, not after, when a report could not be written."""
    parent = path.parent if str(path.parent) else Path(".")
    if path.exists() and not path.is_file() and not path.is_dir():  # /dev/stdout, a FIFO: written through
        if not os.access(path, os.W_OK):
            raise ConfigError(f"cannot write '{path}': permission denied", "choose another path")
        return
    if path.is_dir():
        raise ConfigError(f"output path '{path}' is a directory", "give a file path")
    if not parent.is_dir():
        raise ConfigError(f"cannot write '{path}': folder '{parent}' does not exist", "create it first")
    if path.exists() and not os.access(path, os.W_OK):
        raise ConfigError(f"cannot write '{path}': permission denied", "choose another path")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise ConfigError(f"cannot write '{path}': folder '{parent}' is not writable", "choose another path")


def write_atomic(path: Path, data: bytes | str) -> None:
    """Temporary file in the same folder, fsync, rename over the target.

    A write error (full disk, quota, I/O error) removes the temporary file, leaves any
    previous file at ``path`` untouched, and is raised as a one-line ConfigError.
    """
    try:
        _write_atomic(path, data)
    except OSError as exc:
        reason = exc.strerror or str(exc)
        kept = "; the previous file is unchanged" if path.is_file() else ""
        raise ConfigError(f"could not write '{path}': {reason}{kept}",
                          "free some space or choose another path with --output/--json") from None


def _write_atomic(path: Path, data: bytes | str) -> None:
    payload = data.encode("utf-8") if isinstance(data, str) else data
    if path.exists() and not path.is_file():  # a device or FIFO such as /dev/stdout: write through
        with path.open("wb") as fh:
            fh.write(payload)
        return
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent or ".")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(payload)
            fh.flush()
            os.fsync(fh.fileno())
        if path.exists():
            with contextlib.suppress(OSError):
                os.chmod(tmp, path.stat().st_mode & 0o7777)
        else:
            os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
