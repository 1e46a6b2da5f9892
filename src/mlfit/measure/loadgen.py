"""The server and offline scenarios through MLPerf LoadGen (``mlcommons-loadgen``), when installed.

LoadGen is the reference load generator of MLPerf Inference: it schedules the queries (Poisson
arrivals at ``server_target_qps`` in the server scenario; every sample in one query offline),
times them from their scheduled issue, and judges the run (its summary: percentiles, the
achieved rate, "Result is: VALID/INVALID", whether the minimum duration and query count were
met). mlfit hands it the runtime's call as the system under test: ``callers`` threads take the
issued samples from a queue (server) or the whole query in batches (offline) and report each
completion back to LoadGen.

Settings mlfit uses, all recorded in the result (``loadgen.settings``): PerformanceOnly mode;
server: target_qps = the rate, min_query_count = the requests the percentiles need (MLPerf's
early-stopping minimums, as for the built-in generator), min_duration = --min-time,
max_duration = --max-time + 5 s, target latency = 100 ms (only used by LoadGen's own
"constraints satisfied" line: mlfit judges against the profile's budgets); offline:
expected_qps = the single-stream rate times the batch, min_duration = --min-time.

A check that fits into a CI job is much shorter than LoadGen's minimum duration for a valid run
(``TestSettings().min_duration_ms``: 10 s in LoadGen's defaults; the MLPerf Inference rules set
600 s for server and offline in ``mlperf.conf``): LoadGen then calls the run INVALID, and the
result says by how much the run fell short (``duration_vs_minimum``). The figures are still
LoadGen's measurements; they are just not an MLPerf submission.

The built-in generator (:mod:`mlfit.measure.scenarios`) stays the fallback when LoadGen is not
installed, and runs the rate search (find-max-qps) either way.
"""

from __future__ import annotations

import importlib.util
import queue
import re
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

RunFn = Callable[[Any], Any]
# LoadGen's own latency target matters only for its "constraints satisfied" line.
TARGET_LATENCY_NS = 100_000_000
# What the MLPerf Inference rules (mlperf.conf) require of server and offline runs.
MLPERF_RULES_MIN_DURATION_S = 600.0


def available() -> bool:
    return importlib.util.find_spec("mlperf_loadgen") is not None


def version() -> str:
    try:
        from importlib.metadata import version as dist_version

        return dist_version("mlcommons-loadgen")
    except Exception:  # metadata missing in an odd install: the version is only informative
        return "unknown"


def parse_summary(text: str) -> dict[str, Any]:
    """The figures of ``mlperf_log_summary.txt``: validity, rates, latency percentiles (seconds)."""
    out: dict[str, Any] = {}
    for line in text.splitlines():
        if ":" not in line:
            continue
        key, _, value = (part.strip() for part in line.partition(":"))
        value = value.strip()
        match = re.fullmatch(r"([0-9.]+) percentile latency \(ns\)", key)
        if match:
            out[f"p{match.group(1).rstrip('0').rstrip('.')}_s"] = float(value) / 1e9
        elif key in ("Min latency (ns)", "Max latency (ns)", "Mean latency (ns)"):
            out[key.split()[0].lower() + "_latency_s"] = float(value) / 1e9
        elif key in ("Completed samples per second", "Samples per second", "Scheduled samples per second"):
            out[key.lower().replace(" ", "_")] = float(value)
        elif key == "Result is":
            out["result"] = value
        elif key in ("Min duration satisfied", "Min queries satisfied", "Performance constraints satisfied",
                     "Early stopping satisfied"):
            out[key.lower().replace(" ", "_")] = value.lower().startswith("yes")
    return out


def _settings_record(settings: Any) -> dict[str, Any]:
    keys = ("server_target_qps", "server_target_latency_ns", "offline_expected_qps", "min_duration_ms",
            "max_duration_ms", "min_query_count", "schedule_rng_seed")
    return {"scenario": settings.scenario.name, "mode": settings.mode.name,
            **{k: getattr(settings, k) for k in keys}}


