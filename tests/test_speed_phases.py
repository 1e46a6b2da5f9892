"""The worker's cheaper phases (issue 22): a warm-up that stops once the call time has settled, and a
node profile time-boxed to a share of the timed loop. No absolute time is asserted: the tests count
calls and compare the bounds the functions are given."""

from __future__ import annotations

import time

from mlfit.measure.nodeprofile import (
    MIN_TIME_PER_THREAD_COUNT_S,
    SHARE_OF_TIMED_LOOP,
    TIME_PER_THREAD_COUNT_S,
    time_per_thread_count,
)
from mlfit.measure.timing import warm_up_converged


def _spin(seconds: float) -> None:
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        pass


def test_a_steady_call_converges_before_the_cap() -> None:
    warm = warm_up_converged(lambda feed: _spin(0.001), [None], 3, 0.0, 30.0, 60.0)
    assert warm.converged
    assert warm.calls < 30_000  # settled well before the 30 s cap (a few windows of ~25 ms)
    assert warm.median_s >= 0.001


def test_a_call_that_keeps_slowing_down_never_converges_and_stops_at_the_cap() -> None:
    state = {"t": 0.0002}

    def slower(feed: object) -> None:
        state["t"] *= 1.15  # every window's median is far above the last one
        _spin(state["t"])

    warm = warm_up_converged(slower, [None], 3, 0.0, 0.3, 60.0)
    assert not warm.converged
    assert warm.calls >= 3


def test_min_iterations_hold_even_when_settled() -> None:
    warm = warm_up_converged(lambda feed: None, [None], 50_000, 0.0, 30.0, 60.0)
    assert warm.converged and warm.calls >= 50_000


def test_the_median_call_is_not_moved_by_one_stall() -> None:
    # per-call time decides whether the timed loop reads the CPU clock: a stall a loaded host puts
    # into a short warm-up must not make a 5 µs call look like a 50 µs one (it did with wall/calls)
    state = {"n": 0}

    def stalls_once(feed: object) -> None:
        state["n"] += 1
        if state["n"] == 5:
            _spin(0.2)

    warm = warm_up_converged(stalls_once, [None], 3, 0.0, 30.0, 60.0)
    assert warm.median_s < 0.01


def test_profile_box_is_a_share_of_the_timed_loop_within_bounds() -> None:
    assert time_per_thread_count(1.0) == SHARE_OF_TIMED_LOOP * 1.0  # an eighth, as with two counts before
    assert time_per_thread_count(0.0) == MIN_TIME_PER_THREAD_COUNT_S
    assert time_per_thread_count(100.0) == TIME_PER_THREAD_COUNT_S  # never longer than before
