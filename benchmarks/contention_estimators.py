"""Which figure of a model does contention not move? Candidates side by side, quiet and loaded.

    python benchmarks/contention_estimators.py [--quick] [--out FILE]

The data behind mlfit.analysis.uncontended (docs/contention.md). For the example model and a
larger CNN, at 1 and 2 threads, in one process: the timed loop's wall p50 and p95, its fastest
5%, the CPU time per call (process clock), and onnxruntime's node profile summed two ways (each
node's median, each node's fastest fifth), first on the machine as it is ("quiet"), then with two
`yes >/dev/null` processes on the CPUs ("loaded"), then quiet again. The table gives each figure
and its loaded/quiet ratio: the one that stays near 1.00 is the model's uncontended cost.
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import benchlib as bl

CONDITIONS = ("quiet", "loaded", "quiet again")


def _session(model: Any, threads: int, profile_prefix: str | None = None) -> Any:
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.log_severity_level = 3
    if profile_prefix:
        so.enable_profiling = True
        so.profile_file_prefix = profile_prefix
    return ort.InferenceSession(model.SerializeToString(), sess_options=so, providers=["CPUExecutionProvider"])


def _q(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


def _figures(model: Any, feed: dict[str, Any], threads: int, seconds: float, folder: str) -> dict[str, float]:
    from mlfit.measure.nodeprofile import _low, _parse

    session = _session(model, threads)
    for _ in range(5):
        session.run(None, feed)
    wall: list[float] = []
    cpu: list[float] = []
    end = time.perf_counter() + seconds
    while time.perf_counter() < end or len(wall) < 20:
        c0 = time.process_time()
        t0 = time.perf_counter()
        session.run(None, feed)
        t1 = time.perf_counter()
        cpu.append(time.process_time() - c0)
        wall.append(t1 - t0)
    profiled = _session(model, threads, os.path.join(folder, f"p{threads}"))
    for _ in range(3):
        profiled.run(None, feed)
    for _ in range(15):
        profiled.run(None, feed)
    trace = profiled.end_profiling()
    _, per_node, _ = _parse(trace, 3)
    os.unlink(trace)
    return {
        "wall p50": _q(wall, 0.5),
        "wall p95": _q(wall, 0.95),
        "wall fastest 5%": _q(wall, 0.05),
        "CPU time per call (median)": statistics.median(cpu),
        "node profile, medians summed": sum(statistics.median(t) for t in per_node.values()) / 1e6,
        "node profile, fastest fifth summed": sum(_low(t) for t in per_node.values()) / 1e6,
    }


def body(quick: bool) -> str:
    import numpy as np

    from mlfit.zoo import builders

    models = {"example": builders.example_model()}
    if not quick:
        models["MobileNetV2 1.0, 224"] = builders.mobilenet_v2(resolution=224, batch=1)
    seconds = 1.0 if quick else 3.0
    table: dict[tuple[str, int, str], dict[str, float]] = {}
    loads: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="mlfit-bench-") as folder:
        for condition in CONDITIONS:
            hogs = [subprocess.Popen(["yes"], stdout=subprocess.DEVNULL) for _ in range(2)] \
                if condition == "loaded" else []
            try:
                time.sleep(0.3)
                loads[condition] = bl.loadavg()[0]
                for name, model in models.items():
                    first = model.graph.input[0]
                    shape = [d.dim_value or 1 for d in first.type.tensor_type.shape.dim]
                    feed = {first.name: np.random.default_rng(0).standard_normal(shape).astype(np.float32)}
                    for threads in (1, 2):
                        table[(name, threads, condition)] = _figures(model, feed, threads, seconds, folder)
            finally:
                for hog in hogs:
                    hog.kill()
                    hog.wait()
    rows = []
    for (name, threads, condition), figures in table.items():
        if condition != "loaded":
            continue
        quiet = table[(name, threads, "quiet")]
        again = table[(name, threads, "quiet again")]
        for figure, value in figures.items():
            rows.append([name, threads, figure, bl.fmt_time(quiet[figure]), bl.fmt_time(value),
                         bl.fmt_time(again[figure]), f"{value / quiet[figure]:.2f}",
                         f"{again[figure] / quiet[figure]:.2f}"])
    lines = [
        "Loaded: two `yes >/dev/null` processes. Load average (1 min) at the start of each condition: "
        + ", ".join(f"{c} {v:.2f}" for c, v in loads.items()) + f"; {bl.machine_line()}.",
        "",
        bl.table(["model", "threads", "figure", "quiet", "loaded", "quiet again", "loaded/quiet",
                  "again/quiet"], rows),
    ]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", default=bl.quick_from_env())
    parser.add_argument("--out", type=Path)
    ns = parser.parse_args()
    text = "## Contention: candidate figures, quiet and loaded\n\n" + body(ns.quick) + "\n"
    sys.stdout.write(text)
    if ns.out:
        ns.out.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