def _length_record(duration_s: float, default_min_ms: float) -> dict[str, Any]:
    default_s = default_min_ms / 1e3
    return {"run_s": duration_s, "loadgen_default_min_duration_s": default_s,
            "mlperf_rules_min_duration_s": MLPERF_RULES_MIN_DURATION_S,
            "share_of_loadgen_minimum": duration_s / default_s if default_s else None,
            "share_of_mlperf_minimum": duration_s / MLPERF_RULES_MIN_DURATION_S}


def _run_test(issue: Callable[[Any], None], n_samples: int, settings: Any) -> tuple[dict[str, Any], float]:
    import mlperf_loadgen as lg

    sut = lg.ConstructSUT(issue, lambda: None)
    qsl = lg.ConstructQSL(n_samples, n_samples, lambda indices: None, lambda indices: None)
    with tempfile.TemporaryDirectory(prefix="mlfit-loadgen-") as outdir:
        log = lg.LogSettings()
        log.log_output.outdir = outdir
        log.log_output.copy_summary_to_stdout = False  # stdout carries the worker's events
        log.enable_trace = False
        began = time.perf_counter()
        try:
            lg.StartTestWithLogSettings(sut, qsl, settings, log)
        finally:
            elapsed = time.perf_counter() - began
            lg.DestroyQSL(qsl)
            lg.DestroySUT(sut)
        summary_path = Path(outdir) / "mlperf_log_summary.txt"
        summary = parse_summary(summary_path.read_text()) if summary_path.is_file() else {}
    return summary, elapsed


