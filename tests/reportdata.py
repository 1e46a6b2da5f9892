"""Hand-built result documents for reporter and compare tests.

Real runs give real figures (see the CLI tests); these give every shape a reporter must
handle, deterministically: PASS/FAIL/INCONCLUSIVE/ERROR checks, projected checks with
bands, costliest nodes, a batch sweep, a failed model, hostile text in names and reasons.
"""

from __future__ import annotations

import hashlib
from typing import Any

import numpy as np

from mlfit.measure.stats import latency_stats
from mlfit.result import (
    Check,
    ColdStart,
    ErrorInfo,
    HostInfo,
    Measurement,
    MemoryPhases,
    ModelInfo,
    Provenance,
    Report,
    RunResult,
    TargetReport,
    TensorInfo,
    Throughput,
    Verdict,
    worst,
)

HOSTILE = "<script>alert('x')</script> | `tick` & *star* \x07"


def host(fingerprint: str = "abc123def4567890", hostname: str = "ci-runner") -> HostInfo:
    return HostInfo(fingerprint=fingerprint, hostname=hostname, cpu_model="Test CPU @ 3.0GHz", arch="x86_64",
                    cores_logical=4, cores_physical=2, cores_usable=4, affinity=[0, 1, 2, 3], cgroup_cpu_quota=None,
                    cgroup_memory_limit=None, ram_bytes=16 * 2**30, os="Linux 6.1", python="3.11.7",
                    load_avg_1m=0.2, versions={"mlfit": "0.1.0", "onnxruntime": "1.20.0"})


def samples_ns(median_s: float, n: int = 2000, spread: float = 0.03, seed: int = 0) -> list[int]:
    """Log-normal latencies around ``median_s`` with a small right tail, like a quiet machine."""
    rng = np.random.default_rng(seed)
    values = median_s * np.exp(rng.normal(0.0, spread, n)) + rng.exponential(median_s * 0.01, n)
    return [int(v * 1e9) for v in values]


def measurement(median_s: float = 0.004, seed: int = 0, peak: int = 120 * 2**20, unstable: bool = False,
                extra: dict[str, Any] | None = None, raw: list[int] | None = None) -> Measurement:
    lat = latency_stats(raw if raw is not None else samples_ns(median_s, seed=seed))
    return Measurement(
        runtime="onnxruntime", runtime_version="1.20.0", threads=2, execution_provider="CPUExecutionProvider",
        cold_start=ColdStart(import_s=0.03, load_s=0.05, first_inference_s=0.006),
        latency=lat,
        memory=MemoryPhases(method="VmHWM", interpreter_bytes=12 * 2**20, runtime_baseline_bytes=64 * 2**20,
                            load_peak_bytes=peak - 8 * 2**20, inference_peak_bytes=peak, peak_bytes=peak,
                            arena_enabled=True),
        throughput=Throughput(single_stream_per_s=1 / lat.mean, batch_size=8, batched_per_s=8 / (lat.mean * 5)),
        warnings=["unstable: coefficient of variation is 40% (>= 10%)"] if unstable else [],
        unstable=unstable,
        **(extra or {}),  # Measurement fields by name: batch_sweep, memory_timeline, scenario
    )


def model(path: str = "/models/net.onnx", shape: tuple[int, ...] = (1, 3, 64, 64)) -> ModelInfo:
    sha = hashlib.sha256(path.rsplit("/", 1)[-1].encode()).hexdigest()  # same file name, same content
    tensor = TensorInfo(name="input", dtype="float32", shape=list(shape))
    return ModelInfo(path=path, sha256=sha, format="onnx", runtime="onnxruntime", size_bytes=5 * 2**20,
                     inputs=[tensor], inputs_used=[tensor],
                     outputs=[TensorInfo(name="probs", dtype="float32", shape=[1, 10])])


