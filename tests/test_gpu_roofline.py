"""The GPU roofline by execution provider: TensorRT folds pointwise ops into their producers (no
launch, no bytes of their own); ONNX Runtime's CUDA provider is charged for every node, as before
(benchmarks/gpu_check_results.md: batch 1 is already optimistic there). Table-driven."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from mlfit.analysis.costs import VIEW_OPS
from mlfit.analysis.graph import analyze_onnx
from mlfit.analysis.project import project_gpu
from mlfit.analysis.project.gpu import fuses, gpu_roofline
from mlfit.catalog.loader import Target, resolve_hardware, resolve_target
from mlfit.catalog.schema import Percentile
from mlfit.measure.host import host_info
from mlfit.zoo import builders

TRT = "TensorrtExecutionProvider"
CUDA = "CUDAExecutionProvider"


@pytest.mark.parametrize(
    ("provider", "op", "fused"),
    [
        (TRT, "Relu", True),
        (TRT, "Clip", True),
        (TRT, "Add", True),
        (TRT, "Mul", True),
        (TRT, "Erf", True),
        (TRT, "com.microsoft::Gelu", True),
        (TRT, "BatchNormalization", True),
        (TRT, "Conv", False),  # the producer itself
        (TRT, "MatMul", False),
        (TRT, "Softmax", False),  # reductions and normalisation stay kernels
        (TRT, "ReduceMean", False),
        (TRT, "MaxPool", False),
        (TRT, "Transpose", False),
        (CUDA, "Relu", False),  # charged for every node
        (CUDA, "Add", False),
        ("CPUExecutionProvider", "Add", False),
    ],
)
def test_which_nodes_a_provider_fuses(provider: str, op: str, fused: bool) -> None:
    assert fuses(provider, {"op": op}) is fused


@pytest.fixture(scope="module")
def statics(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Any]]:
    folder = tmp_path_factory.mktemp("gpu")
    return {
        "mobilenet_v2": analyze_onnx(builders.save(builders.mobilenet_v2(width=0.35, resolution=96),
                                                   folder / "mnv2.onnx")),
        "transformer": analyze_onnx(builders.save(builders.transformer_block(seq=64), folder / "tb.onnx")),
    }


def _gpu(name: str = "t4-server") -> Any:
    return next(a for a in resolve_hardware(name).accelerators if a.kind == "gpu")


@pytest.mark.parametrize("model", ["mobilenet_v2", "transformer"])
@pytest.mark.parametrize("batch", [1, 32])
def test_tensorrt_runs_fewer_kernels_and_is_not_slower(statics: dict[str, dict[str, Any]], model: str,
                                                       batch: int) -> None:
    static = statics[model]
    cuda, cuda_nodes = gpu_roofline(static, _gpu(), batch, CUDA)
    trt, trt_nodes = gpu_roofline(static, _gpu(), batch, TRT)
    kernels = [n for n in static["nodes"] if n["op"].split("::")[-1] not in VIEW_OPS]
    fused = [n for n in kernels if fuses(TRT, n)]
    assert fused, "the model has pointwise ops to fuse"
    # CUDA: every kernel node is costed (unchanged); TensorRT: the fused ones are not
    assert len(cuda_nodes) == len(kernels)
    assert len(trt_nodes) == len(kernels) - len(fused)
    assert not {op for _, _, op in trt_nodes} & {n["op"] for n in fused}
    for end in ("value", "lower"):
        assert getattr(trt, end) < getattr(cuda, end)
    # the conservative end assumes no fusion: a pointwise chain that follows no product is a kernel
    assert trt.upper == pytest.approx(cuda.upper)


def test_the_conservative_end_charges_a_pointwise_only_chain() -> None:
    """Four chained pointwise ops on large tensors (no product to fuse them into): TensorRT's centre
    and optimistic end fold them away, but its conservative end still reads and writes every tensor,
    as the CUDA provider's does (a band whose upper end drops them could PASS what the GPU cannot run)."""
    big = 64 * 2**20  # elements: 256 MiB of fp32 per tensor
    nodes = [{"name": f"n{i}", "op": op, "flops": float(big), "bytes_read": 8.0 * big, "bytes_written": 4.0 * big,
              "param_bytes": 0.0} for i, op in enumerate(("Add", "Mul", "Sigmoid", "Mul"))]
    static = {"nodes": nodes, "inputs": [], "outputs": []}
    cuda, _ = gpu_roofline(static, _gpu(), 1, CUDA)
    trt, _ = gpu_roofline(static, _gpu(), 1, TRT)
    assert trt.upper == pytest.approx(cuda.upper) and trt.upper > 10 * trt.value


