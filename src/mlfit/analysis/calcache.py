"""The calibration cache: where it lives, what an entry must hold, and one calibration at a time.

- The folder (``$XDG_CACHE_HOME/mlfit``, default ``~/.cache/mlfit``) is the user's own: created
  0700; one that is group- or world-accessible is repaired to 0700; one owned by another user is
  refused (a planted calibration would steer every projection).
- An entry is validated against :class:`CalibrationEntry` when read; a malformed one (wrong types,
  missing figures, NaN, not JSON, not a regular file, another owner) is ignored with a note and the
  host is measured again. Never a traceback.
- Concurrent first runs calibrate once: the one holding an ``flock`` on ``calibration-FP.lock``
  measures and writes, the others wait (bounded by :data:`WAIT_S`, ``MLFIT_CALIBRATION_WAIT_S``)
  and read its entry; past the bound they calibrate without writing, and say so.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import stat
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from mlfit.errors import ConfigError

# Longer than a calibration may take (its subprocess is stopped at 60 s): a waiter past this
# bound assumes the holder is stuck and measures for itself.
WAIT_S = 90.0
_POLL_S = 0.1


class CalibrationEntry(BaseModel):
    """What a cache entry must hold for the projections to read it (other keys are kept as they are)."""

    model_config = ConfigDict(extra="allow", allow_inf_nan=False, strict=False)

    schema_version: int
    fingerprint: str
    runtime: str
    created: str
    cpu_model: str
    arch: str
    cores_usable: int = Field(ge=1)
    threads: list[int] = Field(min_length=1)
    gemm_flops: dict[str, float]
    conv_flops: dict[str, float]
    bandwidth: dict[str, float]
    copy_bandwidth_1t: float = Field(gt=0)
    call_overhead_s: float = Field(ge=0)
    frequency_mhz: float | None = Field(default=None, ge=0)
    peak_fp32_per_core: float | None = Field(default=None, gt=0)

    @field_validator("gemm_flops", "conv_flops", "bandwidth")
    @classmethod
    def _per_thread(cls, value: dict[str, float]) -> dict[str, float]:
        if "1" not in value:
            raise ValueError("no 1-thread figure")
        for key, figure in value.items():
            if not key.isdigit() or int(key) < 1 or figure <= 0:
                raise ValueError(f"'{key}': {figure} is not a thread count with a positive figure")
        return value


def note(text: str) -> None:
    """One printable line on stderr (the cache is a file: its text could hold control characters)."""
    from mlfit.errors import printable

    sys.stderr.write("mlfit: " + printable(text) + "\n")
    sys.stderr.flush()


def cache_dir() -> Path:
    """The user's cache folder for mlfit, honouring XDG_CACHE_HOME (not created here)."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "mlfit"


def secure_cache_dir() -> Path:
    """:func:`cache_dir`, created 0700, repaired to 0700, refused when another user owns it."""
    folder = cache_dir()
    hint = "set XDG_CACHE_HOME to a folder of your own"
    try:
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        info = os.stat(folder)
    except OSError as exc:
        raise ConfigError(f"cannot create the calibration cache folder {folder}: {exc.strerror or exc}",
                          hint) from None
    if not stat.S_ISDIR(info.st_mode):
        raise ConfigError(f"the calibration cache folder {folder} is not a folder", hint)
    if info.st_uid != os.geteuid():
        raise ConfigError(f"the calibration cache folder {folder} belongs to another user (uid {info.st_uid}); "
                          "refused: a calibration planted there would steer every projection", hint)
    if info.st_mode & 0o077:
        try:
            os.chmod(folder, 0o700)
        except OSError as exc:
            raise ConfigError(f"the calibration cache folder {folder} is open to other users and cannot be "
                              f"made private: {exc.strerror or exc}", hint) from None
        note(f"the calibration cache folder {folder} was open to other users "
             f"(mode {stat.S_IMODE(info.st_mode):o}); made it 0700")
    return folder


def read_entry(path: Path, fingerprint: str, version: int, quiet: bool = False) -> dict[str, Any] | None:
    """The cached calibration at ``path`` when it is this host's, of this version and well formed;
    None otherwise. A malformed entry gets one note (unless ``quiet``) and is measured again."""
    from mlfit import safeio
    from mlfit.errors import MlfitError
    from mlfit.safeio import non_finite_field

    if not path.exists():
        return None
    why = ""
    data: Any = None
    try:  # mlfit's own cache, but read like any other input: regular file, bounded, our own
        if os.stat(path).st_uid != os.geteuid():
            why = "it belongs to another user"
        else:
            data = safeio.loads_bounded(safeio.read_bounded(path, "calibration", "the calibration cache"), path,
                                        "the calibration cache")
    except (OSError, MlfitError) as exc:
        why = exc.message if isinstance(exc, MlfitError) else (exc.strerror or str(exc))
    if not why:
        if not isinstance(data, dict):
            why = "not a JSON object"
        elif data.get("schema_version") != version or data.get("fingerprint") != fingerprint:
            return None  # an older format or another machine: stale, not malformed
        elif (bad := non_finite_field(data)) is not None:
            why = f"NaN or Infinity at {bad}"
        else:
            try:
                CalibrationEntry.model_validate(data)
                return data
            except ValidationError as exc:
                first = exc.errors()[0]
                why = f"{'.'.join(str(p) for p in first['loc'])}: {first['msg']}"
    if not quiet:
        note(f"ignored the malformed calibration cache {path} ({why.removeprefix(f'{path}: ')}); "
             "measuring this host again")
    return None


def _wait_s() -> float:
    try:
        return max(0.0, float(os.environ.get("MLFIT_CALIBRATION_WAIT_S", WAIT_S)))
    except ValueError:
        return WAIT_S


@contextlib.contextmanager
def calibration_lock(folder: Path, fingerprint: str) -> Iterator[bool]:
    """Hold ``calibration-FP.lock`` (an ``flock``, released when the process dies). Yields True once
    held; False when another process held it past the bounded wait (the caller then calibrates
    without writing the cache)."""
    lock = folder / f"calibration-{fingerprint}.lock"
    try:
        fd = os.open(lock, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    except OSError as exc:
        raise ConfigError(f"cannot open the calibration lock {lock}: {exc.strerror or exc}",
                          "set XDG_CACHE_HOME to a folder of your own") from None
    try:
        deadline = time.monotonic() + _wait_s()
        said = False
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    note(f"another mlfit has been calibrating this host for over {_wait_s():g} s (lock {lock}); "
                         "calibrating without writing the cache")
                    yield False
                    return
                if not said:
                    note("another mlfit is calibrating this host; waiting for its result")
                    said = True
                time.sleep(_POLL_S)
        try:
            yield True
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)