def checks_for(m: Measurement) -> list[TargetReport]:
    lat = m.latency
    assert lat.p95 is not None and lat.p99 is not None
    edge = [
        Check(metric="compat.opset", budget="7..21", value=17, verdict=Verdict.PASS, provenance=Provenance.STATIC),
        Check(metric="latency.p95", budget="<= 80.00 ms", limit=0.08, value=lat.p95, lower=lat.p95, upper=lat.p95,
              unit="s", verdict=Verdict.PASS, provenance=Provenance.MEASURED_ON_HOST, method="measured here",
              margin=(0.08 - lat.p95) / 0.08),
        Check(metric="memory.peak", budget="<= 100.0 MiB", limit=100 * 2**20, value=float(m.memory.peak_bytes),
              unit="B", verdict=Verdict.FAIL, provenance=Provenance.MEASURED_ON_HOST,
              margin=-0.2, reason=f"over budget {HOSTILE}"),
    ]
    pi = [
        Check(metric="latency.p99", budget="<= 5.00 ms", limit=0.005, value=lat.p99 * 3, lower=lat.p99 * 2,
              upper=lat.p99 * 5, unit="s", verdict=Verdict.INCONCLUSIVE, provenance=Provenance.PROJECTED,
              method="roofline per node, calibrated host", reason="the band straddles the budget"),
        Check(metric="throughput", budget=">= 30.0/s", limit=30.0, value=1 / (lat.mean * 3),
              lower=1 / (lat.mean * 5), upper=1 / (lat.mean * 2), unit="/s", verdict=Verdict.PASS,
              provenance=Provenance.PROJECTED, method="roofline", margin=0.5),
        Check(metric="latency.p50", budget="<= 1.00 ms", limit=0.001, value=None, unit="s",
              verdict=Verdict.ERROR, provenance=Provenance.PROJECTED, reason="no calibration for this ISA"),
    ]
    return [
        TargetReport(target="edge", hardware="rpi4-4gb", hardware_name="Raspberry Pi 4", source="builtin",
                     verdict=worst([c.verdict for c in edge]), checks=edge, notes=["measured on this host"]),
        TargetReport(target=f"pi {HOSTILE}", hardware="rpi5-8gb", hardware_name="Raspberry Pi 5", source="x.yaml",
                     verdict=worst([c.verdict for c in pi]), checks=pi),
    ]


def run_result(median_s: float = 0.004, seed: int = 0, path: str = "/models/net.onnx",
               fingerprint: str = "abc123def4567890", unstable: bool = False, extra: dict[str, Any] | None = None,
               analysis: dict[str, Any] | None = None, targets: bool = True, peak: int = 120 * 2**20,
               raw: list[int] | None = None) -> RunResult:
    m = measurement(median_s, seed, peak=peak, unstable=unstable, extra=extra, raw=raw)
    return RunResult(mlfit_version="0.1.0", created="2026-11-27T10:00:00+0000", model=model(path),
                     host=host(fingerprint), measurement=m, analysis=analysis, targets=checks_for(m) if targets else [])


def failed_result(path: str = "/models/broken.onnx") -> RunResult:
    return RunResult(mlfit_version="0.1.0", created="2026-11-27T10:00:00+0000", model=model(path), host=host(),
                     error=ErrorInfo(kind="load", phase="load", message=f"could not parse {HOSTILE}",
                                     hint="re-export the model"))


def report(*results: RunResult) -> Report:
    return Report(mlfit_version="0.1.0", created="2026-11-27T10:00:00+0000", results=list(results))


RICH_EXTRA = {
    "batch_sweep": [
        {"batch_size": 1, "latency_p50_s": 0.004, "throughput_per_s": 250.0},
        {"batch_size": 4, "latency_p50_s": 0.011, "throughput_per_s": 363.0},
        {"batch_size": 16, "latency_p50_s": 0.040, "throughput_per_s": 400.0},
    ],
    "memory_timeline": {
        "source": "RSS polled every 0.1 s",
        "samples": [[0.0, 12 * 2**20], [0.1, 40 * 2**20], [0.2, 70 * 2**20], [0.3, 110 * 2**20], [0.4, 118 * 2**20],
                    [0.5, 120 * 2**20], [0.6, 119 * 2**20]],
        "phases": [["import", 0.05], ["load", 0.15], ["first_inference", 0.3], ["measure", 0.35]],
    },
}
RICH_ANALYSIS = {
    "opset": 17, "parameters": 401968, "flops": 123456789, "dtypes": ["float32"],
    "ops": {"Conv": 52, "Clip": 35, "Add": 10},
    "costliest_nodes": [
        {"node": "conv_1", "op": "Conv", "time_share": 0.31, "flops": 4.1e7},
        {"node": f"gemm {HOSTILE}", "op": "Gemm", "time_share": 0.12, "flops": 1.2e7},
    ],
}
