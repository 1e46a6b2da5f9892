"""Checks for serving under load: latency at a request rate, the rate a target sustains, and
the best batch size for a throughput budget. Pure: reads ``Measurement.scenario`` and ``.batch_sweep`` only.

Verdicts follow the three-way rule with the 95 % interval of each percentile (order
statistics): PASS when the whole interval fits, FAIL when none of it does, else INCONCLUSIVE.
A system that could not keep up with the offered rate FAILs whatever its latencies.

These checks judge figures measured where the target's hardware is (a worker embodying the
target, or an emulation inside its container limits). Load figures measured on a host that is
not the target are never held against the target's budgets: :func:`load_not_judged` names what
is left out of such a target's verdict, and why (queueing at a rate depends on the machine's
service times, which are not projected).
"""

from __future__ import annotations

from typing import Any

from mlfit.catalog.loader import Target
from mlfit.catalog.schema import MIN_SAMPLES, Percentile
from mlfit.catalog.units import format_duration, format_rate
from mlfit.records import ServerRun
from mlfit.result import Check, Measurement, Provenance, Verdict


def _rate_key(rate: float) -> str:
    return f"{rate:g}/s"


def _server_runs(m: Measurement) -> dict[str, ServerRun]:
    return {_rate_key(r.qps): r for r in (m.scenario.server if m.scenario is not None else [])}


def latency_at_rate_check(run: ServerRun | None, percentile: Percentile, limit: float, rate: float,
                          provenance: Provenance, method: str) -> Check:
    """One "pNN <= X at Y/s" check from a server run (None when the run is missing)."""
    metric = f"load.{percentile.value}@{_rate_key(rate)}"
    budget = f"<= {format_duration(limit)} at {format_rate(rate)}"
    base: dict[str, Any] = dict(metric=metric, budget=budget, limit=limit, unit="s", provenance=provenance,
                method=f"server scenario, latency from scheduled arrival; {method}")
    if run is None:
        return Check(**base, verdict=Verdict.INCONCLUSIVE,
                     reason=f"not measured at {format_rate(rate)}: run with --scenario server --qps {rate:g}")
    latency = run.latency
    value = latency.get(percentile.value) if latency is not None else None
    if not run.kept_up:
        return Check(**base, value=value, verdict=Verdict.FAIL,
                     reason=f"could not keep up with {format_rate(rate)}: {run.reason}")
    if latency is None or value is None or percentile.value not in latency.ci95:
        return Check(**base, verdict=Verdict.INCONCLUSIVE,
                     reason=f"insufficient samples at {format_rate(rate)}: {latency.n if latency else 0} requests, "
                            f"{percentile.value} needs {MIN_SAMPLES[percentile]}; raise --max-time")
    low, high = latency.ci95[percentile.value]
    if high <= limit:
        verdict, reason = Verdict.PASS, ""
    elif low > limit:
        verdict, reason = Verdict.FAIL, ""
    else:
        verdict = Verdict.INCONCLUSIVE
        reason = (f"the 95% interval [{format_duration(low)}, {format_duration(high)}] straddles the limit; "
                  "a longer run (--max-time) narrows it")
    return Check(**base, value=value, lower=low, upper=high, verdict=verdict,
                 margin=(limit - value) / limit, reason=reason)


def _sustains_check(target: Target, m: Measurement, runs: dict[str, ServerRun], provenance: Provenance,
                    method: str) -> Check | None:
    wanted = target.profile.budgets.sustains
    if wanted is None:
        return None
    base: dict[str, Any] = dict(metric="load.sustains", budget=f">= {format_rate(wanted)}", limit=wanted,
                                unit="/s", provenance=provenance)
    goals = _target_goals(target)
    searches = [s for s in (m.scenario.max_qps if m.scenario is not None else [])
                if (Percentile(s.percentile), s.limit_s) in goals]
    if searches:
        # The strictest of the target's goals decides: the lowest bounds of all searches.
        lower = min((s.lower or 0.0) for s in searches)
        uppers = [s.upper for s in searches if s.upper is not None]
        upper = min(uppers) if uppers else None
        if lower >= wanted:
            verdict, reason = Verdict.PASS, ""
        elif upper is not None and upper <= wanted:
            verdict, reason = Verdict.FAIL, f"the latency budget fails from {format_rate(upper)} on"
        else:
            verdict = Verdict.INCONCLUSIVE
            bracket = format_rate(upper) if upper else "an unknown rate"
            reason = (f"the search proved {format_rate(lower)} and bracketed the limit at {bracket}; "
                      f"{format_rate(wanted)} lies between")
        return Check(**base, value=lower or None, lower=lower, upper=upper, verdict=verdict,
                     method=f"highest rate within the latency budget (--find-max-qps); {method}",
                     margin=(lower - wanted) / wanted, reason=reason)
    run = runs.get(_rate_key(wanted))
    if run is None:
        return Check(**base, verdict=Verdict.INCONCLUSIVE, method=method,
                     reason=f"not measured at {format_rate(wanted)}: run with --qps {wanted:g} or "
                            "--find-max-qps")
    achieved = run.achieved_qps
    kept = run.kept_up
    return Check(**base, value=achieved, lower=achieved, upper=achieved,
                 verdict=Verdict.PASS if kept else Verdict.FAIL,
                 method=f"server scenario at {format_rate(wanted)}, {run.callers} callers; {method}",
                 margin=(achieved - wanted) / wanted,
                 reason="" if kept else f"could not keep up: {run.reason}")


