"""The host's fingerprint: what a measurement was taken on, so like is compared with like."""

from __future__ import annotations

import hashlib
import math
import os
import platform
import socket
from pathlib import Path

import psutil

from mlfit.catalog.hostfacts import cpu_model
from mlfit.result import HostInfo


def cgroup_cpu_quota() -> float | None:
    """CPUs granted by this process's cgroup quota (v2 cpu.max or v1 cfs_quota_us), or None."""
    from mlfit.measure.cgroup import own_cpu_quota

    return own_cpu_quota()


def cgroup_memory_limit() -> int | None:
    from mlfit.measure.cgroup import own_memory_limit

    return own_memory_limit()


def affinity() -> list[int]:
    if hasattr(os, "sched_getaffinity"):
        return sorted(os.sched_getaffinity(0))
    return list(range(os.cpu_count() or 1))


def usable_cores() -> int:
    """Cores this process may really use: affinity, capped by the cgroup quota.

    onnxruntime sizes its pool from the host's cores and ignores cgroup quotas, which is
    why thread counts are always set explicitly from this.
    """
    cores = len(affinity())
    quota = cgroup_cpu_quota()
    if quota is not None:
        cores = min(cores, max(1, math.ceil(quota)))
    return max(1, cores)


def detect_gpus() -> list[str]:
    """NVIDIA GPUs visible through the driver's proc interface (no CUDA import)."""
    root = Path("/proc/driver/nvidia/gpus")
    names: list[str] = []
    if root.is_dir():
        for info in sorted(root.glob("*/information")):
            for line in info.read_text().splitlines():
                if line.startswith("Model:"):
                    names.append(line.split(":", 1)[1].strip())
    return names


def host_info(versions: dict[str, str] | None = None) -> HostInfo:
    model = cpu_model()
    ram = psutil.virtual_memory().total
    logical = os.cpu_count() or 1
    fingerprint_src = "|".join([model, platform.machine(), str(logical), str(ram // 2**28), platform.system()])
    return HostInfo(
        fingerprint=hashlib.sha256(fingerprint_src.encode()).hexdigest()[:16],
        hostname=socket.gethostname(),
        cpu_model=model,
        arch=platform.machine(),
        cores_logical=logical,
        cores_physical=psutil.cpu_count(logical=False),
        cores_usable=usable_cores(),
        affinity=affinity(),
        cgroup_cpu_quota=cgroup_cpu_quota(),
        cgroup_memory_limit=cgroup_memory_limit(),
        ram_bytes=ram,
        os=f"{platform.system()} {platform.release()}",
        python=platform.python_version(),
        load_avg_1m=os.getloadavg()[0] if hasattr(os, "getloadavg") else 0.0,
        versions=dict(versions or {}),
        gpus=detect_gpus(),
    )


# Without --memory-limit the worker is still stopped before it can exhaust the host:
# at this share of the memory available when the measurement starts.
DEFAULT_HOST_SHARE = 0.9


def host_available_memory() -> int:
    """Memory this process could still get: the host's, capped by a cgroup (container) limit."""
    from pathlib import Path

    import psutil

    available = int(psutil.virtual_memory().available)
    limit = cgroup_memory_limit()
    if limit is not None:
        try:
            used = int(Path("/sys/fs/cgroup/memory.current").read_text())
        except (OSError, ValueError):
            used = 0
        available = min(available, max(0, limit - used))
    return available


def default_memory_limit() -> int:
    """The worker's ceiling when none is given: most of what the host has free right now."""
    return int(host_available_memory() * DEFAULT_HOST_SHARE)
