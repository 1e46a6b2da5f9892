"""GPU targets without a GPU here (method "roofline"): every node of the static graph at the
GPU's dense peak and bandwidth, a launch cost per kernel, and the copies of inputs and
outputs over the host link."""

from __future__ import annotations

from typing import Any

from mlfit.analysis.costs import FUSED_ACTIVATIONS, VIEW_OPS
from mlfit.analysis.project.memory import memory_band
from mlfit.analysis.project.types import TOP_N, Band, Projection, model_precision
from mlfit.catalog.loader import Target
from mlfit.catalog.schema import Percentile
from mlfit.result import HostInfo, Measurement

_GPU = {  # roofline parameters: optimistic, centre, conservative
    "compute_eff": (0.8, 0.5, 0.25),
    "bandwidth_eff": (0.85, 0.7, 0.5),
    "launch_s": (3e-6, 10e-6, 25e-6),
    "run_overhead_s": (15e-6, 40e-6, 120e-6),
    "cuda_init_s": (0.5, 1.5, 5.0),
    "cuda_context_bytes": (200 * 2**20, 400 * 2**20, 1024 * 2**20),
}


# Pointwise ops TensorRT folds into the kernel that produces their input (a convolution's or GEMM's
# epilogue, or one generated pointwise kernel for a chain of them; BatchNormalization into the
# convolution's weights): no launch and no pass over memory of their own. Reductions, Softmax,
# normalisation, pooling and data movement stay kernels.
TENSORRT_POINTWISE = FUSED_ACTIVATIONS | frozenset({
    "Add", "Sub", "Mul", "Div", "Pow", "Sqrt", "Reciprocal", "Neg", "Abs", "Min", "Max", "Sum", "Where",
    "Erf", "Gelu", "FastGelu", "BiasGelu", "QuickGelu", "Tanh", "Sigmoid", "HardSigmoid", "HardSwish",
    "Swish", "Exp", "Log", "Elu", "PRelu", "Softplus", "Mish", "BatchNormalization", "Cast",
    "QuantizeLinear", "DequantizeLinear",
})  # fmt: skip


# TensorRT builds its engine when the session is created, timing kernel tactics for every layer left
# after fusion (a ResNet-50 takes on the order of a minute or two on a T4), unless an engine cache
# from an earlier run is found: the conservative end of a TensorRT cold start carries it, per layer.
TENSORRT_BUILD_S_PER_LAYER = 2.0


def fuses(provider: str, node: dict[str, Any]) -> bool:
    """A node the provider runs inside another kernel (no launch, no bytes of its own): TensorRT's
    pointwise fusion. ONNX Runtime's CUDA provider is charged for every node: it fuses Conv + ReLU
    too, but the only GPU measurement here (benchmarks/gpu_check_results.md: batch 1 5-7x slower
    than the roofline) says per-kernel costs are under-counted, not over-counted, and no published
    ONNX Runtime CUDA row says otherwise."""
    return "tensorrt" in provider.lower() and node["op"].split("::")[-1] in TENSORRT_POINTWISE


def gpu_path_peak(acc: Any, precision: str) -> tuple[float, str]:
    """The peak a model's dense ops run at: the tensor-core int8 or fp16 peak for an int8 or fp16
    model (when the accelerator's file gives it), else the fp32 one; and the path's name."""
    if precision == "int8" and acc.peak_int8:
        return float(acc.peak_int8), "int8 tensor-core"
    if precision in ("fp16", "int8") and acc.peak_fp16:
        return float(acc.peak_fp16), "fp16 tensor-core"
    return float(acc.peak_fp32), "fp32"


def _gpu_time(nodes: list[dict[str, Any]], batch: int, acc: Any, idx: int, precision: str, provider: str,
              compute_eff: float | None = None) -> tuple[float, list]:
    scale = 1.0 if compute_eff is None else compute_eff / _GPU["compute_eff"][1]
    peak = gpu_path_peak(acc, precision)[0] * _GPU["compute_eff"][idx] * scale
    bw = acc.bandwidth * _GPU["bandwidth_eff"][idx]
    launch = _GPU["launch_s"][idx]
    total = 0.0
    per_node = []
    # the conservative end charges every node: a pointwise chain no product precedes (a decomposed
    # LayerNorm, an elementwise-only graph) is still a kernel reading and writing its tensors
    fused_here = idx < 2
    for n in nodes:
        op = n["op"].split("::")[-1]
        if op in VIEW_OPS or (fused_here and fuses(provider, n)):
            continue
        flops = n["flops"] * batch
        moved = (n["bytes_read"] + n["bytes_written"] - n["param_bytes"]) * batch + n["param_bytes"]
        t = max(flops / peak, moved / bw) + launch
        total += t
        per_node.append((t, n["name"], n["op"]))
    return total, per_node


