"""The device model fitted on published measurements, the hardware facts it relies on, and the
thread and int8 rules (table-driven)."""

from __future__ import annotations

import math
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from mlfit.analysis import devicemodel as dm
from mlfit.analysis import devicevalidate as dv
from mlfit.analysis.graph import analyze_onnx
from mlfit.analysis.project import model_precision, project_cpu, project_gpu
from mlfit.catalog.loader import Target, resolve_hardware, resolve_target
from mlfit.catalog.schema import Percentile
from mlfit.checks.engine import latency_checks
from mlfit.measure.host import host_info
from mlfit.result import Provenance, Verdict
from mlfit.zoo import builders

ROOT = Path(__file__).resolve().parents[1]
TRUTH = ROOT / "benchmarks" / "device_truth.yaml"
# Reserved for independent validation (issue 21): never fitted, never in the table, not even as validation.
RESERVED = ("deepedgebench", "ultralytics", "deeplearningexamples", "q-engineering", "qengineering",
            "docs.ultralytics.com")

# ----------------------------------------------------------------------------- hardware facts

# (hardware id, field path, value in base units, a phrase its source must name)
FACTS = [
    ("rpi4-4gb", "cpu.frequency", 1.5e9, "B0 stepping"),
    ("rpi4-4gb", "cpu.peak_fp32", 48e9, "Cortex-A72"),
    ("rpi4-4gb-c0", "cpu.frequency", 1.8e9, "C0 stepping"),
    ("rpi4-4gb-c0", "cpu.peak_fp32", 57.6e9, "jeffgeerling.com"),
    ("jetson-orin-nano-8gb", "cpu.frequency", 1.5e9, "1.5 GHz"),
    ("jetson-orin-nano-8gb", "memory.bandwidth", 68e9, "68 GB/s"),
    ("jetson-orin-nano-8gb", "gpu.peak_fp32", 1.28e12, "625 MHz"),
    ("jetson-orin-nano-8gb-super", "cpu.frequency", 1.7e9, "CPU 1.7 GHz was 1.5"),
    ("jetson-orin-nano-8gb-super", "memory.bandwidth", 102e9, "102 GB/s was 68"),
    ("jetson-orin-nano-8gb-super", "gpu.peak_fp32", 2.09e12, "1.02 GHz"),
    ("jetson-orin-nano-8gb-super", "gpu.peak_int8", 33.5e12, "67 TOPS int8 sparse"),
    ("jetson-orin-nano-8gb-super", "gpu.bandwidth", 102e9, "Super Boost"),
]


def _field(hw: Any, path: str) -> tuple[float, str]:
    head, name = path.split(".")
    part = next(a for a in hw.accelerators if a.kind == "gpu") if head == "gpu" else getattr(hw, head)
    return float(getattr(part, name)), part.source


@pytest.mark.parametrize(("hw_id", "path", "value", "phrase"), FACTS)
def test_hardware_facts_are_pinned_to_their_sources(hw_id: str, path: str, value: float, phrase: str) -> None:
    got, source = _field(resolve_hardware(hw_id), path)
    assert got == pytest.approx(value, rel=1e-6)
    assert phrase in source


@pytest.mark.parametrize("hw_id", ["rpi4-4gb", "rpi4-4gb-c0", "jetson-orin-nano-8gb", "jetson-orin-nano-8gb-super"])
def test_revision_and_mode_are_named(hw_id: str) -> None:
    name = resolve_hardware(hw_id).name
    assert any(word in name for word in ("B0", "C0", "original mode", "Super mode")), name


def test_the_same_xeon_has_one_flop_per_cycle() -> None:
    """weak-cpu-2vcpu and t4-server name the same Xeon: equal FLOP per cycle per physical core."""
    per_cycle = {}
    for hw_id, physical in (("weak-cpu-2vcpu", 1), ("t4-server", 2)):
        cpu = resolve_hardware(hw_id).cpu
        assert "8259CL" in cpu.model
        per_cycle[hw_id] = float(cpu.peak_fp32) / (physical * float(cpu.frequency))
    assert per_cycle["weak-cpu-2vcpu"] == pytest.approx(per_cycle["t4-server"]) == pytest.approx(64)


# ----------------------------------------------------------------------------- rules, table-driven

