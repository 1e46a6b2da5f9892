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

Fail closed: a limit the kernel refuses (a write to ``cpu.cfs_quota_us``, ``memory.limit_in_bytes``,
``memory.memsw.limit_in_bytes``, ``cpuset.cpus`` ...) stops the run with a ConfigError (exit 2)
naming the limit and the kernel's reason; the cgroup counts as made (``version``) only once every
limit is written, and the worker confirms from inside (:func:`confirm`) before it imports a runtime.

Each cgroup is named ``mlfit-<pid>-<n>-<token>`` and removed when the run ends, also after Ctrl-C,
a timeout or a crash (the ``with`` block); leftovers of a killed mlfit are removed the next time one
is made, only when their ownership marker says so (:mod:`mlfit.measure.cgroupmark`).
"""

from __future__ import annotations

import contextlib
import errno
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
from mlfit.measure import cgroupmark

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


def own_paths() -> dict[str, str]:
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
    own = own_paths()
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
    own = own_paths()
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


class LimitRefused(Exception):
    """The kernel refused one limit: which, in which file, and its reason (errno text)."""

    def __init__(self, limit: str, file: str, value: str, exc: OSError, setup: bool = False) -> None:
        # setup: making the folder or enabling controllers, before any limit (another way may work)
        self.limit, self.file, self.value, self.errno, self.setup = limit, file, value, exc.errno, setup
        reason = exc.strerror or str(exc)
        action = f"creating the cgroup folder {file}" if value == "" else f"writing '{value}' to {file}"
        super().__init__(f"cannot impose the container's {limit}: {action} failed ({reason})")


def _set(folder: Path, file: str, value: str, limit: str) -> None:
    try:
        _write(folder / file, value)
    except OSError as exc:
        raise LimitRefused(limit, file, value, exc) from None


def _mkdir(folder: Path, limit: str) -> None:
    try:
        folder.mkdir()
    except OSError as exc:
        raise LimitRefused(limit, str(folder), "", exc, setup=True) from None


def _swap_active() -> bool:
    try:
        return len(Path("/proc/swaps").read_text().splitlines()) > 1
    except OSError:
        return True  # unknown: assume swap could hide memory use


def _check_cpuset(cpuset: str | None) -> None:
    """A cpuset naming CPUs this process may not use is refused before any cgroup is made."""
    if not cpuset:
        return
    from mlfit.catalog.units import format_cpuset, parse_cpuset

    try:
        wanted = parse_cpuset(cpuset)
    except ValueError as exc:
        raise ConfigError(str(exc), "write the CPUs as Linux does, e.g. '0-1' or '0,2'") from None
    have = frozenset(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else frozenset()
    missing = wanted - have
    if missing:
        raise ConfigError(
            f"cpuset '{cpuset}' names CPU {format_cpuset(missing)}, which this host does not have "
            f"(mlfit may use CPUs {format_cpuset(have) or 'none'})",
            "emulate the container on CPUs this host has: change the cpuset, or drop it")


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


def _reap_stale(parents: list[Path]) -> None:
    """Remove cgroups left by an mlfit that was killed (SIGKILL): only those whose marker proves
    they are an mlfit's and that their owner is gone in this PID namespace. Every hierarchy is
    swept (a leftover may hold controllers this run does not need); the marker goes last."""
    found: dict[str, list[Path]] = {}
    for parent in parents:
        with contextlib.suppress(OSError):
            for child in parent.glob(f"{_PREFIX}*"):
                if re.match(rf"{_PREFIX}\d+-\d+-[0-9a-f]+$", child.name):
                    found.setdefault(child.name, []).append(child)
    for name, folders in found.items():
        if not cgroupmark.reapable(name):
            continue
        for folder in folders:
            _remove(folder)
        if not any(folder.exists() for folder in folders):
            cgroupmark.remove(name)
    cgroupmark.sweep(lambda name: any((parent / name).exists() for parent in parents))


class Cgroup:
    """A cgroup (v1: one per controller; v2: one) holding the worker, with its limits set."""

    def __init__(self, limits: Limits) -> None:
        self.limits = limits
        self.version = 0  # set only once every limit is written: 1, 2, or -1 (systemd)
        self.dirs: dict[str, Path] = {}
        self.wrapper: list[str] = []  # systemd-run --scope prefix, when the fallback is used
        self.unit = ""
        self.name = ""
        self.own_paths: dict[str, str] = {}  # controller -> this process's cgroup path (the parent's)

    # -- creation -------------------------------------------------------------------------
    def create(self) -> None:
        _check_cpuset(self.limits.cpuset)
        token = cgroupmark.new_token()
        name = self.name = f"{_PREFIX}{os.getpid()}-{next(_counter)}-{token}"
        self.own_paths = own_paths()
        errors: list[str] = []
        parent_v2 = v2_dir()
        parents_v1 = v1_dirs()
        try:
            _reap_stale([*parents_v1.values(), *([parent_v2] if parent_v2 is not None else [])])
            if parent_v2 is not None and not parents_v1.get("cpu"):
                self._marked(token)
                self._create_v2(parent_v2, name)
            elif parents_v1:
                self._marked(token)
                self._create_v1(parents_v1, name)
            else:
                errors.append("no cgroup hierarchy with the cpu and memory controllers is mounted")
        except LimitRefused as exc:
            made = bool(self.dirs)
            self.close()
            # No folder at all for lack of permission: another way (systemd) may still work.
            # Anything later is a limit the kernel refused: the run stops (fail closed).
            if made or not exc.setup or exc.errno not in (errno.EACCES, errno.EPERM, errno.EROFS):
                raise ConfigError(str(exc), _REFUSED_HINT) from None
            errors.append(str(exc))
        except ConfigError:
            self.close()
            raise
        except OSError as exc:  # the marker could not be written: make no cgroup we could not reap
            self.close()
            errors.append(f"cannot record the cgroup's owner ({exc.strerror or exc})")
        if self.version:
            return
        if _systemd_scope_available():
            self._use_systemd(name)
            return
        raise ConfigError(
            "cannot emulate the container's limits: " + "; ".join(errors) + ", and systemd-run is not available",
            "run mlfit as root, in a delegated cgroup subtree, or where systemd-run --scope works; "
            "or check against a profile without a container section")

    def _marked(self, token: str) -> None:
        cgroupmark.write(self.name, token)  # before the folder exists: no unmarked cgroup of ours

    def _create_v1(self, parents: dict[str, Path], name: str) -> None:
        needed = {"cpu"} if self.limits.cpu is not None else set()
        if self.limits.memory is not None:
            needed.add("memory")
        if self.limits.cpuset:
            needed.add("cpuset")
        missing = needed - set(parents)
        if missing:
            raise ConfigError(f"cannot impose the container's limits: cgroup v1 controller(s) not mounted: "
                              f"{', '.join(sorted(missing))}", _REFUSED_HINT)
        for controller in sorted(needed or {"cpu"}):
            parent = parents[controller]
            folder = parent / name
            _mkdir(folder, _LIMIT_NAMES[controller])
            self.dirs[controller] = folder
            if controller == "cpuset":
                # A v1 cpuset needs cpus and mems before any task may join.
                mems = (parent / "cpuset.mems").read_text().strip()
                _set(folder, "cpuset.mems", mems, "cpuset")
                cpus = self.limits.cpuset or (parent / "cpuset.cpus").read_text().strip()
                _set(folder, "cpuset.cpus", cpus, "cpuset")
        if self.limits.cpu is not None:
            cpu = self.dirs["cpu"]
            _set(cpu, "cpu.cfs_period_us", str(CFS_PERIOD_US), "CPU limit")
            _set(cpu, "cpu.cfs_quota_us", str(_quota_us(self.limits.cpu)), "CPU limit")
        if self.limits.memory is not None:
            memory = self.dirs["memory"]
            _set(memory, "memory.limit_in_bytes", str(self.limits.memory), "memory limit")
            if (memory / "memory.memsw.limit_in_bytes").exists():  # swap off: limit memory+swap alike
                _set(memory, "memory.memsw.limit_in_bytes", str(self.limits.memory), "memory+swap limit")
            elif _swap_active():  # no swap accounting: only swappiness 0 keeps the limit honest
                _set(memory, "memory.swappiness", "0", "memory+swap limit")
            else:
                with contextlib.suppress(OSError):
                    _write(memory / "memory.swappiness", "0")
        self.version = 1  # every limit written

    def _create_v2(self, parent: Path, name: str) -> None:
        folder = parent / name
        # The no-internal-processes rule: controllers are enabled for children only; a non-root
        # cgroup that holds processes (ours) cannot do that, so this needs a delegated subtree.
        enabled = set((parent / "cgroup.subtree_control").read_text().split())
        wanted = {"cpu", "memory"} | ({"cpuset"} if self.limits.cpuset else set())
        if not wanted <= enabled:
            controllers = " ".join(f"+{c}" for c in sorted(wanted - enabled))
            try:
                _write(parent / "cgroup.subtree_control", controllers)
            except OSError as exc:  # not delegated to us: like a folder we may not make (systemd may)
                raise LimitRefused("limits (enabling the controllers)", str(parent / "cgroup.subtree_control"),
                                   controllers, exc, setup=True) from None
        _mkdir(folder, "limits")
        self.dirs["v2"] = folder
        if self.limits.cpu is not None:
            _set(folder, "cpu.max", f"{_quota_us(self.limits.cpu)} {CFS_PERIOD_US}", "CPU limit")
        if self.limits.memory is not None:
            _set(folder, "memory.max", str(self.limits.memory), "memory limit")
            if (folder / "memory.swap.max").exists():
                _set(folder, "memory.swap.max", "0", "memory+swap limit")
            elif _swap_active():
                raise LimitRefused("memory+swap limit", "memory.swap.max", "0",
                                   OSError(errno.ENOENT, "no swap controller while swap is on"))
        if self.limits.cpuset:
            _set(folder, "cpuset.cpus", self.limits.cpuset, "cpuset")
        self.version = 2  # every limit written

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
        if self.name and self.version != -1:
            cgroupmark.remove(self.name)
        self.version = 0 if self.version != -1 else -1

    def expectation(self) -> dict[str, object]:
        """What the worker must find from inside (:func:`confirm`): its cgroup path per
        controller as /proc/self/cgroup writes it, and the limits as the kernel reads them back."""
        if self.version == -1:
            paths = {"": self.unit}
        else:
            paths = {("" if key == "v2" else key): _child_path(self.own_paths.get("" if key == "v2" else key, "/"),
                                                               self.name) for key in self.dirs}
        return {"version": self.version, "paths": paths,
                "cpu_quota_us": _quota_us(self.limits.cpu) if self.limits.cpu is not None else None,
                "cpu_period_us": CFS_PERIOD_US, "memory": self.limits.memory, "cpuset": self.limits.cpuset}


_LIMIT_NAMES = {"cpu": "CPU limit", "memory": "memory limit", "cpuset": "cpuset"}
_REFUSED_HINT = ("the container's limits could not all be imposed, so nothing would be emulated: fix the limit "
                 "named, or check against a profile without a container section")


def _child_path(parent: str, name: str) -> str:
    return parent.rstrip("/") + "/" + name


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
    for folder in v2_own_folders():
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
    for folder in v2_own_folders():
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


def v2_own_folders() -> list[Path]:
    own = own_paths()
    if "" not in own:
        return []
    return [_join(point, root, own[""]) for root, point, fstype, _ in _mounts() if fstype == "cgroup2"]
