"""Write files so that a reader never sees half of one and an old one is never lost."""

from __future__ import annotations

import contextlib
import os
import signal
import tempfile
from collections.abc import Iterator
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
    if path.exists() and not path.is_file():  # a device or FIFO such as /dev/stdout: write through
        _write_through(path, data)
        return
    tmp = write_temporary(path, data)
    try:
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def _write_through(path: Path, data: bytes | str) -> None:
    with path.open("wb") as fh:
        fh.write(data.encode("utf-8") if isinstance(data, str) else data)


def write_temporary(path: Path, data: bytes | str, made: list[Path] | None = None) -> Path:
    """``data`` in a temporary file beside ``path`` (same folder, so the rename is atomic), fsynced,
    with the mode ``path`` has (0644 when new). The caller renames it over ``path`` or removes it;
    ``made`` gets its name before any signal can interrupt, so an interrupted caller can remove it."""
    payload = data.encode("utf-8") if isinstance(data, str) else data
    with _signals_held():
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent or ".")
        if made is not None:
            made.append(Path(tmp))
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
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    return Path(tmp)


@contextlib.contextmanager
def _signals_held() -> Iterator[None]:
    """Ctrl-C or SIGTERM is held (delivered on leaving) while a temporary file is created and named,
    and during the renames: a set is never cut in two and no temporary escapes its cleanup (both take
    microseconds)."""
    held = {signal.SIGINT, signal.SIGTERM}
    try:
        before = signal.pthread_sigmask(signal.SIG_BLOCK, held)
    except (AttributeError, OSError, ValueError):  # no signal masks here: rename as we are
        yield
        return
    except BaseException:  # a signal that arrived just before: raised by the call, mask already set
        signal.pthread_sigmask(signal.SIG_UNBLOCK, held)
        raise
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, before)


def _rename_all(temps: list[tuple[Path, Path]]) -> None:
    done: list[Path] = []
    for tmp, path in temps:
        try:
            os.replace(tmp, path)
        except OSError as exc:
            left = [str(p) for _, p in temps if p not in done]
            replaced = ", ".join(map(str, done)) or "none"
            raise ConfigError(f"could not replace '{path}': {exc.strerror or exc}; new: {replaced}; "
                              f"unchanged: {', '.join(left)}", "rerun to write the whole set") from None
        done.append(path)


def write_set(files: list[tuple[Path, bytes | str]]) -> None:
    """Write several files as a set: every temporary file first, then the renames. A failed write
    renames nothing (every old file stays); a rename failing midway names what was replaced and what
    was not. Devices and FIFOs (/dev/stdout) are written through after the renames. ConfigError."""
    devices = [(p, d) for p, d in files if p.exists() and not p.is_file() and not p.is_dir()]
    regular = [(p, d) for p, d in files if (p, d) not in devices]
    temps: list[tuple[Path, Path]] = []
    made: list[Path] = []  # every temporary created, even one a signal interrupted
    try:
        for path, data in regular:
            try:
                temps.append((write_temporary(path, data, made), path))
            except OSError as exc:
                kept = "; no output file was changed" if len(regular) > 1 else (
                    "; the previous file is unchanged" if path.is_file() else "")
                raise ConfigError(f"could not write '{path}': {exc.strerror or exc}{kept}",
                                  "free some space or choose another path with --output/--json") from None
        with _signals_held():
            _rename_all(temps)
    finally:
        for tmp in made:
            with contextlib.suppress(OSError):
                if tmp.exists():
                    os.unlink(tmp)
    for path, data in devices:
        try:
            _write_through(path, data)
        except OSError as exc:
            raise ConfigError(f"could not write '{path}': {exc.strerror or exc}", "choose another path") from None
