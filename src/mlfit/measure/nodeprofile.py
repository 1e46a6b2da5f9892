"""Node-level timings from onnxruntime's profiler, at one or more thread counts (worker side).

The projection needs to know where the time goes on this host: per node, at the
thread counts it can run here, so it can scale compute-bound and memory-bound nodes
differently and extrapolate thread scaling. A few dozen runs per thread count keep
this cheap. The nodes are the ones onnxruntime really ran (after fusion and layout
changes), each with the shapes and byte counts the profiler reports.

Each thread count keeps two figures per node: the median (``node_us``) and the fastest fifth
(``node_us_low``, the 20th percentile). Another process taking a core lengthens some runs of a
node, never shortens one, and a node is short next to a scheduler time slice, so the fast
runs of each node are the ones nothing interrupted: the low figure is the node's uncontended
cost, which the projection uses (see ``mlfit.analysis.uncontended``).
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import re
import statistics
import time
from collections import defaultdict
from collections.abc import Callable
from typing import Any

from mlfit.measure.protocol import WorkerRequest
from mlfit.records import NodeProfile

WARMUP_RUNS = 3
MIN_RUNS = 5
MIN_RUNS_ONE_THREAD = 10  # the single-thread count carries the projection: enough runs for a 20th percentile
LOW_QUANTILE = 0.2
MAX_RUNS = 30
TIME_PER_THREAD_COUNT_S = 0.6  # each thread count's timed runs stop after about this long, at most
# The profile adds information beyond the timed loop only up to a point: each thread count gets this
# share of the timed loop's wall time (still running its minimum number of runs), so it no longer
# costs twice the measurement itself (2.2 s beside a 1 s loop before issue 22).
SHARE_OF_TIMED_LOOP = 0.125
MIN_TIME_PER_THREAD_COUNT_S = 0.05


def time_per_thread_count(timed_loop_s: float) -> float:
    """Each thread count's time box: a share of the timed loop, within [0.05 s, 0.6 s]."""
    share = SHARE_OF_TIMED_LOOP * max(0.0, timed_loop_s)
    return min(TIME_PER_THREAD_COUNT_S, max(MIN_TIME_PER_THREAD_COUNT_S, share))


def _shapes(entries: Any) -> tuple[list[list[int]], list[str]]:
    shapes: list[list[int]] = []
    dtypes: list[str] = []
    for entry in entries or []:
        for dtype, shape in dict(entry).items():
            shapes.append([int(d) for d in shape])
            dtypes.append(str(dtype))
    return shapes, dtypes


def _session(request: WorkerRequest, threads: int, prefix: str) -> Any:
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.enable_cpu_mem_arena = request.enable_arena
    so.log_severity_level = 3
    so.enable_profiling = True
    so.profile_file_prefix = prefix
    for library in request.custom_op_libraries:
        so.register_custom_ops_library(library)
    provider = request.execution_provider
    if provider not in ort.get_available_providers():
        provider = "CPUExecutionProvider"
    providers = [provider] if provider == "CPUExecutionProvider" else [provider, "CPUExecutionProvider"]
    return ort.InferenceSession(request.model_path, sess_options=so, providers=providers)


# One event per line, as onnxruntime's profiler writes them: the fields before "args" are read
# without a JSON parse (a trace holds a few hundred events per run; parsing them all took 0.07 s
# of the profile's 0.3 s), "args" only for a node's first event. A line that does not read this
# way sends the whole trace through the JSON parser instead.
_EVENT = re.compile(r'^\{"cat" : "(?P<cat>[^"]*)",.*?"dur" :(?P<dur>\d+),"ts" :(?P<ts>\d+),'
                    r'"ph" : "X","name" :"(?P<name>[^"\\]*)","args" : ')


