"""Run the measurement worker under a container's limits, with Linux cgroups.

A Kubernetes pod with ``limits: {cpu: 500m, memory: 512Mi}`` or ``docker run --cpus 0.5``
is a cgroup with a CFS quota (``cpu.max`` in v2, ``cpu.cfs_quota_us`` in v1), maybe a cpuset,
and a memory limit with the OOM killer behind it. mlfit puts its worker in a cgroup with the
same settings, so the figures are *emulated*: measured on this host under the target's limits.

How the cgroup is made, in order (never silently unconstrained):
1. directly in the cgroup filesystem, as a child of the cgroup this process is in (so the
   host's own limits on mlfit still apply above it): works as root or in a delegated subtree;
2. ``systemd-run --scope`` (a transient scope with CPUQuota/MemoryMax), where systemd runs;
3. otherwise a :class:`~mlfit.errors.ConfigError` (exit 2) that says how to get one.

Each cgroup is named ``mlfit-<pid>-<n>`` and removed when the run ends, also after Ctrl-C,
a timeout or a crash (the ``with`` block); leftovers of a killed mlfit (its pid gone) are
removed the next time one is made.
"""

from __future__ import annotations

import contextlib
import itertools
import math
import os
import re
import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from mlfit.errors import ConfigError

CFS_PERIOD_US = 100_000  # the kernel's and Kubernetes' default period
_PREFIX = "mlfit-"
_counter = itertools.count()


@dataclass(frozen=True)
class Limits:
    """What to impose: CPUs (fractional, CFS quota), memory bytes (swap off), a cpuset."""

    cpu: float | None = None
    memory: int | None = None
    cpuset: str | None = None


@dataclass(frozen=True)
class CpuStat:
    """CFS bandwidth counters: periods elapsed, periods in which the quota ran out, time throttled."""

    periods: int = 0
    throttled_periods: int = 0
    throttled_s: float = 0.0

    def __sub__(self, other: CpuStat) -> CpuStat:
        return CpuStat(self.periods - other.periods, self.throttled_periods - other.throttled_periods,
                       round(self.throttled_s - other.throttled_s, 6))


@dataclass(frozen=True)
class MemoryStat:
    peak_bytes: int | None = None  # high-water mark of the cgroup (includes page cache, as in a pod)
    oom_kills: int = 0


def _mounts() -> list[tuple[str, str, str, set[str]]]:
    """(root, mount point, fs type, super options) of every cgroup mount."""
    found = []
    with contextlib.suppress(OSError):
        for line in Path("/proc/self/mountinfo").read_text().splitlines():
            left, _, right = line.partition(" - ")
            fields, tail = left.split(), right.split()
            if len(fields) >= 5 and len(tail) >= 3 and tail[0] in ("cgroup", "cgroup2"):
                found.append((fields[3], fields[4], tail[0], set(tail[2].split(","))))
    return found


def _own_paths() -> dict[str, str]:
    """Controller (or '' for v2) -> this process's cgroup path, from /proc/self/cgroup."""
    paths: dict[str, str] = {}
    with contextlib.suppress(OSError):
        for line in Path("/proc/self/cgroup").read_text().splitlines():
            _, controllers, path = line.split(":", 2)
            for name in controllers.split(",") if controllers else [""]:
                paths[name] = path
    return paths


def _join(mount: str, root: str, path: str) -> Path:
    relative = os.path.relpath(path, root) if path.startswith(root) else path.lstrip("/")
    return Path(mount) / ("" if relative == "." else relative)


def v1_dirs() -> dict[str, Path]:
    """For v1 hierarchies: controller -> the folder of this process's cgroup (cpu, memory, cpuset)."""
    own = _own_paths()
    dirs: dict[str, Path] = {}
    for root, point, fstype, options in _mounts():
        if fstype != "cgroup":
            continue
        for controller in ("cpu", "memory", "cpuset"):
            if controller in options and controller in own:
                dirs[controller] = _join(point, root, own[controller])
    return dirs


