"""Temporary folders that a killed run does not leave behind forever (issue 19, item 3).

Every folder mlfit makes in TMPDIR (the worker's scratch folder ``mlfit-*``, the private copy
``mlfit-model-*``) holds an owner marker: the pid and start time of the process that made it,
and an exclusive ``flock`` held on the marker for the folder's life. Making a folder sweeps
TMPDIR first (at most once a second): a folder is removed only when it carries mlfit's marker, its lock is
free (no live process holds it: the kernel drops a lock when its holder dies, SIGKILL included)
and its owner is gone (that pid is not running, or runs a process started at another time).
A live run's folder and a folder without the marker are never touched, as for the cgroups
(mlfit.measure.cgroup). Imports nothing above mlfit.errors.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import secrets
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from mlfit.errors import ConfigError, MlfitError

MARKER = ".mlfit-owner"
PREFIXES = ("mlfit-",)  # mlfit-model-*, mlfit-shapes-*, mlfit-convert-* share it
# A long-lived process (the Python API in a service, many models in one run) sweeps again, but a
# run's several folders (private copy, scratch, shapes) share one sweep.
SWEEP_EVERY_S = 1.0
_last_sweep = -SWEEP_EVERY_S


def start_time(pid: int) -> str | None:
    """The process's start time in clock ticks since boot (/proc/PID/stat field 22), or None
    when no such process runs: a pid reused by another process has another start time."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()[19]


def _owner_alive(marker: Path) -> bool:
    try:
        owner = json.loads(marker.read_text())
        return start_time(int(owner["pid"])) == str(owner["start"])
    except (OSError, ValueError, KeyError, TypeError):
        return True  # unreadable: not provably dead, keep it


def _stale(folder: Path) -> bool:
    marker = folder / MARKER
    try:
        fd = os.open(marker, os.O_RDONLY | os.O_NOFOLLOW)
    except OSError:
        return False  # no marker: not mlfit's, or made before markers existed
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            return False  # a live run holds it
        return not _owner_alive(marker)
    finally:
        os.close(fd)


def sweep(parent: Path | None = None) -> list[Path]:
    """Remove the folders of dead mlfit runs from ``parent`` (TMPDIR by default); returns them."""
    parent = parent or Path(tempfile.gettempdir())
    removed: list[Path] = []
    with contextlib.suppress(OSError):
        for entry in parent.iterdir():
            if entry.name.startswith(PREFIXES) and entry.is_dir() and not entry.is_symlink() and _stale(entry):
                shutil.rmtree(entry, ignore_errors=True)
                removed.append(entry)
    return removed


def no_temp_folder(exc: OSError) -> MlfitError:
    """The one-line error for a temporary folder that cannot be made (full, read-only, missing)."""
    where = os.environ.get("TMPDIR") or tempfile.gettempdir()
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return ConfigError(f"the temporary folder {where} is full (No space left on device)",
                           "free space there, or set TMPDIR to a folder with room")
    if exc.errno == errno.EMFILE:
        return too_many_open_files()
    if "No usable temporary directory" in str(exc):  # tempfile tried TMPDIR and every fallback
        named = f"TMPDIR ({os.environ['TMPDIR']})" if os.environ.get("TMPDIR") else "TMPDIR (not set)"
        return ConfigError(f"no writable temporary folder: {named}, /tmp, /var/tmp, /usr/tmp and the current "
                           "folder all refuse new files", "set TMPDIR to a writable folder with free space")
    reason = exc.strerror or str(exc)
    return ConfigError(f"no writable temporary folder: cannot create one in {where} ({reason})",
                       "set TMPDIR to a writable folder with free space")


def host_state_error(exc: OSError) -> MlfitError | None:
    """The one-line error for an OSError that is the host's state rather than a bug (a full disk,
    too many open files, no usable temporary folder), or None."""
    if exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EMFILE, errno.ENFILE):
        return too_many_open_files() if exc.errno in (errno.EMFILE, errno.ENFILE) else no_temp_folder(exc)
    if "No usable temporary directory" in str(exc):  # tempfile.gettempdir() found none
        return no_temp_folder(exc)
    return None


def too_many_open_files() -> MlfitError:
    import resource

    soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    return ConfigError(f"too many open files: this process may open only {soft} (ulimit -n)",
                       "raise the limit, e.g. `ulimit -n 1024`, and run again")


@contextlib.contextmanager
def run_folder(prefix: str = "mlfit-") -> Iterator[Path]:
    """A fresh private folder (mode 0700) in TMPDIR with this process's owner marker and lock;
    removed on exit. Sweeps the folders of dead runs first (at most every SWEEP_EVERY_S)."""
    global _last_sweep
    if time.monotonic() - _last_sweep >= SWEEP_EVERY_S:
        _last_sweep = time.monotonic()
        sweep()
    try:
        parent = Path(tempfile.gettempdir())
    except OSError as exc:  # FileNotFoundError: "No usable temporary directory found"
        raise no_temp_folder(exc) from None
    folder, fd = _made(parent, prefix)
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)
        os.close(fd)


def _made(parent: Path, prefix: str) -> tuple[Path, int]:
    """A new 0700 folder in ``parent`` with the owner marker written and locked: (folder, marker fd).

    Not ``tempfile.mkdtemp``: a Ctrl-C that lands just after its ``mkdir`` (the signal arrives during
    the call and is raised at the next bytecode) escapes before the name is returned, and the empty,
    unmarked folder is never swept. Here the name is chosen first, so whatever interrupts the making
    removes what was made: the marker, then the folder, if it is empty (never anyone else's)."""
    for _ in range(100):
        folder = parent / f"{prefix}{secrets.token_hex(5)}"  # 40 random bits, as mkdtemp's 8 letters
        try:
            os.mkdir(folder, 0o700)
        except FileExistsError:
            continue  # taken (by anyone): another name, as mkdtemp does
        except OSError as exc:
            raise no_temp_folder(exc) from None
        except BaseException:
            _unmake(folder)  # interrupted around the mkdir: it may have been made
            raise
        try:
            fd = os.open(folder / MARKER, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            try:
                os.write(fd, json.dumps({"pid": os.getpid(), "start": start_time(os.getpid())}).encode())
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BaseException:
                os.close(fd)
                raise
        except OSError as exc:
            _unmake(folder)
            raise no_temp_folder(exc) from None
        except BaseException:
            _unmake(folder)
            raise
        return folder, fd
    raise no_temp_folder(FileExistsError(errno.EEXIST, "no unused folder name found"))


def _unmake(folder: Path) -> None:
    """Remove a folder :func:`_made` was making: its marker, then the folder itself only if empty."""
    with contextlib.suppress(OSError):
        os.unlink(folder / MARKER)
    with contextlib.suppress(OSError):
        os.rmdir(folder)
