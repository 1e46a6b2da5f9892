"""Load scenarios, run inside the measurement worker (MLPerf's names, so people recognise them).

- single-stream: one request after another (the worker's usual timed loop; nothing here).
- server: requests arrive as a Poisson process at a rate; a pool of concurrent callers (threads)
  serves them; latency runs from each request's SCHEDULED arrival, so time spent queueing
  behind busy callers counts, as it would for a user of the service.
- offline: every request is available at once; maximum throughput, batched where the batch
  dim is free.
- find-max-qps: a bounded search for the highest rate at which a latency percentile still
  holds, each trial judged with a three-way verdict from the percentile's confidence interval.
- batch sweep: latency and throughput per batch size, where the batch dim is free.

Pure Python around a ``run(feed)`` callable: the worker hands in the runtime's call, so this
module never imports a runtime. Results are plain dicts, validated by the worker into
:class:`mlfit.records.ScenarioRuns` and :class:`mlfit.records.BatchPoint` (``Measurement.scenario``, ``.batch_sweep``).
"""

from __future__ import annotations

import itertools
import math
import random
import threading
import time
from collections.abc import Callable, Sequence
from enum import Enum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from mlfit.catalog.schema import MIN_SAMPLES, Percentile
from mlfit.measure.stats import latency_stats
from mlfit.measure.timing import LoopPolicy, timed_loop, warm_up

RunFn = Callable[[Any], Any]
BatchFeedsFn = Callable[[int], "list[Any] | None"]
NotifyFn = Callable[[str], None]

# A server run "keeps up" when it served at least this share of the offered rate ...
KEEP_UP_SHARE = 0.9
# ... and the queueing delay did not keep growing: the last quarter's mean delay stays within
# this factor of the first quarter's plus a few service times (a backlog that grows is a
# system running behind, however good its early latencies look).
BACKLOG_GROWTH = 2.0
# Two-sided confidence for percentile intervals (order statistics): z for 95 %.
Z_95 = 1.96
# Searching stops when the bracket [passing rate, failing rate] is this tight (relative).
SEARCH_TOLERANCE = 0.10
# Highest rate the search ever offers: beyond it a thread pool in one process cannot issue.
MAX_SEARCH_RATE = 100_000.0
MAX_START_RATE = 5_000.0
# Hard ceiling on the requests one server run schedules (its arrival list is built up front):
# whatever the rate and the time window, a run never allocates more than this.
MAX_REQUESTS = 200_000


class Scenario(str, Enum):
    SINGLE_STREAM = "single-stream"
    SERVER = "server"
    OFFLINE = "offline"


class LatencyGoal(BaseModel):
    """A latency percentile limit the rate search must respect."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    percentile: Percentile
    limit_s: float = Field(gt=0)


class ScenarioSettings(BaseModel):
    """What the parent asks the worker to run beyond the single-stream loop."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    scenario: Scenario = Scenario.SINGLE_STREAM
    server_rates: list[float] = Field(default_factory=list, description="Request rates (per second) to serve")
    callers: int = Field(default=4, ge=1, le=256, description="Concurrent callers (threads): server, offline")
    find_max_qps: list[LatencyGoal] = Field(default_factory=list)
    search_trials: int = Field(default=8, ge=2, le=30)
    batch_sizes: list[int] = Field(default_factory=list)
    offline_batch: int | None = Field(default=None, ge=1)
    seed: int = 0
    # Server and offline runs go through MLPerf LoadGen where it is installed (mlfit.measure.loadgen);
    # False forces the built-in generator (the fallback, and what the rate search always uses).
    use_loadgen: bool = True

    @property
    def active(self) -> bool:
        return bool(self.scenario is not Scenario.SINGLE_STREAM or self.server_rates or self.find_max_qps
                     or self.batch_sizes)