def _target_goals(target: Target) -> set[tuple[Percentile, float]]:
    budgets = target.profile.budgets
    goals = {(p, v) for load in budgets.load_latency for p, v in load.limits().items()}
    goals |= set(budgets.latency.items())
    return goals


def best_batch_check(target: Target, m: Measurement, provenance: Provenance, method: str) -> Check | None:
    """The smallest batch (lowest latency) whose throughput meets the profile's throughput budget."""
    rows = m.batch_sweep
    wanted = target.profile.budgets.throughput
    if not rows or wanted is None:
        return None
    sizes = ", ".join(str(r.batch_size) for r in rows)
    base: dict[str, Any] = dict(metric="batch.best", budget=f">= {format_rate(wanted)}", limit=wanted,
                                unit="/s", provenance=provenance, method=f"batch sweep {sizes}; {method}")
    meeting = [r for r in rows if r.throughput_per_s >= wanted]
    if meeting:
        best = min(meeting, key=lambda r: r.batch_size)
        p50 = f" ({format_duration(best.latency_p50_s)} p50 per batch)" if best.latency_p50_s is not None else ""
        return Check(**base, value=best.throughput_per_s, verdict=Verdict.PASS,
                     margin=(best.throughput_per_s - wanted) / wanted,
                     reason=f"batch {best.batch_size} is the smallest batch that meets {format_rate(wanted)}{p50}")
    top = max(rows, key=lambda r: r.throughput_per_s)
    return Check(**base, value=top.throughput_per_s, verdict=Verdict.FAIL,
                 margin=(top.throughput_per_s - wanted) / wanted,
                 reason=f"no batch size tried meets {format_rate(wanted)}; the best is batch "
                        f"{top.batch_size} at {format_rate(top.throughput_per_s)}")


def load_checks(target: Target, m: Measurement, provenance: Provenance, method: str) -> list[Check]:
    """Every load check for ``target``: budgets in the profile, and its latency budgets at --qps rates."""
    runs = _server_runs(m)
    budgets = target.profile.budgets
    checks: list[Check] = []
    covered: set[tuple[str, str]] = set()
    for load in budgets.load_latency:
        for percentile, limit in load.limits().items():
            checks.append(latency_at_rate_check(runs.get(_rate_key(load.at)), percentile, limit, load.at,
                                                provenance, method))
            covered.add((percentile.value, _rate_key(load.at)))
    # The profile's latency budget is what users feel in deployment, i.e. under load: hold the
    # server runs the user asked for (--qps) to it as well.
    for key, run in runs.items():
        for percentile, limit in budgets.latency.items():
            if (percentile.value, key) not in covered:
                checks.append(latency_at_rate_check(run, percentile, limit, run.qps, provenance,
                                                    method))
    for check in (_sustains_check(target, m, runs, provenance, method),
                  best_batch_check(target, m, provenance, method)):
        if check is not None:
            checks.append(check)
    return checks


def load_not_judged(target: Target, m: Measurement) -> list[str]:
    """Notes for a target judged from another host's figures: the load budgets, --qps runs and
    batch sweep that are left out of its verdict, with the reason. Empty when there are none."""
    budgets = target.profile.budgets
    items = [f"{p.value} <= {format_duration(v)} at {format_rate(load.at)}"
             for load in budgets.load_latency for p, v in load.limits().items()]
    if budgets.sustains is not None:
        items.append(f"sustains >= {format_rate(budgets.sustains)}")
    runs = _server_runs(m)
    asked = [key for key, run in runs.items() if run.qps not in {load.at for load in budgets.load_latency}]
    if asked and budgets.latency:
        items.append(f"the latency budget at {', '.join(asked)}")
    if m.batch_sweep and budgets.throughput is not None:
        items.append(f"the best batch for throughput >= {format_rate(budgets.throughput)} (--batch-sizes)")
    if not items:
        return []
    return [f"not judged on {target.hardware.name}: {'; '.join(items)}. Load scenarios and batch sweeps ran on "
            "this host, which is not the target, and a host figure is never held against a target's budget "
            "(they are shown as this host's figures). To judge them, measure on the target: `mlfit worker "
            f"SCHEDULER --target {target.name}` and `mlfit check --cluster`"]