def v2_dir() -> Path | None:
    """The folder of this process's v2 cgroup, when the v2 hierarchy has the cpu and memory controllers."""
    own = _own_paths()
    for root, point, fstype, _ in _mounts():
        if fstype != "cgroup2" or "" not in own:
            continue
        folder = _join(point, root, own[""])
        try:
            controllers = (Path(point) / "cgroup.controllers").read_text().split()
        except OSError:
            continue
        if {"cpu", "memory"} <= set(controllers):
            return folder
    return None


def _write(path: Path, value: str) -> None:
    path.write_text(value)


def _read_kv(path: Path) -> dict[str, int]:
    values: dict[str, int] = {}
    with contextlib.suppress(OSError):
        for line in path.read_text().splitlines():
            key, _, value = line.partition(" ")
            with contextlib.suppress(ValueError):
                values[key] = int(value)
    return values


def _remove(folder: Path) -> None:
    """Kill what is left in a cgroup and remove it (retrying while the kernel reaps the processes)."""
    procs = folder / "cgroup.procs"
    for _ in range(50):
        try:
            pids = [int(p) for p in procs.read_text().split()]
        except OSError:
            pids = []
        for pid in pids:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, 9)
        try:
            folder.rmdir()
            return
        except FileNotFoundError:
            return
        except OSError:
            time.sleep(0.02)


def _reap_stale(parent: Path) -> None:
    """Remove cgroups left by an mlfit process that no longer exists (killed with SIGKILL)."""
    with contextlib.suppress(OSError):
        for child in parent.glob(f"{_PREFIX}*"):
            match = re.match(rf"{_PREFIX}(\d+)-\d+$", child.name)
            if match and not Path(f"/proc/{match.group(1)}").exists():
                _remove(child)