def _structure() -> dm.Structure:
    return dm.Structure(dense_flops=1.1e9, depthwise_flops=4e7, other_bytes=3e7, kernels=100)


def _config(hw_id: str, threads: int = 4, precision: str = "fp32", runtime: str = "tflite") -> dm.Config:
    return dm.Config(dm.Device.from_hardware(resolve_hardware(hw_id)), runtime, precision, threads)


@pytest.mark.parametrize(
    ("hw_id", "runtime", "fewer", "more"),
    [
        ("rpi4-4gb", "tflite", 1, 4),
        ("rpi4-4gb", "onnxruntime", 1, 4),
        ("rpi4-4gb", "tflite", 2, 4),
        ("rpi5-8gb", "tflite", 1, 2),
        ("jetson-orin-nano-8gb", "onnxruntime", 2, 6),
    ],
)
def test_more_threads_never_project_slower(hw_id: str, runtime: str, fewer: int, more: int) -> None:
    params = dm.fitted()
    assert params is not None
    slow = dm.predict(_structure(), _config(hw_id, fewer, runtime=runtime), params).value
    fast = dm.predict(_structure(), _config(hw_id, more, runtime=runtime), params).value
    assert fast < slow


@pytest.mark.parametrize(("threads", "cores", "same_as"), [(8, 4, 4), (16, 6, 6)])
def test_threads_beyond_the_cores_are_capped(threads: int, cores: int, same_as: int) -> None:
    params = dm.fitted()
    assert params is not None
    hw_id = "rpi4-4gb" if cores == 4 else "jetson-orin-nano-8gb"
    capped = dm.predict(_structure(), _config(hw_id, threads), params).value
    assert capped == pytest.approx(dm.predict(_structure(), _config(hw_id, same_as), params).value)


@pytest.mark.parametrize(("threads", "sigma", "speedup"), [(1, 0.3, 1.0), (4, 0.0, 4.0), (4, 1 / 3, 2.0)])
def test_thread_speedup_formula(threads: int, sigma: float, speedup: float) -> None:
    assert dm.thread_speedup(threads, sigma) == pytest.approx(speedup)


@pytest.mark.parametrize(
    ("hw_id", "column"),
    [
        ("rpi4-4gb", "xnnpack-int8-no-dotprod"),  # Cortex-A72: no SDOT
        ("rpi4-4gb-c0", "xnnpack-int8-no-dotprod"),
        ("rpi5-8gb", "xnnpack-int8-dotprod"),  # Cortex-A76: SDOT
        ("jetson-orin-nano-8gb", "xnnpack-int8-dotprod"),  # Cortex-A78AE
        ("t4-server", "xnnpack-int8-dotprod"),  # Cascade Lake: AVX-512 VNNI
    ],
)
def test_int8_follows_the_dot_product_instructions(hw_id: str, column: str) -> None:
    config = _config(hw_id, precision="int8")
    assert column in config.columns()
    assert not any(c.endswith("fp16") for c in config.columns())


@pytest.mark.parametrize(
    ("hw_id", "runtime", "precision", "fp16_column"),
    [
        ("rpi5-8gb", "ncnn", "fp32", "ncnn-fp16-arith"),  # Cortex-A76: ARMv8.2 FP16, ncnn's default
        ("jetson-orin-nano-8gb", "ncnn", "fp32", "ncnn-fp16-arith"),  # Cortex-A78AE
        ("jetson-orin-nano-8gb-super", "ncnn", "fp32", "ncnn-fp16-arith"),
        ("rpi4-4gb", "ncnn", "fp32", None),  # Cortex-A72: ARMv8.0, no fp16 arithmetic
        ("rpi4-4gb-c0", "ncnn", "fp32", None),
        ("t4-server", "ncnn", "fp32", None),  # x86: no fp16 arithmetic in ncnn's CPU path
        ("rpi5-8gb", "onnxruntime", "fp32", None),  # ONNX Runtime and XNNPACK compute fp32 in fp32
        ("rpi5-8gb", "tflite", "fp32", None),
        ("jetson-orin-nano-8gb", "onnxruntime", "fp32", None),
        ("rpi5-8gb", "ncnn", "int8", None),  # int8 has its own column
    ],
)
def test_fp16_arithmetic_is_a_column_only_for_ncnn_on_fp16_cores(hw_id: str, runtime: str, precision: str,
                                                                   fp16_column: str | None) -> None:
    columns = _config(hw_id, precision=precision, runtime=runtime).columns()
    assert [c for c in columns if "fp16" in c] == ([fp16_column] if fp16_column else [])


