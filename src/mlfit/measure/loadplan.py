"""Parent side of the load scenarios: turn flags and profile budgets into what the worker runs."""

from __future__ import annotations

import math
from collections.abc import Sequence

from mlfit.catalog.loader import Target
from mlfit.errors import ConfigError
from mlfit.measure.scenarios import MAX_SEARCH_RATE, LatencyGoal, Scenario, ScenarioSettings


def parse_scenario(name: str) -> Scenario:
    try:
        return Scenario(name)
    except ValueError:
        raise ConfigError(f"unknown --scenario '{name}'",
                          f"use one of: {', '.join(s.value for s in Scenario)}") from None


def parse_batch_sizes(text: str | None) -> tuple[int, ...]:
    """'1,2,4,8' -> (1, 2, 4, 8); every size a whole number from 1 to 4096."""
    if not text:
        return ()
    sizes: list[int] = []
    for part in text.split(","):
        part = part.strip()
        if not part.isdigit() or not 1 <= int(part) <= 4096:
            raise ConfigError(f"--batch-sizes '{text}': '{part}' is not a batch size from 1 to 4096",
                              "give comma-separated whole numbers, e.g. --batch-sizes 1,2,4,8")
        sizes.append(int(part))
    return tuple(sorted(set(sizes)))


def latency_goals(targets: Sequence[Target]) -> list[LatencyGoal]:
    """Every distinct latency percentile limit the targets set, load budgets first."""
    goals: list[LatencyGoal] = []
    for target in targets:
        budgets = target.profile.budgets
        for load in budgets.load_latency:
            goals.extend(LatencyGoal(percentile=p, limit_s=v) for p, v in load.limits().items())
        goals.extend(LatencyGoal(percentile=p, limit_s=v) for p, v in budgets.latency.items())
    unique: list[LatencyGoal] = []
    for goal in goals:
        if goal not in unique:
            unique.append(goal)
    return unique


def _bounded(rate: float, what: str) -> float:
    """A request rate the worker can schedule: at most MAX_SEARCH_RATE (a thread pool in one
    process issues a few thousand requests a second; beyond the bound nothing is learned)."""
    if rate > MAX_SEARCH_RATE:
        raise ConfigError(f"{what}: a request rate above {MAX_SEARCH_RATE:.0f}/s cannot be generated here",
                          f"use a rate up to {MAX_SEARCH_RATE:.0f}/s, or --find-max-qps to find the highest one")
    return rate


def plan_load(targets: Sequence[Target], scenario: str = "single-stream", qps: Sequence[float] = (),
              find_max_qps: bool = False, batch_sizes: Sequence[int] = (), callers: int = 4,
              max_goals: int = 3) -> ScenarioSettings:
    """What the worker must run: the user's flags, plus the rates the profiles' load budgets name.

    A profile that budgets "p99 <= X at Y/s" or "sustains >= Y/s" gets a server run at Y
    (unless a rate search answers "sustains" already), so its checks are never left unmeasured.
    """
    chosen = parse_scenario(scenario)
    rates = [float(q) for q in qps]
    for rate in rates:
        if not math.isfinite(rate) or rate <= 0:
            raise ConfigError(f"--qps {rate:g}: a request rate must be greater than zero and finite")
        _bounded(rate, f"--qps {rate:g}")
    for target in targets:
        budgets = target.profile.budgets
        for load in budgets.load_latency:
            rates.append(_bounded(load.at, f"{target.name}: load_latency at {load.at:g}/s"))
        if budgets.sustains is not None and not find_max_qps:
            rates.append(_bounded(budgets.sustains, f"{target.name}: sustains {budgets.sustains:g}/s"))
    if chosen is Scenario.SERVER and not rates and not find_max_qps:
        raise ConfigError("--scenario server needs a request rate",
                          "add --qps RATE (e.g. --qps 50), or --find-max-qps to search for the highest rate")
    if rates and chosen is Scenario.SINGLE_STREAM:
        chosen = Scenario.SERVER  # --qps (or a load budget) means serving at that rate
    goals: list[LatencyGoal] = []
    if find_max_qps:
        goals = latency_goals(targets)[:max_goals]
        if not goals:
            raise ConfigError("--find-max-qps needs a latency budget to search against",
                              "use a target whose profile sets latency (e.g. {p99: 20 ms}) or load_latency")
        if chosen is Scenario.SINGLE_STREAM:
            chosen = Scenario.SERVER
    return ScenarioSettings(scenario=chosen, server_rates=sorted(set(rates)), callers=callers,
                            find_max_qps=goals, batch_sizes=list(batch_sizes))