class Cgroup:
    """A cgroup (v1: one per controller; v2: one) holding the worker, with its limits set."""

    def __init__(self, limits: Limits) -> None:
        self.limits = limits
        self.version = 0
        self.dirs: dict[str, Path] = {}
        self.wrapper: list[str] = []  # systemd-run --scope prefix, when the fallback is used
        self.unit = ""

    # -- creation -------------------------------------------------------------------------
    def create(self) -> None:
        name = f"{_PREFIX}{os.getpid()}-{next(_counter)}"
        errors: list[str] = []
        parent_v2 = v2_dir()
        parents_v1 = v1_dirs()
        try:
            if parent_v2 is not None and not parents_v1.get("cpu"):
                self._create_v2(parent_v2, name)
            elif parents_v1:
                self._create_v1(parents_v1, name)
            else:
                errors.append("no cgroup hierarchy with the cpu and memory controllers is mounted")
        except OSError as exc:
            self.close()
            errors.append(f"cannot write the cgroup filesystem ({exc.strerror or exc})")
        if self.version:
            return
        if _systemd_scope_available():
            self._use_systemd(name)
            return
        raise ConfigError(
            "cannot emulate the container's limits: " + "; ".join(errors) + ", and systemd-run is not available",
            "run mlfit as root, in a delegated cgroup subtree, or where systemd-run --scope works; "
            "or check against a profile without a container section")

    def _create_v1(self, parents: dict[str, Path], name: str) -> None:
        needed = {"cpu"} if self.limits.cpu is not None else set()
        if self.limits.memory is not None:
            needed.add("memory")
        if self.limits.cpuset:
            needed.add("cpuset")
        missing = needed - set(parents)
        if missing:
            raise OSError(f"cgroup v1 controller(s) not mounted: {', '.join(sorted(missing))}")
        self.version = 1
        for controller in sorted(needed or {"cpu"}):
            parent = parents[controller]
            _reap_stale(parent)
            folder = parent / name
            folder.mkdir()
            self.dirs[controller] = folder
            if controller == "cpuset":
                # A v1 cpuset needs cpus and mems before any task may join.
                _write(folder / "cpuset.mems", (parent / "cpuset.mems").read_text().strip())
                _write(folder / "cpuset.cpus", self.limits.cpuset or (parent / "cpuset.cpus").read_text().strip())
        if self.limits.cpu is not None:
            cpu = self.dirs["cpu"]
            _write(cpu / "cpu.cfs_period_us", str(CFS_PERIOD_US))
            _write(cpu / "cpu.cfs_quota_us", str(_quota_us(self.limits.cpu)))
        if self.limits.memory is not None:
            memory = self.dirs["memory"]
            _write(memory / "memory.limit_in_bytes", str(self.limits.memory))
            if (memory / "memory.memsw.limit_in_bytes").exists():  # swap off: limit memory+swap alike
                with contextlib.suppress(OSError):
                    _write(memory / "memory.memsw.limit_in_bytes", str(self.limits.memory))
            with contextlib.suppress(OSError):
                _write(memory / "memory.swappiness", "0")

    def _create_v2(self, parent: Path, name: str) -> None:
        _reap_stale(parent)
        folder = parent / name
        # The no-internal-processes rule: controllers are enabled for children only; a non-root
        # cgroup that holds processes (ours) cannot do that, so this needs a delegated subtree.
        enabled = set((parent / "cgroup.subtree_control").read_text().split())
        wanted = {"cpu", "memory"} | ({"cpuset"} if self.limits.cpuset else set())
        if not wanted <= enabled:
            _write(parent / "cgroup.subtree_control", " ".join(f"+{c}" for c in sorted(wanted - enabled)))
        folder.mkdir()
        self.version = 2
        self.dirs["v2"] = folder
        if self.limits.cpu is not None:
            _write(folder / "cpu.max", f"{_quota_us(self.limits.cpu)} {CFS_PERIOD_US}")
        if self.limits.memory is not None:
            _write(folder / "memory.max", str(self.limits.memory))
            with contextlib.suppress(OSError):
                _write(folder / "memory.swap.max", "0")
        if self.limits.cpuset:
            _write(folder / "cpuset.cpus", self.limits.cpuset)

    def _use_systemd(self, name: str) -> None:
        self.unit = f"{name}.scope"
        args = ["systemd-run", "--scope", "--quiet", "--collect", f"--unit={self.unit}"]
        if self.limits.cpu is not None:
            args.append(f"--property=CPUQuota={self.limits.cpu * 100:g}%")
        if self.limits.memory is not None:
            args += [f"--property=MemoryMax={self.limits.memory}", "--property=MemorySwapMax=0"]
        if self.limits.cpuset:
            args.append(f"--property=AllowedCPUs={self.limits.cpuset}")
        if os.getuid() != 0:
            args.insert(1, "--user")
        self.wrapper = [*args, "--"]
        self.version = -1  # systemd: the folder is known once the worker runs (attach())

    # -- use ------------------------------------------------------------------------------
    @property
    def method(self) -> str:
        return {1: "cgroup v1", 2: "cgroup v2", -1: "systemd-run --scope"}.get(self.version, "none")

    def join_self(self) -> None:
        """Move the calling process into the cgroup: the worker's preexec_fn, before exec."""
        for folder in self.dirs.values():
            _write(folder / "cgroup.procs", "0")

    def attach(self, pid: int) -> None:
        """With systemd, find the scope's cgroup folder from the worker's /proc entry."""
        if self.version != -1:
            return
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{pid}/cgroup").read_text().splitlines():
                _, _, path = line.split(":", 2)
                if path.endswith(self.unit):
                    for _, point, fstype, _ in _mounts():
                        if fstype == "cgroup2":
                            self.dirs["v2"] = Path(point) / path.lstrip("/")

    def cpu_stat(self) -> CpuStat:
        if "v2" in self.dirs:
            kv = _read_kv(self.dirs["v2"] / "cpu.stat")
            return CpuStat(kv.get("nr_periods", 0), kv.get("nr_throttled", 0), kv.get("throttled_usec", 0) / 1e6)
        if "cpu" in self.dirs:
            kv = _read_kv(self.dirs["cpu"] / "cpu.stat")
            return CpuStat(kv.get("nr_periods", 0), kv.get("nr_throttled", 0), kv.get("throttled_time", 0) / 1e9)
        return CpuStat()

    def memory_stat(self) -> MemoryStat:
        if "v2" in self.dirs:
            folder = self.dirs["v2"]
            peak = _read_int(folder / "memory.peak")
            return MemoryStat(peak, _read_kv(folder / "memory.events").get("oom_kill", 0))
        if "memory" in self.dirs:
            folder = self.dirs["memory"]
            return MemoryStat(_read_int(folder / "memory.max_usage_in_bytes"),
                              _read_kv(folder / "memory.oom_control").get("oom_kill", 0))
        return MemoryStat()

    def close(self) -> None:
        for folder in self.dirs.values():
            if self.version != -1:
                _remove(folder)
        self.dirs.clear()