def test_a_lower_compute_efficiency_is_slower(statics: dict[str, dict[str, Any]]) -> None:
    static = statics["transformer"]
    base, _ = gpu_roofline(static, _gpu(), 32, TRT)
    half, _ = gpu_roofline(static, _gpu(), 32, TRT, compute_eff=0.25)
    same, _ = gpu_roofline(static, _gpu(), 32, TRT, compute_eff=0.5)  # the centre's own
    assert half.value > base.value and same.value == pytest.approx(base.value)


def _with_provider(name: str, provider: str) -> Target:
    base = resolve_target(name)
    return Target(base.profile.model_copy(update={"execution_provider": provider}), base.hardware, "test")


@pytest.mark.parametrize(("provider", "says_fused"), [(TRT, True), (CUDA, False)])
def test_the_targets_provider_decides_the_projection(statics: dict[str, dict[str, Any]], provider: str,
                                                     says_fused: bool) -> None:
    from test_projection import _measurement

    static = statics["mobilenet_v2"]
    p = project_gpu(_with_provider("gpu-server", provider), _measurement(), static, host_info())
    assert p is not None and provider in p.method
    assert any("fused by" in n for n in p.notes) is says_fused
    expected, _ = gpu_roofline(static, _gpu(), 1, provider)
    assert p.latency[Percentile.P50].value == pytest.approx(expected.value)


def test_a_cuda_target_at_batch_1_is_not_more_optimistic_than_every_node_a_kernel(
        statics: dict[str, dict[str, Any]]) -> None:
    """gpu_check_results.md: batch 1 on an H100-class GPU is already 5-7x optimistic under the CUDA
    provider; its figure stays the every-node-a-kernel sum (each non-view node at least one launch)."""
    from mlfit.analysis.project.gpu import _GPU
    from test_projection import _measurement

    static = statics["mobilenet_v2"]
    p = project_gpu(resolve_target("gpu-h100"), _measurement(), static, host_info())
    assert p is not None
    kernels = sum(1 for n in static["nodes"] if n["op"].split("::")[-1] not in VIEW_OPS)
    assert p.latency[Percentile.P50].value >= kernels * _GPU["launch_s"][1] + _GPU["run_overhead_s"][1]



def test_a_tensorrt_cold_start_allows_for_the_engine_build(statics: dict[str, dict[str, Any]]) -> None:
    """TensorRT builds its engine at session creation unless cached: the conservative end of a
    TensorRT target's cold start carries it, so the profile's 30 s budget can no longer PASS a
    MobileNetV2 whose CUDA cold start it does."""
    from mlfit.analysis.project.gpu import TENSORRT_BUILD_S_PER_LAYER
    from test_projection import _measurement

    static = statics["mobilenet_v2"]
    trt = project_gpu(_with_provider("gpu-server", TRT), _measurement(), static, host_info())
    cuda = project_gpu(_with_provider("gpu-server", CUDA), _measurement(), static, host_info())
    assert trt is not None and cuda is not None
    layers = sum(1 for n in static["nodes"] if n["op"].split("::")[-1] not in VIEW_OPS and not fuses(TRT, n))
    assert trt.cold_start.upper - cuda.cold_start.upper == pytest.approx(
        layers * TENSORRT_BUILD_S_PER_LAYER, rel=0.05)
    budget = resolve_target("gpu-server").profile.budgets.cold_start
    assert budget is not None
    assert cuda.cold_start.upper < float(budget) < trt.cold_start.upper
    assert any("engine build" in n for n in trt.notes) and not any("engine build" in n for n in cuda.notes)


@pytest.mark.parametrize(("precision", "scale", "path"), [("fp32", 1.0, "fp32"), ("fp16", 0.5, "fp16"),
                                                           ("int8", 0.25, "int8")])
def test_bench_gives_the_fp32_file_the_rows_precision(statics: dict[str, dict[str, Any]], precision: str,
                                                      scale: float, path: str) -> None:
    """Item 9's GPU section projects the zoo's fp32 file as a file of the row's precision: bytes at
    its element size, and the roofline then takes that precision's tensor-core peak."""
    import sys

    from mlfit.analysis.project import model_precision

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
    import bench_gpu_rows

    static = statics["mobilenet_v2"]
    lowered = bench_gpu_rows.at_precision(static, precision)
    assert model_precision(lowered) == path
    for before, after in zip(static["nodes"], lowered["nodes"], strict=True):
        assert after["bytes_read"] == pytest.approx(before["bytes_read"] * scale)
        assert after["flops"] == before["flops"]
