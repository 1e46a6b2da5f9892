"""Ownership markers for the cgroups mlfit makes, so a later mlfit removes only what is provably
a dead mlfit's own.

A v1 cgroup folder cannot hold a file of ours, so the marker lives beside it: one JSON file per
cgroup in a private (0700) folder, written *before* the cgroup is made and named after it. The
cgroup's name carries a random token that the marker repeats; the marker records the owner's pid,
its start time (so a reused pid is not mistaken for the owner) and its PID namespace (a pid means
nothing in another one). A leftover is reaped only when its marker matches and its owner is gone
in this same namespace; a cgroup without a marker, or whose owner lives or sits in another
namespace, is never touched (the red team showed a reaper that trusted the pid in the name
killing the live worker of an mlfit in another PID namespace sharing the cgroup tree).
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import stat
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

_SCHEMA = 1


def marker_dir() -> Path:
    """The private folder of markers: /run/mlfit/cgroups as root, else under the user's runtime
    or temporary folder; refused (OSError) when it is not a real folder owned by this user."""
    if os.geteuid() == 0:
        base = Path("/run/mlfit")
    else:
        base = Path(os.environ.get("XDG_RUNTIME_DIR") or tempfile.gettempdir()) / f"mlfit-{os.geteuid()}"
    folder = base / "cgroups"
    for path in (base, folder):
        with contextlib.suppress(FileExistsError):
            path.mkdir(mode=0o700)
        info = os.lstat(path)
        if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.geteuid() or info.st_mode & 0o077:
            raise OSError(f"{path} is not a private folder of this user")
    return folder


def new_token() -> str:
    return secrets.token_hex(8)


def _start_time(pid: int) -> int | None:
    """The process's start time in clock ticks since boot (field 22 of /proc/PID/stat)."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    try:  # the command name may hold spaces and parentheses: fields start after the last ')'
        return int(text[text.rindex(")") + 2:].split()[19])
    except (ValueError, IndexError):
        return None


def _pid_namespace() -> int | None:
    try:
        return os.stat("/proc/self/ns/pid").st_ino
    except OSError:
        return None


def write(name: str, token: str) -> Path:
    """Record that this process owns the cgroup ``name`` (before it is made)."""
    path = marker_dir() / f"{name}.json"
    record = {"schema": _SCHEMA, "token": token, "pid": os.getpid(), "start": _start_time(os.getpid()),
              "pidns": _pid_namespace()}
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "w") as fh:
        json.dump(record, fh)
    return path


def remove(name: str) -> None:
    with contextlib.suppress(OSError):
        (marker_dir() / f"{name}.json").unlink()


def _read(name: str) -> dict[str, Any] | None:
    try:
        path = marker_dir() / f"{name}.json"
        info = os.lstat(path)
        if not stat.S_ISREG(info.st_mode) or info.st_size > 4096:
            return None
        record = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) else None


def sweep(exists: Callable[[str], bool]) -> None:
    """Drop markers whose cgroups are gone (``exists`` false) and whose owner is gone too."""
    with contextlib.suppress(OSError):
        for path in marker_dir().glob("mlfit-*.json"):
            name = path.name.removesuffix(".json")
            if not exists(name) and reapable(name):
                remove(name)


def reapable(name: str) -> bool:
    """True only when ``name`` is an mlfit cgroup whose marker matches and whose owner is gone in
    this PID namespace; anything unknown (no marker, another namespace, a live owner) is kept."""
    record = _read(name)
    if record is None or record.get("schema") != _SCHEMA:
        return False
    token, pid, start = record.get("token"), record.get("pid"), record.get("start")
    if not isinstance(token, str) or not name.endswith(f"-{token}") or not isinstance(pid, int):
        return False
    own_ns = _pid_namespace()
    if own_ns is None or record.get("pidns") != own_ns:
        return False  # another namespace: its pids are not ours to judge
    alive_start = _start_time(pid)
    if alive_start is None:
        return not Path(f"/proc/{pid}").exists()
    return start is not None and alive_start != start  # the pid was reused by another process