def _read_int(path: Path) -> int | None:
    try:
        return int(path.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def _quota_us(cpus: float) -> int:
    # The kernel's minimum quota is 1 ms.
    return max(1000, math.ceil(cpus * CFS_PERIOD_US))


def _systemd_scope_available() -> bool:
    return shutil.which("systemd-run") is not None and Path("/run/systemd/system").is_dir() and (
        os.getuid() == 0 or bool(os.environ.get("DBUS_SESSION_BUS_ADDRESS")))


@contextlib.contextmanager
def limited(limits: Limits) -> Iterator[Cgroup]:
    """A cgroup with ``limits`` for the duration of the block, removed afterwards whatever happens."""
    group = Cgroup(limits)
    group.create()
    try:
        yield group
    finally:
        group.close()


def can_emulate() -> str | None:
    """None when a cgroup can be made here, else the reason (for tests and `mlfit targets`)."""
    try:
        with limited(Limits(cpu=1.0)) as group:
            if group.version == -1:
                return None
            probe = subprocess.run(["true"], preexec_fn=group.join_self, check=False)
            return None if probe.returncode == 0 else "a process cannot join the cgroup"
    except ConfigError as exc:
        return exc.message
    except OSError as exc:
        return str(exc)


@dataclass
class Throttling:
    """Per-phase CFS counters, read by the parent at each phase change of the worker."""

    group: Cgroup
    phases: dict[str, CpuStat] = field(default_factory=dict)
    _last: CpuStat = field(default_factory=CpuStat)
    _phase: str = "start"

    def mark(self, phase: str) -> None:
        now = self.group.cpu_stat()
        delta = now - self._last
        previous = self.phases.get(self._phase, CpuStat())
        self.phases[self._phase] = CpuStat(previous.periods + delta.periods,
                                           previous.throttled_periods + delta.throttled_periods,
                                           round(previous.throttled_s + delta.throttled_s, 6))
        self._last, self._phase = now, phase


def own_cpu_quota() -> float | None:
    """CPUs granted to this process by its cgroup's CFS quota (v2 ``cpu.max`` or v1
    ``cpu.cfs_quota_us``), or None when unlimited: what a container's ``--cpus`` means."""
    for folder in _v2_own_folders():
        try:
            quota, period = (folder / "cpu.max").read_text().split()
            return None if quota == "max" else int(quota) / int(period)
        except (OSError, ValueError):
            continue
    cpu_dir = v1_dirs().get("cpu")
    if cpu_dir is not None:
        quota_us = _read_int(cpu_dir / "cpu.cfs_quota_us")
        period_us = _read_int(cpu_dir / "cpu.cfs_period_us")
        if quota_us is not None and quota_us > 0 and period_us:
            return quota_us / period_us
    return None


def own_memory_limit() -> int | None:
    """This process's cgroup memory limit in bytes, or None when unlimited."""
    for folder in _v2_own_folders():
        try:
            text = (folder / "memory.max").read_text().strip()
            return None if text == "max" else int(text)
        except (OSError, ValueError):
            continue
    memory_dir = v1_dirs().get("memory")
    if memory_dir is not None:
        limit = _read_int(memory_dir / "memory.limit_in_bytes")
        if limit is not None and limit < 2**62:  # v1 writes "unlimited" as a huge page-aligned number
            return limit
    return None


def _v2_own_folders() -> list[Path]:
    own = _own_paths()
    if "" not in own:
        return []
    return [_join(point, root, own[""]) for root, point, fstype, _ in _mounts() if fstype == "cgroup2"]
