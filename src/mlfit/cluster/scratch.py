"""Where a cluster worker writes the models it receives, and how it never leaves them behind.

Decision: every worker process that runs a measurement owns one folder,
``$TMPDIR/mlfit-cluster-UID/pPID-TOKEN/``, and holds an exclusive ``flock`` on the ``.lock``
file inside it for as long as it lives. The kernel drops that lock when the process ends, however
it ends (SIGKILL and out-of-memory included). So:

- on a normal exit the folder is removed (``atexit``), and each task removes its own files in a
  ``finally`` block;
- a folder whose lock can be taken belongs to a dead process and is removed by the next worker
  that starts (``mlfit worker``) or runs a task: the model bytes a killed worker held are gone as
  soon as the machine measures again. A pid reused by another process does not matter: the lock,
  not the pid, says who is alive.

The worker process also points ``TMPDIR`` (and ``tempfile``) at its folder, so the files of the
measurement subprocesses it starts land there and go with it. The parent folder is created
0700 and refused when it is a symlink or belongs to another user (a shared /tmp).
"""

from __future__ import annotations

import atexit
import contextlib
import fcntl
import os
import secrets
import shutil
import stat
import tempfile
import threading
from pathlib import Path

from mlfit.errors import ConfigError

_LOCK = threading.Lock()
_OWN: tuple[Path, int] | None = None  # (folder, fd holding its flock)
_BASE_TMP = tempfile.gettempdir()  # before this process points TMPDIR at its own folder


def root(base: str | None = None) -> Path:
    """``$TMPDIR/mlfit-cluster-UID``: created 0700, refused when not ours."""
    folder = Path(base or _BASE_TMP) / f"mlfit-cluster-{os.getuid()}"
    try:
        folder.mkdir(mode=0o700, exist_ok=True)
        info = folder.lstat()
    except OSError as exc:
        raise ConfigError(f"cannot create the worker scratch folder {folder} ({exc.strerror or exc})",
                          "set TMPDIR to a writable folder") from None
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.getuid():
        raise ConfigError(f"{folder} is not a folder owned by this user (a symlink or another user's)",
                          "remove it, or set TMPDIR to a private folder")
    if stat.S_IMODE(info.st_mode) & 0o077:
        os.chmod(folder, 0o700)  # ours, but readable by others (made by an older version, or by hand)
    return folder


def sweep(base: str | None = None) -> list[Path]:
    """Remove the folders of worker processes that are gone (their lock is free). Returns them."""
    removed: list[Path] = []
    parent = root(base)
    for folder in sorted(parent.iterdir()):
        if _OWN is not None and folder == _OWN[0]:
            continue
        if not folder.is_dir() or folder.is_symlink():
            continue
        lock = folder / ".lock"
        try:
            fd = os.open(lock, os.O_RDWR | os.O_NOFOLLOW | os.O_CLOEXEC)
        except FileNotFoundError:
            fd = -1  # a folder without a lock never belonged to a live worker (or is half made)
        except OSError:
            continue
        try:
            if fd >= 0:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except OSError:
                    continue  # its process is alive
            shutil.rmtree(folder, ignore_errors=True)
            removed.append(folder)
        finally:
            if fd >= 0:
                os.close(fd)
    return removed


def own_folder() -> Path:
    """This process's folder, made and locked on first use (old folders swept first); also points
    TMPDIR and ``tempfile`` at it so child processes' files land there too."""
    global _OWN
    with _LOCK:
        if _OWN is not None and _OWN[0].is_dir():
            return _OWN[0]
        sweep()
        folder = root() / f"p{os.getpid()}-{secrets.token_hex(4)}"
        folder.mkdir(mode=0o700)
        fd = os.open(folder / ".lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        _OWN = (folder, fd)
        os.environ["TMPDIR"] = str(folder)
        tempfile.tempdir = str(folder)
        atexit.register(_remove_own)
        return folder


def _remove_own() -> None:
    global _OWN
    if _OWN is None:
        return
    folder, fd = _OWN
    _OWN = None
    shutil.rmtree(folder, ignore_errors=True)
    with contextlib.suppress(OSError):
        os.close(fd)