def _events(text: str) -> list[dict[str, Any]]:
    """The trace's node kernel and ``model_run`` events (as the JSON parser gives them; a node's
    ``args`` only on its first event), or [] where a line does not read as expected."""
    out: list[dict[str, Any]] = []
    seen: set[str] = set()
    for line in text.splitlines()[1:]:
        match = _EVENT.match(line)
        if match is None:
            if line.strip() not in ("", "]"):
                return []
            continue
        cat, name = match["cat"], match["name"]
        if name != "model_run" and not (cat == "Node" and name.endswith("_kernel_time")):
            continue
        event: dict[str, Any] = {"cat": cat, "name": name, "dur": int(match["dur"]), "ts": int(match["ts"])}
        if cat == "Node" and name not in seen:
            seen.add(name)
            event["args"] = json.loads(line.rstrip().rstrip(","))["args"]
        out.append(event)
    return out


def read_trace(trace_path: str) -> list[dict[str, Any]]:
    """The events of an onnxruntime profile trace that :func:`_parse` reads."""
    with open(trace_path, encoding="utf-8") as fh:
        text = fh.read()
    events = _events(text) if text.startswith("[") else []
    return events or list(json.loads(text))


def _parse(
    trace_path: str, skip_runs: int
) -> tuple[list[float], dict[str, list[float]], dict[str, dict[str, Any]]]:
    """Per timed run: total µs; per node: µs per timed run; per node: static facts."""
    events = read_trace(trace_path)
    runs = sorted((e for e in events if e.get("name") == "model_run"), key=lambda e: e["ts"])[skip_runs:]
    windows = [(e["ts"], e["ts"] + e["dur"]) for e in runs]
    per_node: dict[str, list[float]] = defaultdict(lambda: [0.0] * len(windows))
    info: dict[str, dict[str, Any]] = {}
    first_args: dict[str, Any] = {}  # a node's facts, from its first event (a warm-up run's, usually)
    for e in events:
        if "args" in e:
            first_args.setdefault(str(e.get("name", "")), e["args"])
    run_index = 0
    for event in sorted(
        (e for e in events if e.get("cat") == "Node" and str(e.get("name", "")).endswith("_kernel_time")),
        key=lambda e: e["ts"],
    ):
        ts = event["ts"]
        while run_index < len(windows) and ts > windows[run_index][1]:
            run_index += 1
        if run_index >= len(windows):
            break
        if ts < windows[run_index][0]:
            continue  # a warm-up run
        name = str(event["name"])[: -len("_kernel_time")]
        per_node[name][run_index] += float(event["dur"])
        if name not in info:
            args = first_args.get(str(event["name"]), {})
            in_shapes, in_dtypes = _shapes(args.get("input_type_shape"))
            out_shapes, _ = _shapes(args.get("output_type_shape"))
            info[name] = {
                "op": str(args.get("op_name", "")),
                "provider": str(args.get("provider", "")),
                "inputs": in_shapes,
                "outputs": out_shapes,
                "dtypes": sorted(set(in_dtypes)),
                "activation_bytes": int(args.get("activation_size", 0) or 0),
                "param_bytes": int(args.get("parameter_size", 0) or 0),
                "output_bytes": int(args.get("output_size", 0) or 0),
            }
    return [float(e["dur"]) for e in runs], dict(per_node), info


def _kernels(model_path: str, providers: list[str]) -> dict[str, Any]:
    """Ask the installed onnxruntime which of the model's ops have a kernel, per provider built in."""
    from onnxruntime.capi import onnxruntime_pybind11_state as C

    from mlfit.onnxpb import load_model

    model = load_model(model_path)  # the graph only (no external data), without importing onnx
    opsets = {o.domain or "": int(o.version) for o in model.opset_import}
    ops = {(n.domain or "", n.op_type) for n in model.graph.node}
    defs: dict[tuple[str, str, str], list[tuple[int, int]]] = defaultdict(list)
    for k in C.get_all_opkernel_def():
        defs[(k.provider, k.domain or "", k.op_name)].append(tuple(k.version_range))
    out: dict[str, Any] = {}
    providers = [p for p in providers if any(key[0] == p for key in defs)]
    for provider in providers:
        missing = []
        for domain, op in sorted(ops):
            version = opsets.get(domain, 0)
            ranges = defs.get((provider, domain, op), [])
            if not any(lo <= version <= hi or (version == 0 and lo >= 0) for lo, hi in ranges):
                missing.append(f"{domain}::{op}" if domain else op)
        out[provider] = missing
    return {"providers": providers, "missing": out}


