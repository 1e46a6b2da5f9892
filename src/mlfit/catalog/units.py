"""Strict parsing of quantities written the way people write them.

"50 ms", "1.5 s", "512 MiB", "2 GB", "30/s", "1.8 GHz", "25.6 GB/s", "1.2 TFLOPS".
Every parser returns a float in one base unit (seconds, bytes, per second, hertz,
bytes per second, FLOP/s) and raises ``ValueError`` with a message that says what
was expected; the YAML loader turns that into ``file:line:column``.
"""

from __future__ import annotations

import math
import re

_NUMBER = r"(?P<num>[0-9]+(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?)"
_QUANTITY = re.compile(rf"^\s*{_NUMBER}\s*(?P<unit>[A-Za-z/%µ]*(?:/s)?)\s*$")

DURATION_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "min": 60.0}
SIZE_UNITS = {
    "B": 1,
    "kB": 1e3, "KB": 1e3, "MB": 1e6, "GB": 1e9, "TB": 1e12,
    "KiB": 2**10, "MiB": 2**20, "GiB": 2**30, "TiB": 2**40,
}  # fmt: skip
FREQUENCY_UNITS = {"Hz": 1.0, "kHz": 1e3, "MHz": 1e6, "GHz": 1e9}
FLOPS_UNITS = {"FLOPS": 1.0, "MFLOPS": 1e6, "GFLOPS": 1e9, "TFLOPS": 1e12, "TOPS": 1e12, "GOPS": 1e9}
BANDWIDTH_UNITS = {f"{k}/s": v for k, v in SIZE_UNITS.items()}
RATE_UNITS = {"/s": 1.0, "/min": 1 / 60}

# Largest value accepted for any quantity: bigger is a typo (1e99), not a machine.
_MAX_VALUE = 1e18


def _parse(text: object, units: dict[str, float], kind: str, example: str) -> float:
    if isinstance(text, bool) or not isinstance(text, (str, int, float)):
        raise ValueError(f"expected a {kind} such as '{example}', got {type(text).__name__}")
    raw = str(text)
    match = _QUANTITY.match(raw)
    if not match:
        raise ValueError(f"expected a {kind} such as '{example}', got '{raw}'")
    unit = match.group("unit")
    if unit not in units:
        known = ", ".join(units)
        raise ValueError(f"unknown {kind} unit '{unit or '(none)'}' in '{raw}'; use one of: {known}")
    value = float(match.group("num")) * units[unit]
    if not math.isfinite(value) or value > _MAX_VALUE:
        raise ValueError(f"{kind} '{raw}' is out of range")
    if value <= 0:
        raise ValueError(f"{kind} '{raw}' must be greater than zero")
    return value


def parse_duration(text: object) -> float:
    """Seconds from '50 ms', '2 s', '800 us'."""
    return _parse(text, DURATION_UNITS, "duration", "50 ms")


def parse_size(text: object) -> float:
    """Bytes from '512 MiB', '2 GB', '64 kB'."""
    return _parse(text, SIZE_UNITS, "size", "512 MiB")


def parse_frequency(text: object) -> float:
    """Hertz from '1.8 GHz'."""
    return _parse(text, FREQUENCY_UNITS, "frequency", "1.8 GHz")


def parse_flops(text: object) -> float:
    """FLOP/s from '24 GFLOPS', '65 TFLOPS' (TOPS for integer peaks)."""
    return _parse(text, FLOPS_UNITS, "compute rate", "24 GFLOPS")


def parse_bandwidth(text: object) -> float:
    """Bytes per second from '25.6 GB/s'."""
    return _parse(text, BANDWIDTH_UNITS, "bandwidth", "25.6 GB/s")


def parse_rate(text: object) -> float:
    """Events per second from '30/s' or '600/min'."""
    return _parse(text, RATE_UNITS, "rate", "30/s")


def format_duration(seconds: float) -> str:
    if seconds < 1e-3:
        return f"{seconds * 1e6:.1f} µs"
    if seconds < 1.0:
        return f"{seconds * 1e3:.2f} ms"
    return f"{seconds:.2f} s"


def format_size(n_bytes: float) -> str:
    for unit, scale in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if abs(n_bytes) >= scale:
            return f"{n_bytes / scale:.1f} {unit}"
    return f"{n_bytes:.0f} B"


def format_rate(per_second: float) -> str:
    return f"{per_second:.1f}/s"