def percentile_interval(sorted_values: Sequence[float], quantile: float) -> tuple[float, float]:
    """A 95 % confidence interval for a quantile from order statistics (distribution-free).

    The ranks n*q -/+ z*sqrt(n*q*(1-q)) bound the true quantile; with few samples the
    interval widens to the extremes, which is exactly the honesty a verdict needs.
    """
    n = len(sorted_values)
    spread = Z_95 * math.sqrt(n * quantile * (1 - quantile))
    low_rank = max(1, math.floor(n * quantile - spread))
    high_rank = min(n, math.ceil(n * quantile + spread) + 1)
    return sorted_values[low_rank - 1], sorted_values[high_rank - 1]


def _latency_summary(samples_ns: Sequence[int], keep_samples: bool) -> dict[str, Any]:
    stats = latency_stats(samples_ns)
    values = sorted(s / 1e9 for s in samples_ns)
    summary: dict[str, Any] = stats.model_dump(exclude={"samples_ns"})
    summary["ci95"] = {p.value: list(percentile_interval(values, p.quantile)) for p in Percentile
                       if getattr(stats, p.value) is not None}
    if keep_samples:
        summary["samples_ns"] = list(samples_ns)
    return summary


def serve(run: RunFn, feeds: Sequence[Any], rate: float, n_requests: int, callers: int, max_time_s: float,
          seed: int = 0, keep_samples: bool = True) -> dict[str, Any]:
    """Serve ``n_requests`` Poisson arrivals at ``rate``/s with ``callers`` threads.

    Latency is completion minus SCHEDULED arrival. Requests not issued by ``max_time_s``
    are counted as dropped: a system that could not take them did not keep up.
    """
    rng = random.Random(seed)
    offsets: list[int] = []
    t = 0.0
    for _ in range(n_requests):
        t += rng.expovariate(rate)
        offsets.append(int(t * 1e9))
    clock = time.perf_counter_ns
    latencies: list[int] = [0] * n_requests
    delays: list[int] = [0] * n_requests
    done = [False] * n_requests
    counter = itertools.count()
    errors: list[str] = []
    start = clock() + 5_000_000  # a short lead so every caller is waiting before the first arrival
    stop_at = start + int(max_time_s * 1e9)

    def caller() -> None:
        n_feeds = len(feeds)
        while True:
            i = next(counter)  # atomic under the GIL: each request is taken by exactly one caller
            if i >= n_requests:
                return
            scheduled = start + offsets[i]
            now = clock()
            if now >= stop_at:
                return
            if scheduled > now:
                time.sleep((scheduled - now) / 1e9)
            began = clock()
            try:
                run(feeds[i % n_feeds])
            except Exception as exc:  # the runtime failing under concurrency is a result, not a crash
                errors.append(f"{type(exc).__name__}: {exc}"[:200])
                return
            ended = clock()
            latencies[i] = ended - scheduled
            delays[i] = began - scheduled
            done[i] = True

    threads = [threading.Thread(target=caller, daemon=True, name=f"mlfit-caller-{k}") for k in range(callers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=max_time_s + 120.0)
    completed = [i for i in range(n_requests) if done[i]]
    finished = clock()
    result: dict[str, Any] = {"qps": rate, "callers": callers, "requests": n_requests,
                              "completed": len(completed)}
    if not completed:
        result.update(kept_up=False, achieved_qps=0.0, duration_s=(finished - start) / 1e9,
                      reason="no request completed" + (f": {errors[0]}" if errors else ""))
        return result
    last_end = max(start + offsets[i] + latencies[i] for i in completed)
    duration = max(1e-9, (last_end - start) / 1e9)
    achieved = len(completed) / duration
    lat = [latencies[i] for i in completed]
    wait = [delays[i] for i in completed]
    quarter = max(1, len(wait) // 4)
    first_q = sum(wait[:quarter]) / quarter / 1e9
    last_q = sum(wait[-quarter:]) / quarter / 1e9
    service = (sum(lat) - sum(wait)) / len(lat) / 1e9
    growing = last_q > BACKLOG_GROWTH * first_q + 4 * service
    # Poisson arrivals offer n/last_arrival, not exactly ``rate``: keeping up is judged
    # against what was actually offered.
    offered = n_requests / max(1e-9, offsets[-1] / 1e9)
    reasons = []
    if len(completed) < n_requests:
        reasons.append(f"{n_requests - len(completed)} of {n_requests} requests were never served "
                       f"within {max_time_s:g} s")
    if achieved < KEEP_UP_SHARE * min(rate, offered):
        reasons.append(f"served {achieved:.1f}/s of the {offered:.1f}/s offered")
    if growing:
        reasons.append(f"queueing delay kept growing ({first_q * 1e3:.2f} ms in the first quarter, "
                       f"{last_q * 1e3:.2f} ms in the last)")
    if errors:
        reasons.append(f"the runtime failed: {errors[0]}")
    sorted_wait = sorted(wait)
    result.update(
        kept_up=not reasons, reason="; ".join(reasons), offered_qps=offered, achieved_qps=achieved,
        duration_s=duration,
        latency=_latency_summary(lat, keep_samples),
        queue_delay_p50_s=sorted_wait[len(sorted_wait) // 2] / 1e9,
        queue_delay_max_s=sorted_wait[-1] / 1e9,
        service_mean_s=service,
    )
    return result


def requests_for(rate: float, min_samples: int, min_time_s: float, max_time_s: float) -> int:
    """Enough requests for the percentiles and the minimum time, but no more than max_time holds."""
    wanted = max(min_samples, math.ceil(rate * min_time_s), 1)
    return max(1, min(wanted, math.ceil(rate * max_time_s), MAX_REQUESTS))


def trial_verdict(run: dict[str, Any], goal: LatencyGoal) -> tuple[str, str]:
    """PASS / FAIL / INCONCLUSIVE for one server run against a latency goal, with the reason.

    PASS needs the whole 95 % interval of the percentile within the limit and the system
    keeping up; FAIL needs it wholly above, or a system that fell behind; else INCONCLUSIVE.
    """
    if not run.get("kept_up"):
        return "FAIL", f"did not keep up: {run.get('reason', '')}"
    latency = run["latency"]
    value = latency.get(goal.percentile.value)
    if value is None:
        return "INCONCLUSIVE", (f"insufficient samples: {latency['n']} collected, {goal.percentile.value} "
                                f"needs {MIN_SAMPLES[goal.percentile]}")
    low, high = latency["ci95"][goal.percentile.value]
    if high <= goal.limit_s:
        return "PASS", ""
    if low > goal.limit_s:
        return "FAIL", f"{goal.percentile.value} {value * 1e3:.3f} ms is over {goal.limit_s * 1e3:.3f} ms"
    return "INCONCLUSIVE", (f"the 95% interval of {goal.percentile.value} "
                            f"[{low * 1e3:.3f}, {high * 1e3:.3f}] ms straddles {goal.limit_s * 1e3:.3f} ms")


def find_max_qps(run: RunFn, feeds: Sequence[Any], goal: LatencyGoal, callers: int, start_rate: float,
                 min_time_s: float, time_budget_s: float, max_trials: int, seed: int = 0,
                 notify: NotifyFn | None = None) -> dict[str, Any]:
    """Bounded search for the highest rate whose trial PASSes ``goal``.

    Doubling or halving brackets the rate, then geometric bisection narrows it. The answer
    is conservative: ``rate`` is the highest rate proven to PASS, ``upper`` the lowest proven
    to FAIL; INCONCLUSIVE trials only steer the search below them. The search stops after
    ``max_trials`` trials, when its time budget is spent, or when the bracket is within 10 %.
    """
    deadline = time.monotonic() + time_budget_s
    lo = 0.0  # highest PASS
    hi_fail = math.inf  # lowest FAIL
    hi_unknown = math.inf  # lowest INCONCLUSIVE above lo
    trials: list[dict[str, Any]] = []
    stopped = "tolerance"
    rate = max(start_rate, 1e-3)
    min_needed = MIN_SAMPLES[goal.percentile]
    for k in range(max_trials):
        hi = min(hi_fail, hi_unknown)
        if k > 0:
            if math.isinf(hi):
                rate = lo * 2
            elif lo == 0:
                rate = hi / 2
            else:
                if hi / lo <= 1 + SEARCH_TOLERANCE:
                    break
                rate = math.sqrt(lo * hi)
        if rate > MAX_SEARCH_RATE:
            stopped = "rate ceiling"
            break
        n = max(min_needed, math.ceil(rate * min_time_s))
        needed_s = n / rate
        left = deadline - time.monotonic()
        if needed_s > left:
            stopped = "time budget"
            break
        if notify is not None:
            notify(f"trial at {rate:.1f}/s")
        result = serve(run, feeds, rate, n, callers, max_time_s=needed_s * 1.5 + 1.0, seed=seed + k,
                       keep_samples=False)
        verdict, reason = trial_verdict(result, goal)
        trials.append({"qps": rate, "verdict": verdict, "reason": reason,
                       "achieved_qps": result.get("achieved_qps"),
                       "kept_up": result.get("kept_up"), "n": result.get("completed"),
                       "value": (result.get("latency") or {}).get(goal.percentile.value)})
        if verdict == "PASS":
            lo = max(lo, rate)
            if hi_unknown <= lo:
                hi_unknown = math.inf
        elif verdict == "FAIL":
            hi_fail = min(hi_fail, rate)
        else:
            hi_unknown = min(hi_unknown, rate) if rate > lo else hi_unknown
    else:
        stopped = "trial limit"
    if lo == 0:
        status = "no passing rate found"
    elif math.isinf(hi_fail):
        status = "no failing rate found: the rate is at least the lower bound"
    else:
        status = "bracketed"
    return {
        "percentile": goal.percentile.value, "limit_s": goal.limit_s, "callers": callers,
        "rate": lo if lo > 0 else None, "lower": lo if lo > 0 else None,
        "upper": None if math.isinf(hi_fail) else hi_fail, "status": status, "stopped_by": stopped,
        "trials": trials,
    }


def offline(run: RunFn, feeds: Sequence[Any], batch_feeds: BatchFeedsFn, batch: int, callers: int,
            min_time_s: float) -> dict[str, Any]:
    """Maximum throughput with everything available at once: batched where the batch dim is
    free, otherwise ``callers`` threads calling back to back."""
    batched = batch_feeds(batch) if batch > 1 else None
    if batched is not None:
        warm_up(run, batched, 3, 0.05, 2.0)
        policy = LoopPolicy(min_samples=10, min_time_s=min_time_s, max_time_s=max(min_time_s * 3, 2.0))
        samples = timed_loop(run, batched, policy)
        elapsed = sum(samples) / 1e9
        return {"mode": "batched", "batch_size": batch, "callers": 1, "batches": len(samples),
                "throughput_per_s": batch * len(samples) / elapsed,
                "batch_latency_p50_s": sorted(samples)[len(samples) // 2] / 1e9, "duration_s": elapsed}
    counts = [0] * callers
    stop = time.perf_counter() + max(min_time_s, 0.2)

    def worker(k: int) -> None:
        i = 0
        while time.perf_counter() < stop:
            run(feeds[i % len(feeds)])
            i += 1
        counts[k] = i

    began = time.perf_counter()
    threads = [threading.Thread(target=worker, args=(k,), daemon=True) for k in range(callers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=min_time_s + 120.0)
    elapsed = time.perf_counter() - began
    return {"mode": "concurrent callers (batch dim not free)" if batch > 1 else "concurrent callers",
            "batch_size": 1, "callers": callers, "batches": sum(counts),
            "throughput_per_s": sum(counts) / elapsed, "duration_s": elapsed}


def batch_sweep(run: RunFn, batch_feeds: BatchFeedsFn, sizes: Sequence[int], min_time_s: float,
                max_time_s: float) -> tuple[list[dict[str, Any]], str | None]:
    """Latency and throughput per batch size. Returns the rows and a note when the batch dim is fixed."""
    rows: list[dict[str, Any]] = []
    per_size_max = max(0.5, max_time_s / max(1, len(sizes)))
    for size in sorted(set(sizes)):
        feeds = batch_feeds(size)
        if feeds is None:
            return rows, ("batch sweep skipped: the model's leading (batch) dim is fixed, so only its own "
                          "batch size can run")
        warm_up(run, feeds, 3, 0.05, 2.0)
        policy = LoopPolicy(min_samples=20, min_time_s=min(min_time_s, per_size_max), max_time_s=per_size_max)
        stats = latency_stats(timed_loop(run, feeds, policy))
        rows.append({"batch_size": size, "n": stats.n, "latency_p50_s": stats.p50, "latency_p90_s": stats.p90,
                     "latency_mean_s": stats.mean, "latency_max_s": stats.max, "cv": stats.cv,
                     "throughput_per_s": size / stats.mean if stats.mean > 0 else 0.0})
    return rows, None


def run_scenarios(run: RunFn, feeds: Sequence[Any], batch_feeds: BatchFeedsFn, settings: ScenarioSettings,
                  single_stream_mean_s: float, usable_cores: int, threads: int, min_samples: int,
                  min_time_s: float, max_time_s: float, notify: NotifyFn | None = None,
                  ) -> tuple[dict[str, Any], list[str]]:
    """Everything ``settings`` asks for. Returns (extra entries, warnings)."""
    extra: dict[str, Any] = {}
    warnings: list[str] = []
    scenario: dict[str, Any] = {"name": settings.scenario.value, "callers": settings.callers}

    def step(text: str) -> None:
        if notify is not None:
            notify(text)

    from mlfit.measure import loadgen

    use_loadgen = settings.use_loadgen and loadgen.available()
    scenario["generator"] = f"mlperf-loadgen {loadgen.version()}" if use_loadgen else "built-in"
    if settings.use_loadgen and not use_loadgen and (settings.server_rates or settings.scenario is Scenario.OFFLINE):
        warnings.append("server/offline used mlfit's built-in load generator: MLPerf LoadGen is not installed "
                        "(pip install mlcommons-loadgen)")
    if settings.server_rates:
        runs = []
        for rate in sorted(set(settings.server_rates)):
            step(f"serving {rate:g}/s" + (" (MLPerf LoadGen)" if use_loadgen else ""))
            n = requests_for(rate, min_samples, min_time_s, max_time_s)
            if use_loadgen:
                runs.append(loadgen.serve(run, feeds, rate, n, settings.callers, max_time_s, min_time_s,
                                          settings.seed, _latency_summary, KEEP_UP_SHARE))
            else:
                runs.append(serve(run, feeds, rate, n, settings.callers, max_time_s + 5.0, settings.seed))
        scenario["server"] = runs
    if settings.find_max_qps:
        # Where to start: what the callers could do if cores scaled perfectly, halved.
        parallel = max(1, min(settings.callers, usable_cores // max(1, threads)))
        # Capped: a thread pool in one process issues a few thousand requests a second at
        # most, so a microsecond model would otherwise start beyond the search's ceiling.
        start = min(0.5 * parallel / max(single_stream_mean_s, 1e-6), MAX_START_RATE)
        searches = []
        budget = max(2 * max_time_s, 4.0)
        for goal in settings.find_max_qps:
            step(f"searching the highest rate with {goal.percentile.value} <= {goal.limit_s * 1e3:g} ms")
            searches.append(find_max_qps(run, feeds, goal, settings.callers, start, max(min_time_s, 0.3),
                                         budget / len(settings.find_max_qps), settings.search_trials,
                                         settings.seed, step))
        scenario["max_qps"] = searches
    if settings.scenario is Scenario.OFFLINE:
        step("offline throughput")
        batch = settings.offline_batch or max(settings.batch_sizes, default=8)
        if use_loadgen:
            scenario["offline"] = loadgen.offline(run, feeds, batch_feeds, batch, settings.callers, min_time_s,
                                                  single_stream_mean_s)
        else:
            scenario["offline"] = offline(run, feeds, batch_feeds, batch, settings.callers, min_time_s)
    if settings.batch_sizes:
        step("batch sweep")
        rows, note = batch_sweep(run, batch_feeds, settings.batch_sizes, min_time_s, max_time_s)
        if rows:
            extra["batch_sweep"] = rows
        if note:
            warnings.append(note)
    if len(scenario) > 3 or settings.scenario is not Scenario.SINGLE_STREAM:
        extra["scenario"] = scenario
    return extra, warnings