def test_the_a76_core_factor_is_not_ncnns_fp16_gain() -> None:
    """ncnn's fp16 gain sits in its own column: ONNX Runtime fp32 on the Pi 5 is projected slower than
    ncnn on the same core (before, the A76 core factor absorbed the fp16 gain: 0.44x)."""
    params = dm.fitted()
    assert params is not None
    assert params.offsets["ncnn-fp16-arith"] < math.log(0.8)
    assert params.offsets["core:Cortex-A76"] > math.log(0.6)
    ort = dm.predict(_structure(), _config("rpi5-8gb", runtime="onnxruntime"), params).value
    ncnn = dm.predict(_structure(), _config("rpi5-8gb", runtime="ncnn"), params).value
    assert ort > 1.4 * ncnn


def test_every_projection_carries_an_unseen_source_widening_set_by_its_backing() -> None:
    """A column only one source backs (the A76 core: ncnn's rows) takes the single-source widening; the
    Pi 4's XNNPACK fp32 column, backed by two sources that disagree, the multi-source one beside their
    spread, and the two together are no narrower than the single-source one alone (they disagree)."""
    params = dm.fitted()
    assert params is not None and params.unseen_source_log > 0
    for hw_id in ("rpi5-8gb", "weak-cpu-2vcpu"):
        pred = dm.predict(_structure(), _config(hw_id), params)
        assert pred.sources_behind == 1 and pred.widenings[dm.UNSEEN_SOURCE_KEY] == params.one_source_log
    # ONNX Runtime has no row: no source behind its column, never a narrower widening than one source
    ort = dm.predict(_structure(), _config("rpi5-8gb", runtime="onnxruntime"), params)
    assert ort.sources_behind == 0 and ort.widenings[dm.UNSEEN_SOURCE_KEY] == params.unseen_source_log
    assert params.unseen_source_log >= params.one_source_log >= params.multi_source_log
    pi4 = dm.predict(_structure(), _config("rpi4-4gb"), params)
    assert pi4.sources_behind == 2 and dm.UNSEEN_SOURCE_KEY not in pi4.widenings
    multi = [h for k, h in pi4.widenings.items() if k.startswith(dm.MULTI_SOURCE_KEY)]
    spread = [h for k, h in pi4.widenings.items() if k.startswith(dm.SPREAD_KEY) and "xnnpack-fp32" in k]
    assert multi == [params.multi_source_log] and len(spread) == 1
    # the centre sits at the maintainers' level; the user's build, 2.3x off it, stays inside
    assert math.hypot(multi[0], spread[0]) >= params.offsets["source:issue-814"]
    int8 = dm.predict(_structure(), _config("rpi4-4gb", precision="int8"), params)
    assert int8.sources_behind == 1 and int8.widenings[dm.UNSEEN_SOURCE_KEY] == params.one_source_log


def _two_source_rows(level_b: float) -> tuple[list[tuple[dm.Structure, dm.Config, float]], list[str]]:
    """Rows of one configuration's column measured by two sources, the second ``level_b`` times slower,
    and an int8 column only the first source measured."""
    truth = dm.Params(16.0, 0.2, {"xnnpack-fp32": 0.0, "xnnpack-int8-no-dotprod": math.log(0.5)})
    shapes = [dm.Structure(1.1e9, 4e7, 3e7, 60), dm.Structure(6e8, 9e7, 8e7, 100)]
    rows, sources = [], []
    for source, level in (("a", 1.0), ("b", level_b)):
        for threads in (1, 4):
            for s in shapes:
                for precision in ("fp32", "int8") if source == "a" else ("fp32",):
                    c = _config("rpi4-4gb", threads, precision)
                    rows.append((s, c, level * dm.predict(s, c, truth).value))
                    sources.append(source)
    return rows, sources