def _low(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[max(0, math.ceil(LOW_QUANTILE * len(ordered)) - 1)]


def profile_nodes(
    request: WorkerRequest, feed: Any, thread_counts: list[int],
    between: Callable[[], None] | None = None, time_per_count_s: float = TIME_PER_THREAD_COUNT_S,
) -> NodeProfile:
    """Profile every node at each thread count. Never raises: a profile that cannot be taken
    carries its ``error`` and the projection falls back.
    ``between`` runs after each timed single-thread run (the interleaved reference kernel);
    ``time_per_count_s`` bounds each thread count's runs once their minimum number ran."""
    try:
        return NodeProfile.model_validate(_profile_nodes(request, feed, thread_counts, between, time_per_count_s))
    except Exception as exc:  # the measurement already succeeded; do not lose it to the profiler
        text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        return NodeProfile(error=f"{type(exc).__name__}: {text}")


def _profile_nodes(
    request: WorkerRequest, feed: Any, thread_counts: list[int],
    between: Callable[[], None] | None = None, time_per_count_s: float = TIME_PER_THREAD_COUNT_S,
) -> dict[str, Any]:
    """Profile every node at each thread count, as the dict :class:`NodeProfile` validates."""
    import onnxruntime as ort

    counts = sorted({max(1, int(t)) for t in (thread_counts or [request.threads])})
    result: dict[str, Any] = {"runtime_version": ort.__version__, "by_threads": {}, "nodes": {}}
    for threads in counts:
        prefix = os.path.join(request.scratch_dir, f"ort_nodes_t{threads}")
        session = _session(request, threads, prefix)
        for _ in range(WARMUP_RUNS):
            session.run(None, feed)
        runs = 0
        start = time.perf_counter()
        min_runs = MIN_RUNS_ONE_THREAD if threads == 1 else MIN_RUNS
        while runs < MAX_RUNS and (runs < min_runs or time.perf_counter() - start < time_per_count_s):
            session.run(None, feed)
            runs += 1
            if threads == 1 and between is not None:
                between()
        trace = session.end_profiling()
        try:
            totals, per_node, info = _parse(trace, WARMUP_RUNS)
        finally:
            with contextlib.suppress(OSError):
                os.unlink(trace)
        for name, facts in info.items():
            result["nodes"].setdefault(name, facts)
        node_us = {name: statistics.median(times) for name, times in per_node.items()}
        node_low = {name: _low(times) for name, times in per_node.items()}
        per_run_sum = [sum(times[i] for times in per_node.values()) for i in range(len(totals))]
        overheads = [t - s for t, s in zip(totals, per_run_sum, strict=True)]
        halves = [
            sum(_low(times[start::2]) for times in per_node.values() if times[start::2]) for start in (0, 1)
        ] if len(totals) >= 4 else []
        result["by_threads"][str(threads)] = {
            "nodes_us_low": sum(node_low.values()),
            # the same figure from the even and the odd runs: how reproducible it is within this run
            "nodes_us_low_halves": halves,
            "overhead_us_low": _low(overheads) if overheads else 0.0,
            "node_us_low": node_low,
            "runs": len(totals),
            "run_us": statistics.median(totals) if totals else 0.0,
            "nodes_us": sum(node_us.values()),
            # executor time outside any kernel: what a tiny graph costs per call, plus scheduling
            "overhead_us": statistics.median([t - s for t, s in zip(totals, per_run_sum, strict=True)])
            if totals
            else 0.0,
            "node_us": node_us,
        }
    try:
        result["kernels"] = _kernels(request.model_path, list(ort.get_available_providers()))
    except Exception as exc:  # the kernel registry is an internal API: never let it sink the profile
        result["kernels"] = {"error": f"{type(exc).__name__}: {exc}"}
    return result
