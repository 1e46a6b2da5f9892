"""Peak resident memory from the kernel's high-water mark.

Polling RSS misses short spikes; the kernel's VmHWM does not. On Linux we reset it
between phases by writing 5 to /proc/self/clear_refs. Elsewhere ru_maxrss is the
fallback, which cannot be reset, so per-phase peaks are then cumulative.
"""

from __future__ import annotations

import resource
import sys
from pathlib import Path

_STATUS = Path("/proc/self/status")
_CLEAR_REFS = Path("/proc/self/clear_refs")


def _status_kib(field: str) -> int | None:
    try:
        for line in _STATUS.read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def can_reset_peak() -> bool:
    try:
        _CLEAR_REFS.write_text("5")
    except OSError:
        return False
    return _status_kib("VmHWM") is not None


class PeakTracker:
    """Reads and resets the process's memory high-water mark."""

    def __init__(self) -> None:
        self.resettable = can_reset_peak()
        self.method = "VmHWM (reset per phase via /proc/self/clear_refs)" if self.resettable else "ru_maxrss"

    def reset(self) -> None:
        if self.resettable:
            _CLEAR_REFS.write_text("5")

    def peak(self) -> int:
        if self.resettable:
            hwm = _status_kib("VmHWM")
            if hwm is not None:
                return hwm * 1024
        scale = 1 if sys.platform == "darwin" else 1024
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale

    @staticmethod
    def current() -> int:
        rss = _status_kib("VmRSS")
        if rss is not None:
            return rss * 1024
        scale = 1 if sys.platform == "darwin" else 1024
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale
