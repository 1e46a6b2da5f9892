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
# Largest rate: no runtime call returns in under a microsecond, and a load budget's rate is what
# the worker schedules requests at (a rate of 1e18/s once built an endless request list).
MAX_RATE = 1e6


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
    """Events per second from '30/s' or '600/min', at most MAX_RATE."""
    value = _parse(text, RATE_UNITS, "rate", "30/s")
    if value > MAX_RATE:
        raise ValueError(f"rate '{text}' is above {MAX_RATE:.0f}/s, more than any runtime serves")
    return value


# Kubernetes resource quantities (k8s.io/apimachinery resource.Quantity): binary suffixes are
# powers of 1024, SI suffixes powers of 1000; "m" is milli. Upper-case "K" is accepted for "k".
_K8S_SUFFIXES = {
    "": 1.0, "m": 1e-3, "k": 1e3, "K": 1e3, "M": 1e6, "G": 1e9, "T": 1e12, "P": 1e15, "E": 1e18,
    "Ki": 2.0**10, "Mi": 2.0**20, "Gi": 2.0**30, "Ti": 2.0**40, "Pi": 2.0**50, "Ei": 2.0**60,
}  # fmt: skip
_K8S_QUANTITY = re.compile(r"^\s*(?P<num>[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?P<exp>[eE][+-]?[0-9]+)?(?P<unit>[A-Za-z]*)\s*$")
# Docker and Compose sizes (docker/go-units RAMInBytes): b, k, m, g, t, p with an optional "b",
# any case, all powers of 1024: "512m" and "512M" are both 512 MiB.
_DOCKER_SUFFIXES = {"": 1, "b": 1, "k": 2**10, "m": 2**20, "g": 2**30, "t": 2**40, "p": 2**50}
_DOCKER_SIZE = re.compile(r"^\s*(?P<num>[0-9]+(?:\.[0-9]+)?)\s*(?P<unit>[a-zA-Z]{0,3})\s*$")


def _k8s_quantity(text: object, kind: str, example: str) -> float:
    if isinstance(text, bool) or not isinstance(text, (str, int, float)):
        raise ValueError(f"expected a {kind} such as '{example}', got {type(text).__name__}")
    raw = str(text)
    match = _K8S_QUANTITY.match(raw)
    if not match:
        raise ValueError(f"expected a {kind} such as '{example}', got '{raw}'")
    unit = match.group("unit")
    if unit not in _K8S_SUFFIXES or (unit and match.group("exp")):
        known = ", ".join(k for k in _K8S_SUFFIXES if k)
        raise ValueError(f"unknown {kind} unit '{unit}' in '{raw}'; use one of: {known}")
    value = float(match.group("num") + (match.group("exp") or "")) * _K8S_SUFFIXES[unit]
    if not math.isfinite(value) or value > _MAX_VALUE:
        raise ValueError(f"{kind} '{raw}' is out of range")
    if value <= 0:
        raise ValueError(f"{kind} '{raw}' must be greater than zero")
    return value


def parse_cpus(text: object) -> float:
    """CPUs from a Kubernetes or Compose quantity: '500m', '0.5', 2."""
    value = _k8s_quantity(text, "CPU quantity", "500m")
    if value < 0.001:
        raise ValueError(f"CPU quantity '{text}' is below the smallest quota (1m)")
    return value


def parse_k8s_memory(text: object) -> float:
    """Bytes from a Kubernetes memory quantity: '512Mi', '1G', '129e6', 134217728."""
    return _k8s_quantity(text, "memory quantity", "512Mi")


def parse_docker_memory(text: object) -> float:
    """Bytes from a Docker/Compose size: '512m', '1g', '1gb', 536870912 (powers of 1024)."""
    if isinstance(text, bool) or not isinstance(text, (str, int, float)):
        raise ValueError(f"expected a size such as '512m', got {type(text).__name__}")
    match = _DOCKER_SIZE.match(str(text))
    unit = match.group("unit").lower() if match else ""
    if unit.endswith("b") and len(unit) == 2:
        unit = unit[0]
    if not match or unit not in _DOCKER_SUFFIXES:
        raise ValueError(f"expected a size such as '512m' or '1g' (b, k, m, g, t), got '{text}'")
    value = float(match.group("num")) * _DOCKER_SUFFIXES[unit]
    if value <= 0 or value > _MAX_VALUE:
        raise ValueError(f"size '{text}' must be greater than zero and below 1 EB")
    return value


def parse_memory_limit(text: object) -> float:
    """Bytes from mlfit's own units ('512 MiB') or a Kubernetes quantity ('512Mi', '1G')."""
    try:
        return parse_size(text)
    except ValueError:
        return parse_k8s_memory(text)


# The kernel's own ceiling (CONFIG_NR_CPUS) is at most 8192; a cpuset naming more is a typo or an attack.
MAX_CPU = 4095
_CPUSET_PART = re.compile(r"^(?P<low>[0-9]{1,5})(?:-(?P<high>[0-9]{1,5}))?$")


def parse_cpuset(text: object) -> frozenset[int]:
    """The CPUs of a cpuset string as Linux and Docker write it ('0-3', '0,2,4-5'); ranges that run
    backwards, CPUs above MAX_CPU, a CPU named twice or an empty set are refused (ValueError)."""
    if isinstance(text, bool) or not isinstance(text, (str, int)):
        raise ValueError(f"expected a cpuset such as '0-1' or '0,2', got {type(text).__name__}")
    raw = str(text).strip()
    if not raw:
        raise ValueError("cpuset is empty; name at least one CPU, e.g. '0' or '0-1'")
    cpus: set[int] = set()
    for part in raw.split(","):
        match = _CPUSET_PART.match(part.strip())
        if not match:
            raise ValueError(f"cpuset '{raw[:40]}': '{part.strip()[:20]}' is not a CPU number or a range "
                             "such as '0-3'")
        low = int(match.group("low"))
        high = int(match.group("high") or low)
        if high < low:
            raise ValueError(f"cpuset '{raw[:40]}': range '{part.strip()}' runs backwards")
        if high > MAX_CPU:
            raise ValueError(f"cpuset '{raw[:40]}': CPU {high} is beyond any host (at most {MAX_CPU})")
        named = set(range(low, high + 1))
        if named & cpus:
            raise ValueError(f"cpuset '{raw[:40]}': CPU {min(named & cpus)} is named twice")
        cpus |= named
    return frozenset(cpus)


def format_cpuset(cpus: frozenset[int] | set[int]) -> str:
    """'0-3,6': the kernel's own way of writing a cpuset."""
    runs: list[list[int]] = []
    for cpu in sorted(cpus):
        if runs and cpu == runs[-1][1] + 1:
            runs[-1][1] = cpu
        else:
            runs.append([cpu, cpu])
    return ",".join(str(low) if low == high else f"{low}-{high}" for low, high in runs)


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
