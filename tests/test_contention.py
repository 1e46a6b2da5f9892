"""Figures that contention does not move (issue 12 item 1).

Unit level: the uncontended cost, the spread read from the fast half, the reference-kernel
scale, and a projection that keeps its centre when the host's wall times triple. Real
subprocess: the worker records CPU time per call, contention signals per phase and the
interleaved reference kernel.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Any

from conftest import FAST, assert_no_traceback, run_mlfit
from mlfit.analysis.project import project_cpu
from mlfit.analysis.uncontended import (
    P95_SPREAD,
    dispersion,
    host_load,
    reference_scale,
    sample_p50,
    scaled_calibration,
    single_thread_cost,
    tail_spread,
)
from mlfit.catalog.loader import resolve_target
from mlfit.catalog.schema import Percentile
from mlfit.measure.host import host_info
from mlfit.measure.stats import latency_stats
from mlfit.measure.timing import LoopPolicy, timed_loop
from mlfit.records import Calibration, NodeProfile
from mlfit.result import (
    ColdStart,
    Contention,
    Measurement,
    MemoryPhases,
    PhaseContention,
    ReferenceKernel,
    Throughput,
)
from mlfit.resultfile import load_report

CALIBRATION = Calibration(
    gemm_flops={"1": 100e9, "2": 190e9},
    conv_flops={"1": 100e9, "2": 190e9},
    bandwidth={"1": 15e9, "2": 20e9},
    frequency_mhz=3000.0,
    peak_fp32_per_core=125e9,
    call_overhead_s=5e-6,
)


def _quiet(n: int = 700, ms: float = 2.0) -> list[int]:
    return [int(ms * 1e6 * (1 + 0.05 * math.sin(i))) for i in range(n)]


def _loaded(quiet: list[int]) -> list[int]:
    """Two of every three calls interrupted: three times as long, the rest untouched."""
    return [s * 3 if i % 3 else s for i, s in enumerate(quiet)]


def _measurement(wall: list[int], cpu: list[int], threads: int = 2, runnable: int = 1,
                 reference: float | None = None) -> Measurement:
    stats = latency_stats(wall).model_copy(update={"cpu_samples_ns": cpu})
    wall_s = sum(wall) / 1e9
    phase = PhaseContention(phase="measure", wall_s=wall_s, cpu_s=sum(cpu) / 1e9, threads=threads,
                            involuntary_switches=10 * runnable, runnable_before=runnable, runnable_after=runnable)
    ref = None if reference is None else ReferenceKernel(name="gemm", flops=1.0, flops_per_s=reference)
    return Measurement(
        runtime="onnxruntime", runtime_version="1.32.0", threads=threads, execution_provider="CPUExecutionProvider",
        cold_start=ColdStart(import_s=0.1, load_s=0.05, first_inference_s=0.01), latency=stats,
        memory=MemoryPhases(method="test", interpreter_bytes=20 << 20, runtime_baseline_bytes=60 << 20,
                            load_peak_bytes=80 << 20, inference_peak_bytes=90 << 20, peak_bytes=90 << 20),
        throughput=Throughput(single_stream_per_s=500.0),
        contention=Contention(phases=[phase], reference=ref),
    )


def _node_profile(scale: float = 1.0) -> NodeProfile:
    nodes = {
        "conv": {"op": "Conv", "inputs": [[1, 64, 56, 56], [64, 64, 3, 3]], "outputs": [[1, 64, 56, 56]],
                 "activation_bytes": 802816, "param_bytes": 147456, "output_bytes": 802816},
        "add": {"op": "Add", "inputs": [[1, 64, 56, 56], [1, 64, 56, 56]], "outputs": [[1, 64, 56, 56]],
                "activation_bytes": 1605632, "param_bytes": 0, "output_bytes": 802816},
    }
    low = {"conv": 1800.0, "add": 150.0}
    by_threads = {
        # the medians are what contention inflates; the fast fifth is what it leaves alone
        "1": {"runs": 20, "run_us": 2500 * scale, "nodes_us": 2200 * scale, "overhead_us": 60 * scale,
              "node_us": {"conv": 2000 * scale, "add": 200 * scale}, "nodes_us_low": 1950.0,
              "overhead_us_low": 40.0, "node_us_low": low},
        "2": {"runs": 20, "run_us": 2000 * scale, "nodes_us": 1800 * scale, "overhead_us": 60 * scale,
              "node_us": {"conv": 1650 * scale, "add": 150 * scale}, "nodes_us_low": 1500.0 * scale,
              "overhead_us_low": 40.0, "node_us_low": {"conv": 1400 * scale, "add": 100 * scale}},
    }
    return NodeProfile.model_validate({"runtime_version": "1.32.0", "by_threads": by_threads, "nodes": nodes})


def test_timed_loop_records_cpu_time_next_to_wall_time() -> None:
    cpu: list[int] = []

    def work(_: Any) -> None:
        end = time.perf_counter() + 0.0005
        while time.perf_counter() < end:
            pass

    wall = timed_loop(work, [None], LoopPolicy(min_samples=20, min_time_s=0.0, max_time_s=1.0), cpu=cpu)
    assert len(wall) == len(cpu) >= 20
    # a busy-wait costs CPU time about equal to its wall time (never more than wall plus clock reads)
    assert all(c <= w + 2_000_000 for w, c in zip(wall, cpu, strict=True))
    assert sorted(cpu)[len(cpu) // 2] > 0.5 * sorted(wall)[len(wall) // 2]


def test_single_thread_cpu_time_is_the_uncontended_cost() -> None:
    quiet = _quiet()
    loaded = _loaded(quiet)
    m = _measurement(loaded, cpu=quiet, threads=1, runnable=3)  # CPU time: what the calls cost
    assert abs(sample_p50(m) - sorted(quiet)[349] / 1e9) < 1e-9
    assert (m.latency.p50 or 0) > 2 * sample_p50(m)  # the wall median is the contended one


def test_spread_comes_from_the_fast_half_and_never_exceeds_what_was_seen() -> None:
    quiet = _quiet()
    spread_quiet = dispersion(_measurement(quiet, cpu=quiet))
    spread_loaded = dispersion(_measurement(_loaded(quiet), cpu=_loaded(quiet)))
    assert spread_quiet[Percentile.P50] == 1.0
    for p in (Percentile.P90, Percentile.P95, Percentile.P99):
        observed = sorted(quiet)[math.ceil(p.quantile * 700) - 1] / sorted(quiet)[349]
        assert 1.0 <= spread_quiet[p] <= observed + 1e-9
        assert spread_loaded[p] < 1.5  # the loaded wall p95 is 3x its median; the uncontended spread is not


def test_host_load_says_how_busy() -> None:
    quiet = _quiet()
    calm = host_load(_measurement(quiet, cpu=quiet, runnable=1), cores=2, uncontended_p50=sorted(quiet)[349] / 1e9)
    busy = host_load(_measurement(_loaded(quiet), cpu=quiet, runnable=5), cores=2,
                     uncontended_p50=sorted(quiet)[349] / 1e9)
    assert calm is not None and busy is not None
    assert calm.busy < 0.1 and busy.busy == 1.0
    assert "5 runnable tasks on 2 cores" in busy.describe() and "x the uncontended cost" in busy.describe()


def test_reference_kernel_scales_the_calibration() -> None:
    quiet = _quiet()
    m = _measurement(quiet, cpu=quiet, reference=80e9)
    scale = reference_scale(m, CALIBRATION)
    assert scale is not None and abs(scale - 0.8) < 1e-9
    scaled = scaled_calibration(CALIBRATION, scale)
    assert scaled.gemm_flops["1"] == 80e9 and scaled.call_overhead_s == 5e-6 / 0.8
    # the host's efficiency (rate over peak) is what it was: a neighbour slows the host, not its design
    assert scaled.peak_fp32_per_core is not None
    assert scaled.gemm_flops["1"] / scaled.peak_fp32_per_core == 100e9 / 125e9
    assert reference_scale(_measurement(quiet, cpu=quiet), CALIBRATION) is None


def test_single_thread_cost_from_the_fast_fifth() -> None:
    assert single_thread_cost(_node_profile()) == (1950.0 + 40.0) / 1e6
    schema_1 = NodeProfile.model_validate({"by_threads": {"1": {"nodes_us": 5.0}}})  # no fast-fifth figures
    assert single_thread_cost(schema_1) is None
    assert single_thread_cost(None) is None


def test_projection_centre_stays_when_the_host_is_loaded() -> None:
    """The same model measured quiet and under load (wall times tripled for two calls in three, node
    medians inflated 1.5x, four runnable tasks): the projected p95 moves by far less than 25%."""
    target = resolve_target("weak-cpu")
    quiet = _quiet()
    calm = project_cpu(target, _measurement(quiet, cpu=quiet), _node_profile(), None, CALIBRATION, host_info())
    busy = project_cpu(target, _measurement(_loaded(quiet), cpu=_loaded(quiet), runnable=5),
                       _node_profile(scale=1.5), None, CALIBRATION, host_info())
    for p in (Percentile.P50, Percentile.P95):
        ratio = busy.latency[p].value / calm.latency[p].value
        assert 0.9 < ratio < 1.1, (p, ratio)
        # load widens the band, it does not move it
        assert busy.latency[p].upper >= calm.latency[p].upper and busy.latency[p].lower <= calm.latency[p].lower
    assert any("host load while measuring" in n for n in busy.notes)
    assert "single-thread node profile" in busy.method


def test_worker_records_cpu_time_contention_and_reference(tmp_path: Path, small_cnn_model: Path) -> None:
    out = tmp_path / "r.json"
    run = run_mlfit("check", small_cnn_model, "--target", "weak-cpu", "--json", out, *FAST)
    assert_no_traceback(run)
    result = load_report(out).results[0]
    m = result.measurement
    assert m is not None and m.contention is not None
    assert len(m.latency.cpu_samples_ns) == m.latency.n
    phases = {p.phase for p in m.contention.phases}
    assert {"warmup", "measure", "profile"} <= phases
    measure = m.contention.phase("measure")
    assert measure is not None and measure.wall_s > 0 and measure.cpu_s > 0 and measure.runnable_before
    assert m.contention.reference is not None and m.contention.reference.flops_per_s > 1e8
    raw = json.loads(out.read_text())
    assert raw["schema_version"] >= 2
    notes = result.targets[0].notes
    assert any("host load while measuring" in n for n in notes)


def test_tail_spread_keeps_the_centre_in_the_quiet_range_and_the_band_covers_a_real_tail() -> None:
    quiet = _quiet()
    flat = tail_spread(_measurement([2_000_000] * 700, cpu=[2_000_000] * 700))
    assert flat[Percentile.P50] == (1.0, 1.0, 1.0)
    lo, mid, hi = flat[Percentile.P95]
    assert (lo, hi) == (P95_SPREAD[0], P95_SPREAD[3]) and mid == P95_SPREAD[1]  # no spread: the quiet floor
    # every call disturbed, a long tail that is the neighbours': the centre stays in the quiet range
    noisy = [s * (1 + 3 * (i % 4 != 0)) for i, s in enumerate(quiet)]
    lo, mid, hi = tail_spread(_measurement(noisy, cpu=noisy))[Percentile.P95]
    assert P95_SPREAD[1] <= mid <= P95_SPREAD[2] and hi >= P95_SPREAD[3] and lo == 1.0


def test_calls_of_a_few_microseconds_get_no_cpu_clock_reads(tmp_path: Path, tiny_model: Path) -> None:
    """The CPU clock would cost ~2% of such a call; the contention signals are still recorded."""
    out = tmp_path / "r.json"
    run = run_mlfit("profile", tiny_model, "--json", out, *FAST)
    assert_no_traceback(run)
    m = load_report(out).results[0].measurement
    assert m is not None and m.latency.n > 0 and m.latency.cpu_samples_ns == []
    assert m.contention is not None and m.contention.phase("measure") is not None
