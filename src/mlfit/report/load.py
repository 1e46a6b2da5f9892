"""Terminal lines for the load scenarios and the batch sweep (pure: built from a Measurement)."""

from __future__ import annotations

from mlfit.catalog.units import format_duration, format_rate
from mlfit.records import OfflineRun, RateSearch, ServerRun
from mlfit.result import Measurement


def _ms(value: float | None) -> str:
    return format_duration(value) if value is not None else "n/a"


def _loadgen_note(run: ServerRun | OfflineRun) -> str:
    """'; MLPerf LoadGen 6.0.17: run 2.1 s, 21% of LoadGen's 10 s minimum (MLPerf rules: 600 s), INVALID'."""
    record = run.loadgen
    if record is None:
        return ""
    length = record.length
    share = length.share_of_loadgen_minimum
    verdict = record.summary.result or "?"
    return (f"; {run.generator or 'MLPerf LoadGen'}: run {length.run_s:.1f} s"
            + (f", {share:.0%} of LoadGen's {length.loadgen_default_min_duration_s or 0:g} s minimum" if share
               else "")
            + f" (MLPerf rules: {length.mlperf_rules_min_duration_s or 600:g} s), LoadGen says {verdict}")


def _server_line(run: ServerRun) -> str:
    head = f"server at {format_rate(run.qps)} ({run.callers} callers, {run.completed} requests): "
    latency = run.latency
    if latency is None:
        return head + f"no result ({run.reason})"
    text = (
        head + f"offered {format_rate(run.offered_qps if run.offered_qps is not None else run.qps)}, achieved "
        f"{format_rate(run.achieved_qps)}, latency from arrival p50 {_ms(latency.p50)}"
        f" p90 {_ms(latency.p90)} p99 {_ms(latency.p99)} max {_ms(latency.max)}, "
        f"queueing p50 {_ms(run.queue_delay_p50_s)}"
    )
    if latency.insufficient:
        text += f" (too few requests for {', '.join(latency.insufficient)})"
    text += "; kept up" if run.kept_up else f"; DID NOT KEEP UP: {run.reason}"
    return text + _loadgen_note(run)


def _search_line(search: RateSearch) -> str:
    goal = f"{search.percentile} <= {format_duration(search.limit_s)}"
    lower, upper = search.lower, search.upper
    trials = len(search.trials)
    if lower is None:
        bound = f"below {format_rate(upper)}" if upper else "unknown"
        return (
            f"max rate with {goal}: none proven ({bound}; {search.status}, {trials} trials, stopped by "
            f"{search.stopped_by}"
            + ("; raise --max-time" if search.stopped_by == "time budget" else "")
            + ")"
        )
    band = f"[{format_rate(lower)} – {format_rate(upper) if upper else '?'}]"
    return (
        f"max rate with {goal}: {format_rate(lower)} {band} ({search.status}, {trials} trials, "
        f"stopped by {search.stopped_by})"
    )


def load_lines(m: Measurement, sweep: bool = True) -> list[str]:
    """One line per server run, rate search, offline run and (``sweep``) batch size."""
    lines: list[str] = []
    scenario = m.scenario
    if scenario is not None:
        lines.extend(_server_line(run) for run in scenario.server)
        lines.extend(_search_line(search) for search in scenario.max_qps)
        offline = scenario.offline
        if offline is not None:
            lines.append(
                f"offline: {format_rate(offline.throughput_per_s)} ({offline.mode}, batch "
                f"{offline.batch_size}, {offline.callers} caller(s))" + _loadgen_note(offline)
            )
    for row in m.batch_sweep if sweep else []:
        lines.append(f"batch {row.batch_size}: p50 {_ms(row.latency_p50_s)} per batch, "
                     f"{format_rate(row.throughput_per_s)}")
    return lines