def serve(run: RunFn, feeds: Sequence[Any], rate: float, n_requests: int, callers: int, max_time_s: float,
          min_time_s: float, seed: int, summarize: Callable[[Sequence[int], bool], dict[str, Any]],
          keep_up_share: float, keep_samples: bool = True) -> dict[str, Any]:
    """The server scenario at ``rate``/s, scheduled by LoadGen; the same fields as the built-in
    ``scenarios.serve`` (so checks read either), plus ``loadgen`` (settings, LoadGen's own summary,
    the run's length against LoadGen's minimum duration)."""
    import mlperf_loadgen as lg

    settings = lg.TestSettings()
    default_min_ms = float(settings.min_duration_ms)
    settings.scenario = lg.TestScenario.Server
    settings.mode = lg.TestMode.PerformanceOnly
    settings.server_target_qps = float(rate)
    settings.server_target_latency_ns = TARGET_LATENCY_NS
    settings.min_query_count = int(n_requests)
    settings.max_query_count = int(n_requests)
    settings.min_duration_ms = int(min_time_s * 1e3)
    settings.max_duration_ms = int((max_time_s + 5.0) * 1e3)
    settings.schedule_rng_seed = int(seed)
    work: queue.Queue[tuple[int, Any] | None] = queue.Queue()
    latencies: list[int] = []
    delays: list[int] = []
    errors: list[str] = []
    lock = threading.Lock()
    clock = time.perf_counter_ns

    def caller() -> None:
        n_feeds = len(feeds)
        while True:
            item = work.get()
            if item is None:
                return
            issued, sample = item
            began = clock()
            try:
                run(feeds[sample.index % n_feeds])
            except Exception as exc:  # the runtime failing under concurrency is a result, not a crash
                errors.append(f"{type(exc).__name__}: {exc}"[:200])
            ended = clock()
            with lock:
                latencies.append(ended - issued)
                delays.append(began - issued)
            lg.QuerySamplesComplete([lg.QuerySampleResponse(sample.id, 0, 0)])

    def issue(samples: Any) -> None:
        now = clock()
        for sample in samples:
            work.put((now, sample))

    threads = [threading.Thread(target=caller, daemon=True, name=f"mlfit-loadgen-{k}") for k in range(callers)]
    for thread in threads:
        thread.start()
    try:
        summary, elapsed = _run_test(issue, max(1, len(feeds)), settings)
    finally:
        for _ in threads:
            work.put(None)
        for thread in threads:
            thread.join(timeout=10.0)
    achieved = float(summary.get("completed_samples_per_second") or 0.0)
    offered = float(summary.get("scheduled_samples_per_second") or rate)
    result: dict[str, Any] = {"qps": rate, "callers": callers, "requests": n_requests, "completed": len(latencies),
                              "generator": f"mlperf-loadgen {version()}"}
    reasons = []
    if len(latencies) < n_requests:
        reasons.append(f"{n_requests - len(latencies)} of {n_requests} requests were never served")
    if achieved < keep_up_share * min(rate, offered):
        reasons.append(f"served {achieved:.1f}/s of the {offered:.1f}/s LoadGen scheduled")
    if errors:
        reasons.append(f"the runtime failed: {errors[0]}")
    result.update(kept_up=not reasons and bool(latencies), reason="; ".join(reasons), offered_qps=offered,
                  achieved_qps=achieved, duration_s=elapsed)
    if latencies:
        waits = sorted(delays)
        result.update(latency=summarize(latencies, keep_samples), queue_delay_p50_s=waits[len(waits) // 2] / 1e9,
                      queue_delay_max_s=waits[-1] / 1e9,
                      service_mean_s=(sum(latencies) - sum(delays)) / len(latencies) / 1e9)
    result["loadgen"] = {"settings": _settings_record(settings), "summary": summary,
                         "length": _length_record(elapsed, default_min_ms),
                         "latency_timing": "latency samples are timed by mlfit from LoadGen's issue of each "
                                           "query to its completion; LoadGen's own percentiles (from the "
                                           "scheduled issue) are in loadgen.summary"}
    return result


def offline(run: RunFn, feeds: Sequence[Any], batch_feeds: Callable[[int], list[Any] | None], batch: int,
            callers: int, min_time_s: float, single_stream_mean_s: float) -> dict[str, Any]:
    """The offline scenario: LoadGen issues every sample at once; they are run in batches where the
    batch dim is free (one thread), else one by one by ``callers`` threads."""
    import mlperf_loadgen as lg

    batched = batch_feeds(batch) if batch > 1 else None
    per_call = batch if batched is not None else 1
    settings = lg.TestSettings()
    default_min_ms = float(settings.min_duration_ms)
    settings.scenario = lg.TestScenario.Offline
    settings.mode = lg.TestMode.PerformanceOnly
    expected = max(1.0, per_call / max(single_stream_mean_s * (per_call ** 0.5 if per_call > 1 else 1), 1e-6))
    settings.offline_expected_qps = float(expected)
    settings.min_duration_ms = int(max(min_time_s, 0.2) * 1e3)
    settings.min_query_count = 1
    calls = [0]
    work: queue.Queue[list[Any] | None] = queue.Queue()

    def caller() -> None:
        while True:
            group = work.get()
            if group is None:
                return
            feed = batched[0] if batched is not None else feeds[group[0].index % len(feeds)]
            run(feed)
            calls[0] += 1
            lg.QuerySamplesComplete([lg.QuerySampleResponse(s.id, 0, 0) for s in group])

    def issue(samples: Any) -> None:
        for start in range(0, len(samples), per_call):
            work.put(list(samples[start:start + per_call]))

    workers = 1 if batched is not None else callers
    threads = [threading.Thread(target=caller, daemon=True) for _ in range(workers)]
    for thread in threads:
        thread.start()
    if batched is not None:
        run(batched[0])  # warm the batched shape once, outside LoadGen's clock
    try:
        summary, elapsed = _run_test(issue, max(1, len(feeds)), settings)
    finally:
        for _ in threads:
            work.put(None)
        for thread in threads:
            thread.join(timeout=10.0)
    throughput = float(summary.get("samples_per_second") or 0.0)
    return {"mode": "batched" if batched is not None else "concurrent callers", "batch_size": per_call,
            "callers": workers, "batches": calls[0], "throughput_per_s": throughput, "duration_s": elapsed,
            "generator": f"mlperf-loadgen {version()}",
            "loadgen": {"settings": _settings_record(settings), "summary": summary,
                        "length": _length_record(elapsed, default_min_ms)}}
