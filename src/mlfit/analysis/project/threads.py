"""How a node's host time changes with the thread count: measured, Amdahl-fitted over two
counts, or carried from one count by the calibrated thread speed-up weighted by the node's FLOPs."""

from __future__ import annotations

import math

from mlfit.analysis.calibrate import per_thread
from mlfit.analysis.costs import op_cost
from mlfit.records import Calibration, NodeProfile, ThreadProfile


def _amdahl(times: dict[int, float], threads: int) -> float:
    """Time at ``threads`` from the two largest measured counts: t = s + p / threads."""
    (t1, y1), (t2, y2) = sorted(times.items())[-2:]
    p = (y1 - y2) / (1 / t1 - 1 / t2)
    s = y1 - p / t1
    if p <= 0:  # no speed-up measured: the node does not parallelise
        return min(y1, y2)
    if s < 0:
        s, p = 0.0, y2 * t2
    return s + p / threads


# How much of the calibrated GEMM thread speed-up a node gets, by its FLOPs: onnxruntime
# splits work by a cost model, so nodes under ~0.5 MFLOP gain nothing and even lose to the
# thread pool's synchronisation (a negative weight), and nodes over ~8 MFLOP scale like a
# large GEMM. A log-linear ramp between; fitted to per-node 1- and 2-thread timings of the
# zoo models (conv nets, MLP, transformer) on an x86 server (see docs/projection.md).
_PARALLEL_RAMP = (5.7, 1.2, -0.3)  # log10(FLOPs) where the weight crosses 0, decades to reach 1, floor


def parallel_weight(flops: float) -> float:
    start, span, floor = _PARALLEL_RAMP
    if flops <= 0:
        return floor
    return max(floor, min(1.0, (math.log10(flops) - start) / span))


# Which calibrated figure's thread speed-up a node's full (large-node) speed-up follows.
# "gemm" (the default): every node follows the 512x512 MatMul. "per-class" (a candidate,
# evaluated side by side by benchmarks/projection_accuracy.py, no constant fitted): Conv
# nodes follow the calibrated 3x3 convolution, MatMul/Gemm the GEMM, every other node the
# triad bandwidth, since those are the figures the calibration measures for each class.
THREAD_MODELS = ("gemm", "per-class")


def _scaling_figure(cal: Calibration, op: str, model: str) -> dict[str, float]:
    if model == "per-class":
        if "Conv" in op and cal.conv_flops:
            return dict(cal.conv_flops)
        if not ("MatMul" in op or "Gemm" in op):
            return dict(cal.bandwidth)
    return dict(cal.gemm_flops)


def thread_speedup(cal: Calibration, threads: int, flops: float, op: str = "", model: str = "gemm") -> float:
    """Speed-up of a node of ``flops`` (op type ``op``) at ``threads`` over one thread on this host."""
    figure = _scaling_figure(cal, op, model)
    full = min(float(threads), per_thread(figure, threads) / per_thread(figure, 1))
    return max(0.5, 1 + (full - 1) * parallel_weight(flops))


def node_time_at(
    times: dict[int, float], threads: int, cal: Calibration, flops: float, op: str, model: str
) -> float:
    if threads in times:
        return times[threads]
    if len(times) >= 2:
        return _amdahl(times, threads)
    ((t0, y0),) = times.items()
    return y0 * thread_speedup(cal, t0, flops, op, model) / thread_speedup(cal, threads, flops, op, model)


def host_total_at(
    node_profile: NodeProfile, one: ThreadProfile, threads: int, cal: Calibration, thread_model: str
) -> float:
    """The host's uncontended run (µs) at ``threads``: each node's single-thread figure carried by the
    calibrated thread speed-up, the same way the target's sum is built, plus the executor's overhead."""
    total = 0.0
    nodes = node_profile.nodes
    for name, t in one.node_us.items():
        facts = nodes.get(name)
        if facts is None:
            continue
        flops = op_cost(facts.op, facts.inputs, facts.outputs)[0]
        total += node_time_at({1: float(t)}, threads, cal, flops, facts.op, thread_model)
    return total + max(0.0, float(one.overhead_us))
