"""Contention signals, read before and after a phase (worker side, cheap: a few /proc reads).

What another process on this host does to a measurement shows in four places: the CPU time
this process got against the wall time that passed (``cpu_share``), involuntary context
switches (the kernel took a CPU away), runnable tasks beyond the cores (``/proc/loadavg``),
and steal (a hypervisor gave the CPU to another guest, ``/proc/stat``). None of them is read
inside the timed loop.
"""

from __future__ import annotations

import os
import resource
import time
from dataclasses import dataclass
from pathlib import Path

from mlfit.result import PhaseContention


@dataclass(frozen=True)
class Snapshot:
    wall: float
    cpu: float
    involuntary: int
    voluntary: int
    steal_ticks: int | None
    total_ticks: int | None
    runnable: int | None
    load_1m: float | None


def _proc_stat() -> tuple[int | None, int | None]:
    try:
        with open("/proc/stat", encoding="ascii") as fh:
            fields = fh.readline().split()
    except OSError:
        return None, None
    if not fields or fields[0] != "cpu":
        return None, None
    ticks = [int(x) for x in fields[1:]]
    # user nice system idle iowait irq softirq steal [guest guest_nice: already inside user/nice]
    return (ticks[7] if len(ticks) > 7 else None), sum(ticks[:8])


def _loadavg() -> tuple[int | None, float | None]:
    try:
        parts = Path("/proc/loadavg").read_text(encoding="ascii").split()
        return int(parts[3].split("/")[0]), float(parts[0])
    except (OSError, ValueError, IndexError):
        load = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
        return None, load


def snapshot() -> Snapshot:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    steal, total = _proc_stat()
    runnable, load = _loadavg()
    return Snapshot(wall=time.perf_counter(), cpu=time.process_time(), involuntary=usage.ru_nivcsw,
                    voluntary=usage.ru_nvcsw, steal_ticks=steal, total_ticks=total, runnable=runnable,
                    load_1m=load)


def phase_record(phase: str, before: Snapshot, after: Snapshot, threads: int) -> PhaseContention:
    steal = None
    if before.steal_ticks is not None and after.steal_ticks is not None and before.total_ticks is not None \
            and after.total_ticks is not None and after.total_ticks > before.total_ticks:
        steal = (after.steal_ticks - before.steal_ticks) / (after.total_ticks - before.total_ticks)
    return PhaseContention(
        phase=phase, wall_s=max(0.0, after.wall - before.wall), cpu_s=max(0.0, after.cpu - before.cpu),
        threads=max(1, threads), involuntary_switches=max(0, after.involuntary - before.involuntary),
        voluntary_switches=max(0, after.voluntary - before.voluntary), steal_fraction=steal,
        runnable_before=before.runnable, runnable_after=after.runnable, load_1m_before=before.load_1m,
        load_1m_after=after.load_1m,
    )
