"""The timed loop: perf_counter_ns around the runtime call only, nothing else inside.

Next to each wall time the loop can record the process CPU time the call cost
(``time.process_time_ns``, read just outside the wall clock's window, so it never adds to the
wall figure; about 0.2-0.6 µs per read). CPU time is what contention does not move: another
process taking the core lengthens the wall time of a call, not the CPU time it costs.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

ProgressFn = Callable[[int, float], None]


@dataclass(frozen=True)
class LoopPolicy:
    """When to stop: after min_time AND min_samples, or at max_time / max_samples regardless."""

    min_samples: int = 130
    min_time_s: float = 1.0
    max_time_s: float = 30.0
    max_samples: int = 1_000_000


def warm_up(run: Callable[[Any], Any], feeds: Sequence[Any], min_iterations: int, min_time_s: float,
            max_time_s: float) -> int:
    clock = time.perf_counter
    start = clock()
    count = 0
    while True:
        run(feeds[count % len(feeds)])
        count += 1
        elapsed = clock() - start
        if (count >= min_iterations and elapsed >= min_time_s) or elapsed >= max_time_s:
            return count


WARMUP_WINDOW_S = 0.025  # a convergence window lasts about this long (at least WARMUP_WINDOW_MIN_CALLS calls)
WARMUP_WINDOW_MIN_CALLS = 3
WARMUP_TOLERANCE = 0.05  # successive windows' medians within 5%: the runtime has settled


@dataclass(frozen=True)
class WarmUp:
    """How a warm-up ended: its calls, whether the call time settled, and the median call."""

    calls: int
    converged: bool
    median_s: float


def warm_up_converged(run: Callable[[Any], Any], feeds: Sequence[Any], min_iterations: int, floor_s: float,
                      cap_s: float, max_time_s: float, tolerance: float = WARMUP_TOLERANCE) -> WarmUp:
    """Warm up until the call time has settled: two successive windows (~25 ms each) whose
    medians agree within ``tolerance``, after ``min_iterations`` calls and ``floor_s``; a warm-up
    that does not settle stops at ``cap_s`` (the fixed warm-up this replaces, so it never takes
    longer than that did), one short of ``min_iterations`` at ``max_time_s``. The windows are
    medians, not means: one call another process interrupted moves a mean, not a median (and the
    median call, not the mean, tells the worker how long a call is: a stall of a loaded host
    inside a short warm-up moved the mean of a 5 µs call past 50 µs)."""
    clock = time.perf_counter
    start = clock()
    times: list[float] = []
    window = 0  # calls per window, fixed from the first calls' pace
    prev: float | None = None
    while True:
        t0 = clock()
        run(feeds[len(times) % len(feeds)])
        t1 = clock()
        times.append(t1 - t0)
        elapsed = t1 - start
        count = len(times)
        if elapsed >= max_time_s or (count >= min_iterations and elapsed >= cap_s):
            return WarmUp(count, False, sorted(times)[count // 2])
        if not window:
            if elapsed >= WARMUP_WINDOW_S or count >= 10_000:
                window = max(WARMUP_WINDOW_MIN_CALLS, count)
            continue
        if count % window:
            continue
        median = sorted(times[-window:])[window // 2]
        settled = prev is not None and abs(median - prev) <= tolerance * max(median, prev)
        if settled and count >= min_iterations and elapsed >= floor_s:
            return WarmUp(count, True, median)
        prev = median


def timed_loop(run: Callable[[Any], Any], feeds: Sequence[Any], policy: LoopPolicy,
               progress: ProgressFn | None = None, progress_every_s: float = 0.5,
               samples: list[int] | None = None, cpu: list[int] | None = None) -> list[int]:
    """Return one duration in ns per call. ``samples`` may be passed in so a caller that is
    interrupted (timeout) still holds the partial list. ``cpu``, when given, receives the
    process CPU time (ns, all threads) of each call, index for index with the samples."""
    out: list[int] = [] if samples is None else samples
    if cpu is not None:
        return _timed_loop_cpu(run, feeds, policy, progress, progress_every_s, out, cpu)
    append = out.append
    clock = time.perf_counter_ns
    n_feeds = len(feeds)
    single = feeds[0] if n_feeds == 1 else None
    start = clock()
    min_end = start + int(policy.min_time_s * 1e9)
    max_end = start + int(policy.max_time_s * 1e9)
    next_report = start + int(progress_every_s * 1e9)
    i = 0
    while True:
        feed = single if single is not None else feeds[i % n_feeds]
        t0 = clock()
        run(feed)
        t1 = clock()
        append(t1 - t0)
        i += 1
        if t1 >= min_end and i >= policy.min_samples:
            break
        if t1 >= max_end or i >= policy.max_samples:
            break
        if progress is not None and t1 >= next_report:
            progress(i, (t1 - start) / 1e9)
            next_report = t1 + int(progress_every_s * 1e9)
    return out


def _timed_loop_cpu(run: Callable[[Any], Any], feeds: Sequence[Any], policy: LoopPolicy,
                    progress: ProgressFn | None, progress_every_s: float, out: list[int],
                    cpu_out: list[int]) -> list[int]:
    """:func:`timed_loop` with the process CPU clock read around each call (outside the wall window)."""
    append = out.append
    append_cpu = cpu_out.append
    clock = time.perf_counter_ns
    cpu_clock = time.process_time_ns
    n_feeds = len(feeds)
    single = feeds[0] if n_feeds == 1 else None
    start = clock()
    min_end = start + int(policy.min_time_s * 1e9)
    max_end = start + int(policy.max_time_s * 1e9)
    next_report = start + int(progress_every_s * 1e9)
    i = 0
    while True:
        feed = single if single is not None else feeds[i % n_feeds]
        c0 = cpu_clock()
        t0 = clock()
        run(feed)
        t1 = clock()
        c1 = cpu_clock()
        append_cpu(c1 - c0)
        append(t1 - t0)
        i += 1
        if t1 >= min_end and i >= policy.min_samples:
            break
        if t1 >= max_end or i >= policy.max_samples:
            break
        if progress is not None and t1 >= next_report:
            progress(i, (t1 - start) / 1e9)
            next_report = t1 + int(progress_every_s * 1e9)
    return out


def process_age_s() -> float | None:
    """Seconds since this process was started, from /proc/self/stat's start time (clock ticks since
    boot, so 10 ms resolution) against CLOCK_BOOTTIME; None where Linux does not say. The worker
    reads it just before importing the runtime: the interpreter's start and the imports before the
    runtime's, which a fresh pod's process pays too."""
    import os

    try:
        with open("/proc/self/stat", "rb") as fh:
            after_name = fh.read().rsplit(b")", 1)[1].split()  # the name may hold spaces and ')'
        ticks = int(after_name[19])  # field 22, starttime; after_name starts at field 3
        return max(0.0, time.clock_gettime(time.CLOCK_BOOTTIME) - ticks / os.sysconf("SC_CLK_TCK"))
    except (OSError, ValueError, IndexError, AttributeError):
        return None