@pytest.mark.parametrize("level_b", [1.0, 2.0])
def test_the_sources_behind_each_column_are_counted_and_their_disagreement_measured(level_b: float) -> None:
    rows, sources = _two_source_rows(level_b)
    params = dm.fit(rows, sources=sources)
    assert params.column_sources == {"xnnpack-fp32": 2, "xnnpack-int8-no-dotprod": 1}
    # the second source, against the fit's level (without its nuisance offset: none here), is the farthest
    assert params.column_spread["xnnpack-fp32"] == pytest.approx(math.log(level_b) / 2, abs=0.03)
    params = replace_params(params, unseen_source_log=math.log(2.0), one_source_log=math.log(2.0),
                            multi_source_log=math.log(1.2))
    fp32 = dm.predict(rows[0][0], _config("rpi4-4gb"), params)
    assert fp32.sources_behind == 2
    spread = sum(h for k, h in fp32.widenings.items() if k.startswith(dm.SPREAD_KEY))
    assert spread == pytest.approx(math.log(level_b) / 2, abs=0.03)
    # the int8 column has one source behind it: the single-source widening, whatever fp32's backing
    int8 = dm.predict(rows[0][0], _config("rpi4-4gb", precision="int8"), params)
    assert int8.widenings[dm.UNSEEN_SOURCE_KEY] == math.log(2.0)


def replace_params(p: dm.Params, **kw: Any) -> dm.Params:
    from dataclasses import replace

    return replace(p, **kw)


def test_sources_that_agree_get_the_narrower_calibrated_widening() -> None:
    """Leave-one-source-out rows: single-source ones 2x off, multi-source ones 10% off. The widening
    for the former covers 2x; the latter's is set from its own rows (the floor), never from the former."""
    base = {"validation residuals": 0.1}
    single = [(dm.Prediction(1.0, 0.9, 1.1, dict(base), (), 1), 2.0) for _ in range(10)]
    multi = [(dm.Prediction(1.0, 0.9, 1.1, dict(base), (), 3), 1.1) for _ in range(10)]
    _, unbacked, one, backed = dv.calibrate_widenings(single + multi)
    assert math.hypot(0.1, one) >= math.log(2.0)
    assert backed == dm.WIDENING_FLOOR < one <= unbacked  # knowing less never narrows the band
    # no row with two or more sources behind it: no evidence for a narrower widening
    assert dv.calibrate_widenings(single)[3] == dv.calibrate_widenings(single)[2]


def test_leave_one_source_out_never_sees_the_source() -> None:
    """Rows from two sources that disagree by 2x on the same configurations: each source's rows are
    predicted from the other one, so they are all 2x off, and the widening calibrated inside the
    other source alone cannot know it."""
    truth = dm.Params(16.0, 0.2, {"xnnpack-fp32": 0.0})
    shapes = [dm.Structure(1.1e9, 4e7, 3e7, 60), dm.Structure(6e8, 9e7, 8e7, 100)]
    rows, groups = [], []
    for group, level in (("a", 1.0), ("b", 2.0)):
        for threads in (1, 2, 4):
            for s in shapes:
                c = _config("rpi4-4gb", threads)
                rows.append((s, c, level * dm.predict(s, c, truth).value))
                groups.append(group)
    preds = dv.leave_group_out(rows, groups)
    ratios = [p.value / t for p, t in preds]
    assert all(r == pytest.approx(2.0, rel=0.05) for r in ratios[:6])
    assert all(r == pytest.approx(0.5, rel=0.05) for r in ratios[6:])


@pytest.mark.parametrize("residual", [0.0, 0.05, 0.3])
def test_calibrated_widenings_never_go_below_the_floor(residual: float) -> None:
    """Rows the fit predicts well still leave a column without a row at least x1.2 wide."""
    widen = {"validation residuals": 0.1, "no truth-table row for 'x-fp32' (prior)": 0.4}
    preds = [(dm.Prediction(1.0, 0.9, 1.1, widen), math.exp(residual)) for _ in range(10)]
    column, source, _, _ = dv.calibrate_widenings(preds)
    assert column >= dm.WIDENING_FLOOR and source >= 0
    assert math.sqrt(0.1**2 + column**2 + source**2) >= residual


