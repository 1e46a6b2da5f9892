"""Terminal lines for the load scenarios and the batch sweep (pure: built from a Measurement)."""

from __future__ import annotations

from typing import Any

from mlfit.catalog.units import format_duration, format_rate
from mlfit.result import Measurement


def _ms(value: float | None) -> str:
    return format_duration(value) if value is not None else "n/a"


def _loadgen_note(run: dict[str, Any]) -> str:
    """'; MLPerf LoadGen 6.0.17: run 2.1 s, 21% of LoadGen's 10 s minimum (MLPerf rules: 600 s), INVALID'."""
    record = run.get("loadgen")
    if not record:
        return ""
    length = record.get("length", {})
    share = length.get("share_of_loadgen_minimum")
    verdict = record.get("summary", {}).get("result", "?")
    return (f"; {run.get('generator', 'MLPerf LoadGen')}: run {length.get('run_s', 0):.1f} s"
            + (f", {share:.0%} of LoadGen's {length.get('loadgen_default_min_duration_s', 0):g} s minimum" if share
               else "")
            + f" (MLPerf rules: {length.get('mlperf_rules_min_duration_s', 600):g} s), LoadGen says {verdict}")


def _server_line(run: dict[str, Any]) -> str:
    head = (
        f"server at {format_rate(run['qps'])} ({run['callers']} callers, "
        f"{run.get('completed', 0)} requests): "
    )
    latency = run.get("latency")
    if not latency:
        return head + f"no result ({run.get('reason', '')})"
    text = (
        head + f"offered {format_rate(run.get('offered_qps', run['qps']))}, achieved "
        f"{format_rate(run['achieved_qps'])}, latency from arrival p50 {_ms(latency['p50'])}"
        f" p90 {_ms(latency['p90'])} p99 {_ms(latency['p99'])} max {_ms(latency['max'])}, "
        f"queueing p50 {_ms(run.get('queue_delay_p50_s'))}"
    )
    if latency.get("insufficient"):
        text += f" (too few requests for {', '.join(latency['insufficient'])})"
    text += "; kept up" if run.get("kept_up") else f"; DID NOT KEEP UP: {run.get('reason', '')}"
    return text + _loadgen_note(run)


def _search_line(search: dict[str, Any]) -> str:
    goal = f"{search['percentile']} <= {format_duration(search['limit_s'])}"
    lower, upper = search.get("lower"), search.get("upper")
    trials = len(search.get("trials", []))
    if lower is None:
        bound = f"below {format_rate(upper)}" if upper else "unknown"
        return (
            f"max rate with {goal}: none proven ({bound}; {search['status']}, {trials} trials, stopped by "
            f"{search['stopped_by']}"
            + ("; raise --max-time" if search["stopped_by"] == "time budget" else "")
            + ")"
        )
    band = f"[{format_rate(lower)} – {format_rate(upper) if upper else '?'}]"
    return (
        f"max rate with {goal}: {format_rate(lower)} {band} ({search['status']}, {trials} trials, "
        f"stopped by {search['stopped_by']})"
    )


def load_lines(m: Measurement) -> list[str]:
    """One line per server run, rate search, offline run and batch size."""
    lines: list[str] = []
    scenario = m.extra.get("scenario") or {}
    lines.extend(_server_line(run) for run in scenario.get("server", []))
    lines.extend(_search_line(search) for search in scenario.get("max_qps", []))
    offline = scenario.get("offline")
    if offline:
        lines.append(
            f"offline: {format_rate(offline['throughput_per_s'])} ({offline['mode']}, batch "
            f"{offline['batch_size']}, {offline['callers']} caller(s))" + _loadgen_note(offline)
        )
    for row in m.extra.get("batch_sweep") or []:
        lines.append(
            f"batch {row['batch_size']}: p50 {_ms(row['latency_p50_s'])} per batch, "
            f"{format_rate(row['throughput_per_s'])}"
        )
    return lines
