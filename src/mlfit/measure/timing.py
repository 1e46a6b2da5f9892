"""The timed loop: perf_counter_ns around the runtime call only, nothing else inside."""

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


def timed_loop(run: Callable[[Any], Any], feeds: Sequence[Any], policy: LoopPolicy,
               progress: ProgressFn | None = None, progress_every_s: float = 0.5,
               samples: list[int] | None = None) -> list[int]:
    """Return one duration in ns per call. ``samples`` may be passed in so a caller that is
    interrupted (timeout) still holds the partial list."""
    out: list[int] = [] if samples is None else samples
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