def test_int8_on_the_pi4_is_faster_than_fp32_but_less_than_the_dotprod_prior() -> None:
    params = dm.fitted()
    assert params is not None
    fp32 = dm.predict(_structure(), _config("rpi4-4gb"), params).value
    int8 = dm.predict(_structure(), _config("rpi4-4gb", precision="int8"), params).value
    assert int8 < fp32
    # the Pi 5's int8 column has no XNNPACK row: it keeps its prior, and the band says so
    pi5 = dm.predict(_structure(), _config("rpi5-8gb", precision="int8"), params)
    assert "xnnpack-int8-dotprod" in pi5.unfitted
    assert any("xnnpack-int8-dotprod" in k for k in pi5.widenings)


def test_an_unmeasured_runtime_and_device_widen_the_band_by_name() -> None:
    params = dm.fitted()
    assert params is not None
    # (not the Pi 4's XNNPACK: its two sources disagree 2.3x, which widens its band as much)
    seen = dm.predict(_structure(), _config("rpi4-4gb-c0", runtime="ncnn"), params)
    unseen = dm.predict(_structure(), _config("weak-cpu-2vcpu", 2, runtime="onnxruntime"), params)
    assert unseen.upper / unseen.lower > seen.upper / seen.lower
    assert any("onnxruntime-fp32" in k for k in unseen.widenings)
    assert any("device weak-cpu-2vcpu" in k for k in unseen.widenings)


def test_gpu_launches_spread_over_the_batch() -> None:
    device = dm.Device.from_hardware(resolve_hardware("t4-server"), gpu=True)
    p = dm.Params(8.0, 0.2, {"gpu-int8": 0.0})
    one = dm.predict(_structure(), dm.Config(device, "tensorrt", "int8", 1, 1), p).value
    many = dm.predict(_structure(), dm.Config(device, "tensorrt", "int8", 1, 64), p).value
    assert one - many == pytest.approx(100 * p.launch_s * (1 - 1 / 64))


# ----------------------------------------------------------------------------- the fit


def test_fit_recovers_known_constants() -> None:
    """Rows generated from known constants (two devices, two runtimes, 1-4 threads): the fit finds them."""
    truth = dm.Params(16.0, 0.2, {"xnnpack-fp32": math.log(1.3), "ncnn-fp32": math.log(0.9),
                                  "core:Cortex-A76": math.log(0.5)})
    shapes = [dm.Structure(1.1e9, 4e7, 3e7, 60), dm.Structure(6e8, 9e7, 8e7, 100), dm.Structure(8e9, 0, 5e7, 120)]
    rows = []
    for hw_id in ("rpi4-4gb", "rpi5-8gb"):
        for runtime in ("xnnpack", "ncnn"):
            for threads in (1, 2, 4):
                for s in shapes:
                    c = _config(hw_id, threads, runtime=runtime)
                    rows.append((s, c, dm.predict(s, c, truth).value))
    got = dm.fit(rows)
    assert got.k_dw == pytest.approx(16.0)
    assert got.sigma == pytest.approx(0.2)
    for col, value in truth.offsets.items():
        assert got.offsets[col] == pytest.approx(value, abs=0.02)


def test_truth_table_rows_are_cited_and_never_reserved() -> None:
    table = yaml.safe_load(TRUTH.read_text())
    assert len(table["rows"]) >= 40
    for row in table["rows"]:
        source = table["sources"][row["source"]]
        assert source["url"].startswith("https://") and row["where"]
        for field in ("model", "device", "runtime", "precision", "threads", "batch", "input", "figure", "unit", "kind"):
            assert field in row, (row["id"], field)
        text = " ".join(str(v) for v in (*row.values(), *source.values())).lower().replace(" ", "")
        assert not any(name in text for name in RESERVED), row["id"]


@pytest.mark.slow
def test_committed_fit_matches_the_truth_table(tmp_path: Path) -> None:
    """_devicefit.py is the fit of the current table (regenerate with bench_devices.py --write-params)."""
    sys.path.insert(0, str(ROOT / "benchmarks"))
    import bench_devices

    meta, data = bench_devices.usable_rows(bench_devices.load_truth(), tmp_path)
    current = bench_devices.fit_all(data, [str(r["device"]) for r in meta])
    committed = dm.fitted()
    assert committed is not None
    assert committed.k_dw == current.k_dw and committed.sigma == current.sigma
    assert committed.offsets == pytest.approx(current.offsets)
    assert committed.band_log == pytest.approx(current.band_log)
    assert committed.unseen_device_log == pytest.approx(current.unseen_device_log)