def gpu_roofline(static: dict[str, Any], acc: Any, batch: int, provider: str = "CUDAExecutionProvider",
                 compute_eff: float | None = None) -> tuple[Band, list[tuple[float, str, str]]]:
    """Time of one run at ``batch`` on accelerator ``acc`` under execution ``provider``: per-node
    roofline + launches + copies (``compute_eff``: a centre compute efficiency in place of the
    band's, the band's ends scaled with it). Returns the band and the centre's per-node times
    (seconds, name, op), costliest first."""
    nodes = static["nodes"]
    precision = model_precision(static)
    io_bytes = sum(_io_bytes(t) for t in [*static.get("inputs", []), *static.get("outputs", [])])
    times = []
    per_node_mid: list[tuple[float, str, str]] = []
    for idx in range(3):
        compute, per_node = _gpu_time(nodes, batch, acc, idx, precision, provider, compute_eff)
        copy = io_bytes * batch / (acc.host_link_bandwidth * _GPU["bandwidth_eff"][idx])
        times.append(compute + copy + _GPU["run_overhead_s"][idx])
        if idx == 1:
            per_node_mid = sorted(per_node, reverse=True)
    return Band(times[1], times[0], times[2]), per_node_mid


def project_gpu(
    target: Target, measurement: Measurement, static: dict[str, Any] | None, host: HostInfo
) -> Projection | None:
    """Roofline projection onto the target's first GPU from the static node list."""
    acc = next((a for a in target.hardware.accelerators if a.kind == "gpu"), None)
    if acc is None or not static or not static.get("nodes"):
        return None
    nodes = static["nodes"]
    # the profile's provider runs the model (TensorRT fuses pointwise ops); a CPU one names none
    provider = target.profile.execution_provider
    if provider == "CPUExecutionProvider":
        provider = acc.execution_provider
    latency_mid, per_node_mid = gpu_roofline(static, acc, 1, provider)
    latency = {
        p: Band(
            latency_mid.value,
            latency_mid.lower,
            latency_mid.upper * (1.1 if p in (Percentile.P99, Percentile.P95) else 1.0),
        )
        for p in Percentile
    }
    batch = target.profile.batch_size
    batch_free = bool(static.get("dynamic_dims")) or batch == 1
    basis = f"batch {batch}" if batch_free and batch > 1 else "single stream"
    b = batch if batch_free else 1
    per_batch, _ = gpu_roofline(static, acc, b, provider)
    path = gpu_path_peak(acc, model_precision(static))[1]
    throughput = Band(b / per_batch.value, b / per_batch.upper, b / per_batch.lower)
    init = _GPU["cuda_init_s"]
    # Session creation, plus the process start and runtime import where the profile counts them.
    load = measurement.cold_start.counted([p for p in target.profile.budgets.cold_start_parts
                                           if p != "first_inference"])
    cold = Band(
        load + init[1] + latency_mid.value * 20,
        load * 0.5 + init[0] + latency_mid.lower,
        load * 1.5 + init[2] + latency_mid.upper * 100,
    )
    layers = sum(1 for n in nodes if n["op"].split("::")[-1] not in VIEW_OPS and not fuses(provider, n))
    build = layers * TENSORRT_BUILD_S_PER_LAYER if "tensorrt" in provider.lower() else 0.0
    cold = Band(cold.value, cold.lower, cold.upper + build)
    ctx = _GPU["cuda_context_bytes"]
    memory = memory_band(
        measurement,
        static,
        host.arch,
        target.hardware.cpu.arch.value,
        extra=Band(float(ctx[1]), float(ctx[0]), float(ctx[2])),
    )
    per_node_mid.sort(reverse=True)
    total = sum(t for t, _, _ in per_node_mid) or 1.0
    agg: dict[str, float] = {}
    for t, _, op in per_node_mid:
        agg[op] = agg.get(op, 0.0) + t
    notes = [
        f"no GPU measurement here: a roofline over {len(nodes)} graph nodes at {acc.name}'s "
        f"{path} peak and bandwidth with a per-kernel launch cost and the input/output "
        f"copies over the host link; the band spans the efficiencies cuDNN/cuBLAS reach"
    ]
    fused = sum(1 for n in nodes if fuses(provider, n))
    if fused:
        notes.append(f"{fused} pointwise nodes fused by {provider} (no launch or memory pass of their own)")
    if build:
        notes.append(f"cold start: the conservative end adds TensorRT's engine build ({layers} layers x "
                     f"{TENSORRT_BUILD_S_PER_LAYER:g} s of tactic timing), the centre assumes a cached engine")
    return Projection(
        target=target.name,
        method=f"roofline on {acc.name} ({provider}); no GPU on this host",
        latency=latency,
        cold_start=cold,
        memory_peak=memory,
        throughput=throughput,
        throughput_basis=basis,
        notes=notes,
        top_nodes=[
            {"name": n, "op": op, "seconds": t, "share": t / total} for t, n, op in per_node_mid[:TOP_N]
        ],
        top_ops=[
            {"op": op, "seconds": t, "share": t / total}
            for op, t in sorted(agg.items(), key=lambda kv: kv[1], reverse=True)[:TOP_N]
        ],
        details={"parameters": _GPU, "accelerator": acc.name, "batch_for_throughput": b},
        from_host_timings=False,
    )


def _io_bytes(tensor: dict[str, Any]) -> int:
    size = {
        "float32": 4,
        "float16": 2,
        "int64": 8,
        "int32": 4,
        "float64": 8,
        "bool": 1,
        "int8": 1,
        "uint8": 1,
    }.get(tensor.get("dtype", "float32"), 4)
    count = 1
    for d in tensor.get("shape", []):
        count *= d if isinstance(d, int) else 1
    return count * size
