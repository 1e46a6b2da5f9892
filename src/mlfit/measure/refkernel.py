"""The reference kernel: the host calibration's single-thread GEMM, timed inside the worker
between the model's own runs, so it meets the same contention the model meets.

The host calibration (``mlfit.analysis.calibrate``) is measured once and cached; a busy
neighbour (another process, another guest on the same physical machine) may slow this host
while the model is measured and not while it was calibrated, or the other way round. Timing the
same kernel now, under the model's conditions, gives the host's speed at that moment; the
projection scales the cached calibration by it, so a busy host slows both sides of the
host-to-target ratio alike. Built on onnx's protobuf messages and run through onnxruntime; worker side.
"""

from __future__ import annotations

import time
from typing import Any

from mlfit.result import ReferenceKernel

GEMM_N = 512  # the calibration's GEMM size: the figures are comparable one to one
NAME = f"onnxruntime MatMul {GEMM_N}x{GEMM_N} fp32, 1 thread"


def graph(op_nodes: list[Any], inputs: list[Any], output: Any, inits: list[Any]) -> Any:
    """A one-graph ONNX model at opset 17 (the calibration kernels are built with this). Built
    on the bare protobuf messages (:mod:`mlfit.onnxpb`): the worker builds it for every run, and
    ``import onnx`` would cost it 0.6 s of CPU."""
    from mlfit.onnxpb import proto

    model = proto().ModelProto()
    model.ir_version = 8
    opset = model.opset_import.add()
    opset.domain, opset.version = "", 17
    model.graph.name = "calibration"
    model.graph.node.extend(op_nodes)
    model.graph.input.extend(inputs)
    model.graph.output.append(output)
    model.graph.initializer.extend(inits)
    return model


def gemm_model(n: int) -> Any:
    """``x[n, n] @ w[n, n]`` with a fixed random ``w``."""
    import numpy as np

    from mlfit.onnxpb import proto, tensor, value_info

    node = proto().NodeProto(op_type="MatMul", input=["x", "w"], output=["y"])
    w = tensor("w", np.random.default_rng(0).standard_normal((n, n)).astype(np.float32))
    return graph([node], [value_info("x", proto().TensorProto.FLOAT, [n, n])],
                 value_info("y", proto().TensorProto.FLOAT, [n, n]), [w])


FAST_FRACTION = 10  # the fastest tenth of the calls


def fast_rate(times_s: list[float], work: float) -> float:
    """Work per second of the fastest tenth of the calls: on a shared machine the fast calls
    are the ones nothing else interrupted (the calibration's own statistic). A tenth, not a
    third: with two busy processes on both cores of a 2-core VM a 2-thread GEMM's fastest third
    was already 8% slow, its fastest tenth within 3% of the quiet figure."""
    fast = sorted(times_s)[: max(1, len(times_s) // FAST_FRACTION)]
    return work / (sum(fast) / len(fast))


class ReferenceTimer:
    """Runs the reference kernel a few calls at a time, between the model's runs."""

    def __init__(self) -> None:
        import numpy as np
        import onnxruntime as ort

        so = ort.SessionOptions()
        so.intra_op_num_threads = 1
        so.inter_op_num_threads = 1
        so.log_severity_level = 3
        self._session = ort.InferenceSession(gemm_model(GEMM_N).SerializeToString(), sess_options=so,
                                             providers=["CPUExecutionProvider"])
        self._feeds = {"x": np.random.default_rng(1).standard_normal((GEMM_N, GEMM_N)).astype(np.float32)}
        self._session.run(None, self._feeds)
        self.samples_ns: list[int] = []

    def tick(self, calls: int = 1) -> None:
        # The calling thread's CPU time: a single-thread kernel runs on it, and CPU time leaves out
        # the time another process held the core (as the short node times the projection uses
        # do), while keeping what slows the core itself (a neighbour's cache and memory traffic).
        clock = time.thread_time_ns
        for _ in range(calls):
            t0 = clock()
            self._session.run(None, self._feeds)
            self.samples_ns.append(clock() - t0)

    def result(self) -> ReferenceKernel | None:
        samples = [s for s in self.samples_ns if s > 0]
        if len(samples) < 3:
            return None
        flops = 2.0 * GEMM_N**3
        return ReferenceKernel(name=NAME, flops=flops, samples_ns=list(self.samples_ns),
                               flops_per_s=fast_rate([s / 1e9 for s in samples], flops))