# ----------------------------------------------------------------------------- wired into project()


@pytest.fixture(scope="module")
def mnv2_static(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    path = builders.save(builders.mobilenet_v2(), tmp_path_factory.mktemp("dm") / "mnv2.onnx")
    return analyze_onnx(path)


def _target(name: str, threads: int) -> Target:
    base = resolve_target(name)
    return Target(base.profile.model_copy(update={"threads": threads}), base.hardware, "test")


def test_projection_uses_the_device_model_and_the_targets_threads(mnv2_static: dict[str, Any]) -> None:
    from test_projection import CALIBRATION, _measurement

    m = _measurement(mean_s=0.01, threads=2).model_copy(update={"runtime": "tflite"})
    one = project_cpu(_target("edge", 1), m, None, mnv2_static, CALIBRATION, host_info())
    four = project_cpu(_target("edge", 4), m, None, mnv2_static, CALIBRATION, host_info())
    assert "device model" in four.method and four.details["device_model"]["threads"] == 4
    p50 = Percentile.P50
    assert four.latency[p50].value < one.latency[p50].value
    assert 0.02 < four.details["device_model"]["seconds"] < 0.12  # MobileNetV2 on a Pi 4, 4 threads
    # the projected median is the device model's figure; the host only gives the tail its shape
    assert four.latency[p50].value == pytest.approx(four.details["device_model"]["seconds"], rel=0.02)
    assert "factor_host_ratio" in four.details and four.details["band_sources"]
    # a quiet measurement: the band is the device model's own, whose widest part is the widening every
    # projection carries for a source the fit never saw (leave-one-source-out: x2.2, set by the two
    # XNNPACK sources that disagree 2.3x), and the note says so
    assert four.latency[p50].upper / four.latency[p50].lower < 6
    assert any("wide (over 3x" in n and "never saw" in n for n in four.notes), four.notes
    assert model_precision(mnv2_static) == "fp32"


def test_gpu_roofline_percentiles_are_not_withheld_for_host_samples(mnv2_static: dict[str, Any]) -> None:
    from test_projection import _measurement

    few = _measurement(mean_s=0.01).model_copy()
    few = few.model_copy(update={"latency": few.latency.model_copy(update={"p99": None, "n": 40})})
    target = resolve_target("jetson")
    projection = project_gpu(target, few, mnv2_static, host_info())
    assert projection is not None and not projection.from_host_timings
    checks = latency_checks(target, few, Provenance.PROJECTED, "roofline", projection)
    p99 = next(c for c in checks if c.metric == "latency.p99")
    assert "insufficient samples" not in (p99.reason or "")
    assert p99.verdict in (Verdict.PASS, Verdict.FAIL, Verdict.INCONCLUSIVE)


@pytest.mark.parametrize("runtime", ["tflite", "tensorflow"])
def test_whole_model_projection_follows_the_targets_threads(runtime: str) -> None:
    """No node profile and no static facts (a .tflite file): one shared 2-thread measurement on a busy
    host whose calibrated GEMM gained nothing from a second thread; the 4-thread target still projects
    faster than the 1-thread one."""
    from test_projection import CALIBRATION, _measurement

    flat = CALIBRATION.model_copy(update={"gemm_flops": {"1": 100e9, "2": 100e9}})
    m = _measurement(mean_s=0.02, threads=2).model_copy(update={"runtime": runtime})
    p50 = Percentile.P50
    by_threads = {t: project_cpu(_target("edge", t), m, None, None, flat, host_info()).latency[p50].value
                  for t in (1, 2, 4)}
    assert by_threads[4] < by_threads[2] < by_threads[1]


def test_a_band_wider_than_3x_is_explained() -> None:
    """A noisy host measurement widens the band past 3x: the result says so and names the widest parts."""
    from test_projection import CALIBRATION, _measurement

    noisy = _measurement(mean_s=0.02, threads=2, cv=0.9, unstable=True)
    p = project_cpu(_target("edge", 4), noisy, None, None, CALIBRATION, host_info())
    band = p.latency[Percentile.P95]
    assert band.upper / band.lower > 3
    assert any("wide (over 3x" in n and "widest parts" in n for n in p.notes), p.notes


@pytest.mark.parametrize(
    ("parameter_bytes", "precision", "peak", "path"),
    [
        ({"float32": 100}, "fp32", 8.1e12, "fp32"),
        ({"float16": 100, "float32": 4}, "fp16", 65e12, "fp16 tensor-core"),
        ({"int8": 100, "float32": 8}, "int8", 130e12, "int8 tensor-core"),
    ],
)
def test_gpu_roofline_takes_the_tensor_core_path_of_the_model_precision(
    parameter_bytes: dict[str, int], precision: str, peak: float, path: str
) -> None:
    from mlfit.analysis.project import gpu_path_peak

    acc = next(a for a in resolve_hardware("t4-server").accelerators if a.kind == "gpu")
    assert model_precision({"parameter_bytes": parameter_bytes}) == precision
    assert gpu_path_peak(acc, precision) == (pytest.approx(peak), path)


def test_a_matmul_dominated_model_is_outside_the_table_and_says_so(tmp_path: Path) -> None:
    params = dm.fitted()
    assert params is not None
    static = analyze_onnx(builders.save(builders.transformer_block(seq=64), tmp_path / "tb.onnx"))
    s = dm.Structure.from_static(static)
    assert s.matmul_flops > 0.5 * s.dense_flops
    pred = dm.predict(s, _config("rpi4-4gb"), params)
    assert any("MatMul-dominated" in k for k in pred.widenings)
    conv = dm.predict(_structure(), _config("rpi4-4gb"), params)
    assert not any("MatMul-dominated" in k for k in conv.widenings)
    # the GPU rows include BERT encoders (TensorRT demoBERT): a transformer on a GPU is inside the table
    assert "gpu" in params.matmul_kinds and "cpu" not in params.matmul_kinds
    gpu = dm.Device.from_hardware(resolve_hardware("t4-server"), gpu=True)
    on_gpu = dm.predict(s, dm.Config(gpu, "tensorrt", "fp16", 1, 8, fused_elementwise=True), params)
    assert not any("MatMul-dominated" in k for k in on_gpu.widenings)


def test_bert_encoder_matches_the_paper(tmp_path: Path) -> None:
    """BERT-base at 128 tokens: 12 blocks of 7.09M parameters and ~931M MACs each, 23.8M in embeddings
    (Devlin et al. 2019: 110M parameters); one block is built, the rest is the same block."""
    static = analyze_onnx(builders.save(builders.bert_encoder(layers=1), tmp_path / "bert1.onnx"))
    emb = (30522 + 128 + 1) * 768
    per_block = static["parameters"] - emb - 4 * 768  # the embeddings and their LayerNorm
    assert 12 * per_block + emb == pytest.approx(110e6, rel=0.03)
    assert 12 * static["macs"] == pytest.approx(11.17e9, rel=0.03)


def test_truth_table_rows_quote_their_figures() -> None:
    """Each row added for issue 21 (demoBERT) quotes the exact figure it took, where it took it."""
    table = yaml.safe_load(TRUTH.read_text())
    rows = [r for r in table["rows"] if r["source"] == "tensorrt-demobert"]
    assert len(rows) == 12
    for row in rows:
        assert str(row["figure"]) in row["where"] and f"Batch Size {row['batch']}" in row["where"]
        assert "007c34702bc7878285e3123eb39829a1f9aef3f0" in table["sources"][row["source"]]["url"]


def test_a_constant_the_rows_cannot_place_keeps_its_prior() -> None:
    """Rows of one model cannot tell a depthwise FLOP's cost from the runtime's offset: the fit keeps
    k_dw at its stated prior (before, the flat loss left it at an arbitrary grid point, 5.7 or 76)."""
    truth = dm.Params(8.0, 0.25, {"xnnpack-fp32": 0.0}, sigma_exp=0.5)
    s = dm.Structure(1.1e9, 4e7, 3e7, 60)
    rows = [(s, _config("rpi4-4gb", t), dm.predict(s, _config("rpi4-4gb", t), truth).value) for t in (1, 2, 4)]
    params = dm.fit(rows)
    assert params.k_dw == dm.DEFAULTS["k_dw"] and params.sigma_exp == dm.DEFAULTS["sigma_exp"]


def test_thread_contention_grows_with_the_devices_balance() -> None:
    """Rows at 1 and 4-6 threads on a thin-memory board (Pi 5: 4.3 FLOP/B per core) and a wide one
    (Orin Nano: 0.35): the fit finds contention growing with balance, and projects the Orin's threads
    to scale better than the Pi 5's (one sigma for all, before, gave them the same contention)."""
    truth = dm.Params(8.0, 0.25, {"ncnn-fp32": 0.0}, sigma_exp=0.5)
    rows = []
    for hw_id, many in (("rpi5-8gb", 4), ("jetson-orin-nano-8gb", 6), ("rpi4-4gb", 4)):
        for s in (dm.Structure(1.1e9, 4e7, 3e7, 60), dm.Structure(4e9, 0.0, 1e8, 120)):
            for t in (1, many):
                c = _config(hw_id, t, runtime="ncnn")
                rows.append((s, c, dm.predict(s, c, truth).value))
    params = dm.fit(rows)
    assert params.sigma_exp == pytest.approx(0.5, abs=0.13)
    pi5 = dm.Device.from_hardware(resolve_hardware("rpi5-8gb"))
    orin = dm.Device.from_hardware(resolve_hardware("jetson-orin-nano-8gb"))
    assert params.sigma_for(orin) < params.sigma < params.sigma_for(pi5)
    committed = dm.fitted()
    assert committed is not None and committed.sigma_for(orin) < committed.sigma_for(pi5)


def _fusion_graph(tmp_path: Path) -> dict[str, Any]:
    """Conv->Relu (fused), Conv->HardSwish, Add->Relu, and a Conv whose output a Relu and an Add
    both read (its Relu cannot be fused: the unclamped output is needed too)."""
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    w = numpy_helper.from_array(np.ones((4, 4, 1, 1), dtype=np.float32), "w")
    nodes = [
        helper.make_node("Conv", ["x", "w"], ["c1"], name="conv1"),
        helper.make_node("Relu", ["c1"], ["r1"], name="relu_after_conv"),
        helper.make_node("Conv", ["r1", "w"], ["c2"], name="conv2"),
        helper.make_node("HardSwish", ["c2"], ["h2"], name="hardswish_after_conv"),
        helper.make_node("Add", ["h2", "r1"], ["a3"], name="add"),
        helper.make_node("Relu", ["a3"], ["r3"], name="relu_after_add"),
        helper.make_node("Conv", ["r3", "w"], ["c4"], name="conv4"),
        helper.make_node("Relu", ["c4"], ["r4"], name="relu_of_a_shared_output"),
        helper.make_node("Add", ["r4", "c4"], ["y"], name="add2"),
    ]
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4, 8, 8])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4, 8, 8])
    model = helper.make_model(helper.make_graph(nodes, "g", [x], [y], [w]),
                              opset_imports=[helper.make_opsetid("", 17)])
    onnx.save(model, tmp_path / "fusion.onnx")
    return analyze_onnx(tmp_path / "fusion.onnx")


@pytest.mark.parametrize(("name", "fused"), [
    ("relu_after_conv", True),  # every runtime clamps in the convolution's epilogue
    ("hardswish_after_conv", False),  # ONNX Runtime runs hard-swish as its own kernel
    ("relu_after_add", False),  # not after a convolution or a matrix product
    ("relu_of_a_shared_output", False),  # the unclamped output is read too
])  # fmt: skip
def test_activations_fused_into_their_convolution_are_marked(tmp_path: Path, name: str, fused: bool) -> None:
    static = _fusion_graph(tmp_path)
    node = next(n for n in static["nodes"] if n["name"] == name)
    assert bool(node.get("fused")) is fused
    s = dm.Structure.from_static(static)
    # the split is information: the published fit still counts fused activations in other_bytes
    assert s.fused_kernels == 1 and s.fused_bytes == _node_bytes(static, "relu_after_conv") < s.other_bytes


def _node_bytes(static: dict[str, Any], name: str) -> float:
    n = next(n for n in static["nodes"] if n["name"] == name)
    return float(n["bytes_read"] + n["bytes_written"])
