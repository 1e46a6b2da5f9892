"""Projection onto a target's hardware and three-way verdicts from bounds."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest

from conftest import FAST, assert_no_traceback, run_cli
from mlfit.analysis.graph import analyze_onnx
from mlfit.analysis.project import THREAD_MODELS, Band, project, project_cpu, project_gpu, thread_speedup
from mlfit.catalog.loader import Target, resolve_target
from mlfit.catalog.schema import Hardware, Percentile
from mlfit.checks.engine import evaluate
from mlfit.checks.verdict import three_way
from mlfit.measure.bounds import order_statistic_ranks, percentile_bounds
from mlfit.measure.host import host_info
from mlfit.measure.stats import latency_stats
from mlfit.records import Calibration, NodeProfile
from mlfit.result import ColdStart, Measurement, MemoryPhases, ModelInfo, Provenance, Throughput, Verdict
from mlfit.zoo import builders

# ----------------------------------------------------------------------------- bounds


def _binom_cdf(k: int, n: int, q: float) -> float:
    return sum(math.comb(n, i) * q**i * (1 - q) ** (n - i) for i in range(k + 1))


@pytest.mark.parametrize(("n", "q"), [(20, 0.5), (64, 0.9), (130, 0.95), (300, 0.99)])
def test_order_statistic_ranks_match_the_binomial(n: int, q: float) -> None:
    lower, upper = order_statistic_ranks(n, q)
    if upper is not None:
        assert _binom_cdf(upper - 1, n, q) >= 0.95 > _binom_cdf(upper - 2, n, q)
    else:
        assert _binom_cdf(n - 1, n, q) < 0.95
    assert lower is not None
    assert 1 - _binom_cdf(lower - 1, n, q) >= 0.95 > 1 - _binom_cdf(lower, n, q)


def test_percentile_bounds_enclose_the_percentile() -> None:
    samples = [float(i) for i in range(1, 201)]
    lower, upper = percentile_bounds(samples, 0.95)
    assert lower is not None and upper is not None
    assert lower < 190 < upper  # nearest-rank p95 of 1..200 is 190
    assert percentile_bounds(samples[:50], 0.99)[1] is None  # 50 samples cannot bound a p99


def test_three_way_verdicts() -> None:
    assert three_way(10, 20, 30) is Verdict.PASS
    assert three_way(31, 40, 30) is Verdict.FAIL
    assert three_way(20, 40, 30) is Verdict.INCONCLUSIVE
    assert three_way(20, None, 30) is Verdict.INCONCLUSIVE
    assert three_way(50, 60, 40, higher_is_better=True) is Verdict.PASS
    assert three_way(10, 30, 40, higher_is_better=True) is Verdict.FAIL
    assert Band(5, 6, 4) == Band(5, 5, 5)  # bounds always enclose the centre


# ----------------------------------------------------------------------------- fixtures

CALIBRATION = Calibration(
    gemm_flops={"1": 100e9, "2": 190e9},
    conv_flops={"1": 100e9, "2": 190e9},
    bandwidth={"1": 15e9, "2": 20e9},
    frequency_mhz=3000.0,
    peak_fp32_per_core=125e9,
    call_overhead_s=5e-6,
)


def _measurement(
    mean_s: float = 0.004, threads: int = 2, cv: float = 0.02, unstable: bool = False
) -> Measurement:
    samples = [int(mean_s * 1e9 * (1 + cv * math.sin(i))) for i in range(700)]
    return Measurement(
        runtime="onnxruntime",
        runtime_version="1.32.0",
        threads=threads,
        execution_provider="CPUExecutionProvider",
        cold_start=ColdStart(import_s=0.1, load_s=0.05, first_inference_s=0.01),
        latency=latency_stats(samples),
        memory=MemoryPhases(
            method="test",
            interpreter_bytes=20 << 20,
            runtime_baseline_bytes=60 << 20,
            load_peak_bytes=80 << 20,
            inference_peak_bytes=90 << 20,
            peak_bytes=90 << 20,
        ),
        throughput=Throughput(single_stream_per_s=1 / mean_s),
        unstable=unstable,
        warnings=["unstable: test"] if unstable else [],
    )


def _node_profile(
    conv_us: tuple[float, float] = (3000.0, 1600.0), add_us: tuple[float, float] = (300.0, 280.0)
) -> NodeProfile:
    """Two nodes as onnxruntime reports them: a big conv (compute-bound) and a big Add (streaming)."""
    nodes = {
        "conv": {
            "op": "Conv",
            "inputs": [[1, 64, 56, 56], [64, 64, 3, 3]],
            "outputs": [[1, 64, 56, 56]],
            "activation_bytes": 802816,
            "param_bytes": 147456,
            "output_bytes": 802816,
        },
        "add": {
            "op": "Add",
            "inputs": [[1, 256, 112, 112], [1, 256, 112, 112]],
            "outputs": [[1, 256, 112, 112]],
            "activation_bytes": 2 * 12845056,
            "param_bytes": 0,
            "output_bytes": 12845056,
        },
    }
    by_threads = {}
    for i, t in enumerate((1, 2)):
        node_us = {"conv": conv_us[i], "add": add_us[i]}
        by_threads[str(t)] = {
            "runs": 20,
            "run_us": sum(node_us.values()) + 50,
            "nodes_us": sum(node_us.values()),
            "overhead_us": 50.0,
            "node_us": node_us,
        }
    return NodeProfile.model_validate({"runtime_version": "1.32.0", "by_threads": by_threads, "nodes": nodes})


def _hardware(**cpu: Any) -> Hardware:
    base = {
        "arch": "x86_64",
        "model": "test cpu",
        "cores": 4,
        "frequency": "3 GHz",
        "peak_fp32": "500 GFLOPS",
        "source": "test fixture",
    }
    return Hardware.model_validate(
        {
            "id": "test-hw",
            "name": "Test machine",
            "cpu": {**base, **cpu},
            "memory": {
                "ram": "8 GiB",
                "os_reserved": "1 GiB",
                "bandwidth": "15 GB/s",
                "source": "test fixture",
            },
            "storage": {"size": "32 GB", "source": "test fixture"},
        }
    )


def _target(hardware: Hardware, threads: int = 2, name: str = "edge") -> Target:
    base = resolve_target(name)
    return Target(base.profile.model_copy(update={"threads": threads}), hardware, "test")


# ----------------------------------------------------------------------------- CPU projection


def test_same_machine_same_threads_projects_to_the_measurement() -> None:
    # Target = the calibrated host itself (sustained figure = host GEMM): the factor is ~1.
    hw = _hardware(cores=2, peak_fp32="250 GFLOPS", sustained_fp32="190 GFLOPS", frequency="3 GHz")
    hw = hw.model_copy(update={"memory": hw.memory.model_copy(update={"bandwidth": 20e9})})
    p = project_cpu(_target(hw, threads=2), _measurement(), _node_profile(), None, CALIBRATION, host_info())
    factor = p.details["factor"]
    assert 0.85 < factor["value"] < 1.15, factor
    assert factor["lower"] <= factor["value"] <= factor["upper"]
    assert factor["upper"] / factor["lower"] < 1.4  # a measured target gives a narrow band


def test_slower_target_projects_slower_and_other_isa_widens_the_band() -> None:
    m = _measurement()
    fast = project_cpu(
        _target(_hardware(peak_fp32="1000 GFLOPS")), m, _node_profile(), None, CALIBRATION, host_info()
    )
    slow = project_cpu(
        _target(_hardware(peak_fp32="100 GFLOPS")), m, _node_profile(), None, CALIBRATION, host_info()
    )
    arm = project_cpu(
        _target(_hardware(peak_fp32="100 GFLOPS", arch="aarch64")),
        m,
        _node_profile(),
        None,
        CALIBRATION,
        host_info(),
    )
    p95 = Percentile.P95
    assert slow.latency[p95].value > fast.latency[p95].value
    for band in (fast.latency[p95], slow.latency[p95], arm.latency[p95]):
        assert band.lower <= band.value <= band.upper
    width = {k: v.latency[p95].upper / v.latency[p95].lower for k, v in {"x86": slow, "arm": arm}.items()}
    assert width["arm"] > width["x86"]
    assert any("different instruction set" in n for n in arm.notes)
    assert slow.top_nodes[0]["name"] == "conv" and slow.top_ops[0]["op"] == "Conv"


def test_thread_extrapolation_uses_both_thread_counts() -> None:
    # Conv halves from 1 to 2 threads (perfectly parallel); the Add does not scale.
    m = _measurement()
    hw = _hardware(cores=8)
    two = project_cpu(_target(hw, threads=2), m, _node_profile(), None, CALIBRATION, host_info())
    eight = project_cpu(_target(hw, threads=8), m, _node_profile(), None, CALIBRATION, host_info())
    assert eight.latency[Percentile.P50].value < two.latency[Percentile.P50].value
    assert any("extrapolated" in n for n in eight.notes)
    assert (
        eight.details["factor"]["upper"] / eight.details["factor"]["lower"]
        > two.details["factor"]["upper"] / two.details["factor"]["lower"]
    )


def test_one_thread_target_from_a_two_thread_profile() -> None:
    # Only 2 threads profiled: 1 thread comes from the calibrated GEMM/bandwidth scaling.
    full = _node_profile()
    profile = full.model_copy(update={"by_threads": {"2": full.by_threads["2"]}})
    one = project_cpu(
        _target(_hardware(cores=1, sustained_fp32="100 GFLOPS", peak_fp32="125 GFLOPS"), threads=1),
        _measurement(),
        profile,
        None,
        CALIBRATION,
        host_info(),
    )
    assert one.details["factor"]["value"] > 1.3  # slower on one thread than the measured two
    assert any("scaled from 2" in n for n in one.notes)


def test_band_sources_name_every_widening() -> None:
    # A Pi-like target (other ISA, 4 threads from 1 and 2 profiled) measured on a busy host
    # whose 2-thread nodes ran slower than 1-thread ones: each widening is recorded and stated.
    m = _measurement(cv=0.5, unstable=True)
    busy = _node_profile(conv_us=(3000.0, 3300.0), add_us=(300.0, 320.0))
    hw = _hardware(arch="aarch64", peak_fp32="48 GFLOPS", frequency="1.5 GHz")
    p = project_cpu(_target(hw, threads=4), m, busy, None, CALIBRATION, host_info())
    sources = p.details["band_sources"]
    assert {"target hardware", "threads"} <= set(sources)
    assert any(k.startswith("host measurement") for k in sources)
    for lo, hi in sources.values():
        assert lo <= 1.0 <= hi
    factor = p.details["factor"]
    # The factor's band is the product of the hardware and thread widenings, nothing else.
    hw_lo, hw_hi = sources["target hardware"]
    th_lo, th_hi = sources["threads"]
    assert factor["lower"] == pytest.approx(factor["value"] * hw_lo * th_lo, rel=1e-2)
    assert factor["upper"] == pytest.approx(factor["value"] * hw_hi * th_hi, rel=1e-2)
    # The hardware band's parts (compute, memory bandwidth, executor clock) add up to it.
    parts = p.details["target_hardware_parts"]
    assert "compute" in parts and "executor clock" in parts
    assert 1 + sum(lo - 1 for lo, _ in parts.values()) == pytest.approx(hw_lo, abs=0.01)
    assert 1 + sum(hi - 1 for _, hi in parts.values()) == pytest.approx(hw_hi, abs=0.01)
    assert any(n.startswith("band, as multipliers on the centre") for n in p.notes)
    assert any("fastest run" in n for n in p.notes)
    assert any("likely pessimistic" in n for n in p.notes)


def test_per_class_thread_model_follows_each_class_calibration() -> None:
    # Conv scales like the calibrated convolution, MatMul like the GEMM, an Add like bandwidth.
    cal = CALIBRATION.model_copy(
        update={"conv_flops": {"1": 100e9, "2": 200e9}, "gemm_flops": {"1": 100e9, "2": 150e9}})
    big = 1e9  # FLOPs: a node large enough to get its class's full speed-up
    assert thread_speedup(cal, 2, big, "Conv", "per-class") == pytest.approx(2.0)
    assert thread_speedup(cal, 2, big, "MatMul", "per-class") == pytest.approx(1.5)
    assert thread_speedup(cal, 2, big, "Add", "per-class") == pytest.approx(20e9 / 15e9)
    assert thread_speedup(cal, 2, big, "Conv") == pytest.approx(1.5)  # the default: GEMM for all
    assert set(THREAD_MODELS) == {"gemm", "per-class"}
    full = _node_profile()
    profile = full.model_copy(update={"by_threads": {"2": full.by_threads["2"]}})
    target = _target(_hardware(cores=1, sustained_fp32="100 GFLOPS", peak_fp32="125 GFLOPS"), threads=1)
    gemm = project_cpu(target, _measurement(), profile, None, cal, host_info())
    per_class = project_cpu(target, _measurement(), profile, None, cal, host_info(), thread_model="per-class")
    # The conv node gains more from its second thread under per-class, so 1 thread is slower.
    assert per_class.details["factor"]["value"] > gemm.details["factor"]["value"]


def test_without_calibration_no_cpu_projection() -> None:
    assert project(resolve_target("edge"), _measurement(), _node_profile(), None, None, host_info()) is None


# ----------------------------------------------------------------------------- GPU roofline


def test_gpu_roofline_from_static_nodes(models_dir: Path) -> None:
    small = analyze_onnx(
        builders.save(builders.mobilenet_v2(width=0.35, resolution=96), models_dir / "g1.onnx")
    )
    big = analyze_onnx(builders.save(builders.resnet50(), models_dir / "g2.onnx"))
    target = resolve_target("gpu-server")
    host = host_info()
    p_small = project_gpu(target, _measurement(), small, host)
    p_big = project_gpu(target, _measurement(), big, host)
    assert p_small is not None and p_big is not None
    assert p_big.latency[Percentile.P99].value > p_small.latency[Percentile.P99].value
    # ResNet-50's 8.2 GFLOP on a T4 (8.1 TFLOPS fp32) cannot take under 1 ms
    assert p_big.latency[Percentile.P50].lower > 1e-3
    assert not p_big.from_host_timings and "roofline" in p_big.method


# ----------------------------------------------------------------------------- verdicts


def _model_info() -> ModelInfo:
    return ModelInfo(path="m.onnx", sha256="0", format="onnx", runtime="onnxruntime", size_bytes=1 << 20)


def _latency_check(report: Any, metric: str = "latency.p95") -> Any:
    return next(c for c in report.checks if c.metric == metric)


def test_projected_verdicts_follow_the_band() -> None:
    hw = _hardware(peak_fp32="100 GFLOPS")
    m = _measurement()
    for limit, expected in (("10 s", Verdict.PASS), ("1 ms", Verdict.FAIL)):
        profile = resolve_target("edge").profile.model_copy(update={"threads": 2})
        profile = profile.model_copy(
            update={
                "budgets": profile.budgets.model_copy(
                    update={"latency": {Percentile.P95: {"10 s": 10.0, "1 ms": 1e-3}[limit]}}
                )
            }
        )
        target = Target(profile, hw, "test")
        projection = project_cpu(target, m, _node_profile(), None, CALIBRATION, host_info())
        report = evaluate(target, _model_info(), m, None, projection, _node_profile())
        check = _latency_check(report)
        assert check.provenance is Provenance.PROJECTED and check.verdict is expected, check
        assert (
            check.lower is not None and check.upper is not None and check.lower <= check.value <= check.upper
        )
        if expected is Verdict.FAIL:
            assert "costliest on the target" in check.reason and check.top
            assert check.top[0].name == "conv"
    # A limit inside the band: INCONCLUSIVE with the band in the reason.
    band = projection.latency[Percentile.P95]
    middle = (band.lower + band.upper) / 2
    profile = target.profile.model_copy(
        update={"budgets": target.profile.budgets.model_copy(update={"latency": {Percentile.P95: middle}})}
    )
    report = evaluate(Target(profile, hw, "test"), _model_info(), m, None, projection, None)
    check = _latency_check(report)
    assert check.verdict is Verdict.INCONCLUSIVE and "straddles" in check.reason


def test_noisy_measurement_is_judged_by_its_bounds() -> None:
    """Noise never decides by itself (issue 12): a band far under the limit PASSes, projected or
    measured on this host, though the measurement is flagged unstable."""
    m = _measurement(unstable=True)
    target = resolve_target("weak-cpu")
    profile = target.profile.model_copy(
        update={"budgets": target.profile.budgets.model_copy(update={"latency": {Percentile.P95: 100.0}})}
    )
    target = Target(profile, target.hardware, "test")
    projection = project_cpu(target, m, _node_profile(), None, CALIBRATION, host_info())
    check = _latency_check(evaluate(target, _model_info(), m, None, projection, None))
    assert check.verdict is Verdict.PASS and "noisy" not in check.reason
    # Not projected (no calibration): a host figure, shown but never judged against the target (issue 12).
    measured = _latency_check(evaluate(target, _model_info(), m, None, None, None))
    assert measured.provenance is Provenance.MEASURED_ON_HOST and measured.verdict is Verdict.INCONCLUSIVE
    assert "never decides" in measured.reason


def test_compat_checks_fail_whatever_the_speed(models_dir: Path) -> None:
    static = analyze_onnx(
        builders.save(builders.mobilenet_v2(width=0.35, resolution=64, classes=10), models_dir / "c.onnx")
    )
    static = {**static, "opset": 30, "dtypes": [*static["dtypes"], "float16"]}
    huge = _model_info().model_copy(update={"size_bytes": 64 * 10**9})
    report = evaluate(resolve_target("edge"), huge, None, static)
    verdicts = {c.metric: c.verdict for c in report.checks}
    assert verdicts["compat.opset"] is Verdict.FAIL
    assert verdicts["compat.dtypes"] is Verdict.FAIL
    assert verdicts["compat.storage"] is Verdict.FAIL
    assert verdicts["compat.memory_fit"] is Verdict.PASS
    assert report.verdict is Verdict.FAIL
    missing = NodeProfile.model_validate(
        {"runtime_version": "1.32.0", "kernels": {"missing": {"CPUExecutionProvider": ["custom::Foo"]}}})
    kernels = evaluate(resolve_target("edge"), _model_info(), None, static, None, missing)
    check = next(c for c in kernels.checks if c.metric == "compat.kernels")
    assert check.verdict is Verdict.FAIL and "custom::Foo" in check.reason


# ----------------------------------------------------------------------------- end to end


def test_check_edge_prints_projected_bands(small_cnn_model: Path) -> None:
    run = run_cli("check", small_cnn_model, "--target", "edge", "--json", "-", *FAST)
    assert_no_traceback(run)
    assert run.code in (0, 1), run.output
    result = json.loads(run.stdout)["results"][0]
    report = result["targets"][0]
    checks = {c["metric"]: c for c in report["checks"]}
    for metric in ("latency.p95", "cold_start", "memory.peak"):
        c = checks[metric]
        assert c["provenance"] == "projected", c
        assert c["lower"] <= c["value"] <= c["upper"]
        assert c["verdict"] in ("PASS", "FAIL", "INCONCLUSIVE")
    for metric in ("compat.opset", "compat.dtypes", "compat.kernels", "compat.storage", "compat.memory_fit"):
        assert checks[metric]["provenance"] == "static"
    assert "aarch64" in " ".join(report["notes"])
    assert report["projection"]["method"] and report["projection"]["top_nodes"]
    assert result["node_profile"]["by_threads"] and result["calibration"]["gemm_flops"]
    assert result["analysis"]["macs"] > 0
    verdict = json.loads(run.stdout)["results"][0]["targets"][0]["verdict"]
    if verdict == "INCONCLUSIVE":
        assert "INCONCLUSIVE" in run.stderr and run.code == 0
        strict = run_cli("check", small_cnn_model, "--target", "edge", "--strict", "--json", "-", *FAST)
        # the second run has its own verdict: --strict maps INCONCLUSIVE to 4, the rest as usual
        second = json.loads(strict.stdout)["results"][0]["targets"][0]["verdict"]
        assert strict.code == {"PASS": 0, "FAIL": 1, "INCONCLUSIVE": 4}[second], strict.output


def test_gpu_targets_are_measured_only_with_a_gpu_and_onnxruntime_gpu() -> None:
    from mlfit.run.evaluate import _measured_projection
    from mlfit.run.venues import cuda_available

    host = host_info()
    assert cuda_available(host.model_copy(update={"gpus": []})) is False
    # A measurement taken on a GPU becomes a "measured" projection: exact figures, no band.
    gpu_host = host.model_copy(update={"gpus": ["NVIDIA T4"]})
    measured = _measured_projection(resolve_target("gpu-server"), _measurement(mean_s=0.002), gpu_host)
    band = measured.latency[Percentile.P99]
    assert measured.measured and band.lower == band.value == band.upper
    report = evaluate(resolve_target("gpu-server"), _model_info(), _measurement(mean_s=0.002), None, measured)
    assert _latency_check(report, "latency.p99").provenance is Provenance.MEASURED_ON_HOST
    assert "measured on this host's GPU (NVIDIA T4)" in measured.method
