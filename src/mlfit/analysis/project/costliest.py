"""Where the time goes, as the reporters show it: per op type on this host (the node profile),
and the 'costliest ...' tables a result's analysis or extras carry. Pure: reads records only."""

from __future__ import annotations

from typing import Any

from mlfit.records import NodeProfile
from mlfit.result import RunResult


def host_op_times(profile: NodeProfile | None, threads: int | None) -> tuple[dict[str, float], dict[str, int], str]:
    """Per op type, the time onnxruntime's node profile measured on this host (seconds per inference,
    each node's fastest fifth) at ``threads`` (else the most threads profiled), with node counts and
    a label; empty without a profile."""
    if profile is None or not profile.by_threads:
        return {}, {}, ""
    by_threads = profile.by_threads
    key = str(threads) if threads is not None and str(threads) in by_threads else max(
        by_threads, key=lambda k: int(k) if k.isdigit() else 0)
    times: dict[str, float] = {}
    counts: dict[str, int] = {}
    for name, us in by_threads[key].node_us_low.items():
        facts = profile.nodes.get(name)
        op = facts.op if facts is not None and facts.op else name
        times[op] = times.get(op, 0.0) + us / 1e6
        counts[op] = counts.get(op, 0) + 1
    return times, counts, f"{key} thread(s)"


def find_costliest(result: RunResult) -> list[tuple[str, Any]]:
    """Every 'costliest ...' table in the result's analysis, where present."""
    found: list[tuple[str, Any]] = []
    sources = [("analysis", result.analysis or {})]
    for origin, data in sources:
        stack: list[tuple[str, Any]] = [(origin, data)]
        depth = {origin: 0}
        while stack:
            path, node = stack.pop(0)
            if not isinstance(node, dict):
                continue
            for key, value in node.items():
                child = f"{path}.{key}"
                if "costliest" in str(key).lower() or "hotspot" in str(key).lower():
                    found.append((child, value))
                elif isinstance(value, dict) and depth[path] < 2:
                    depth[child] = depth[path] + 1
                    stack.append((child, value))
    return found
