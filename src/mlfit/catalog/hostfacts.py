"""Facts about this machine read from the kernel (no measurement): the CPU's model, clock and
ISA flags, and a :class:`Hardware` description of this host for targets measured here
(``hardware: host``, used by container targets, which are measured emulated, not projected).
"""

from __future__ import annotations

import os
import platform
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mlfit.catalog.schema import Hardware


def cpu_flags() -> set[str]:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith(("flags", "Features")):
                return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def cpu_mhz() -> float | None:
    for path in ("/sys/devices/system/cpu/cpu0/cpufreq/cpuinfo_max_freq",):
        try:
            return int(Path(path).read_text().strip()) / 1000
        except (OSError, ValueError):
            pass
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("cpu mhz"):
                return float(line.split(":", 1)[1])
    except (OSError, ValueError):
        pass
    return None


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith(("model name", "hardware", "processor\t: arm")):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def cpu_vendor_family() -> tuple[str, int]:
    """The x86 vendor id and CPU family from /proc/cpuinfo (("", 0) where it says none)."""
    vendor, family = "", 0
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            key = key.strip().lower()
            if key == "vendor_id" and not vendor:
                vendor = value.strip()
            elif key == "cpu family" and not family and value.strip().isdigit():
                family = int(value.strip())
            if vendor and family:
                break
    except OSError:
        pass
    return vendor, family


# AMD family 25 (Zen 3 and Zen 4): only Zen 4 has AVX-512, and it runs a 512-bit FMA as two halves
# on its two 256-bit FMA pipes: 32 FP32 FLOP per cycle, as with AVX2, not the 64 of a core with two
# 512-bit FMA units (Intel Skylake-SP and later, AMD Zen 5 server/desktop parts: family 26).
_HALF_RATE_AVX512 = frozenset({("AuthenticAMD", 25)})


def flops_per_cycle(flags: set[str], arch: str, vendor: str = "", family: int = 0) -> int:
    """Dense fp32 FLOP per cycle per core from ISA flags (two FMA pipes assumed where common);
    ``vendor``, ``family``: the x86 vendor id and CPU family, for cores whose AVX-512 is half rate."""
    if arch in ("x86_64", "AMD64"):
        if "avx512f" in flags:
            return 32 if (vendor, family) in _HALF_RATE_AVX512 else 64
        if "fma" in flags and "avx2" in flags:
            return 32
        if "avx" in flags:
            return 16
        return 8
    if "asimd" in flags or "neon" in flags:
        return 16 if "asimddp" in flags else 8
    return 4


def host_hardware() -> Hardware:
    """This host as a hardware description. The peak comes from the clock and ISA width; the
    memory bandwidth is not known without measuring and is given as a nominal figure, which is
    never used to judge an emulated target (its figures are measured here)."""
    import psutil

    from mlfit.catalog.schema import Hardware

    arch = platform.machine()
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    mhz = cpu_mhz() or 2000.0
    flags = cpu_flags()
    ram = psutil.virtual_memory().total
    isa = sorted(f for f in flags if f in {"avx", "avx2", "fma", "avx512f", "avx512_vnni", "neon", "asimd", "asimddp"})
    return Hardware(
        id="host",
        name=f"this host ({cpu_model()}, {cores} cores)",
        cpu={"arch": arch if arch in ("x86_64", "aarch64", "armv7") else "x86_64", "model": cpu_model(),
             "cores": cores, "frequency": f"{mhz:.0f} MHz",
             "peak_fp32": f"{cores * mhz * 1e6 * flops_per_cycle(flags, arch, *cpu_vendor_family()) / 1e9:.1f} GFLOPS",
             "isa": isa,
             "source": "this host: /proc/cpuinfo and the scheduler's affinity; peak from clock x ISA width"},
        memory={"ram": f"{ram} B", "os_reserved": f"{min(ram // 10, 512 * 2**20)} B", "bandwidth": "10 GB/s",
                "source": "this host: total RAM from the kernel; bandwidth nominal (an emulated target is "
                          "measured here, not projected)"},
        storage={"size": f"{max(1, psutil.disk_usage('/').total)} B", "source": "this host: size of /"},
    )
