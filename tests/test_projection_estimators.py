"""The projection never passes what the device cannot run (issue 21 items 1, 2, 5, 6).

Pure tests of how the two estimators are combined (analysis.project.estimators), then real runs of
the issue's motivating models, built here: an int8 dynamically quantized CRNN (Conv + LSTM through
onnxruntime.quantization.quantize_dynamic), a random forest converted with skl2onnx, a transformer
encoder block and a model made only of ops without a static cost. Each is measured once on this
host and projected to the Raspberry Pi 4 (edge) and the 2-vCPU VM (weak-cpu)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest

import op_family_models as fam
from conftest import FAST
from mlfit import api
from mlfit.analysis.graph import analyze_onnx
from mlfit.analysis.project import project
from mlfit.analysis.project.bands import load_note, uncontended_bands
from mlfit.analysis.project.estimators import BOTH, DEVICE, HOST, HOST_FLOOR, Floors, HostNode, combine
from mlfit.analysis.project.types import Band
from mlfit.analysis.uncontended import BUSY_WIDENING, host_load, tail_spread
from mlfit.catalog.schema import Percentile
from mlfit.checks.engine import latency_checks
from mlfit.options import MeasureOptions
from mlfit.result import Provenance, RunResult, Verdict

_STATIC = {"nodes": [
    {"name": "conv", "op": "Conv", "flops": 1e6, "cost_known": True},
    {"name": "lstm", "op": "com.microsoft::DynamicQuantizeLSTM", "flops": 0, "cost_known": False},
]}
_HOST_NODES = [HostNode("conv", "FusedConv", 100.0, 0.8e-3, 1e-3, 1.2e-3),
               HostNode("lstm", "DynamicQuantizeLSTM", 300.0, 2.4e-3, 3e-3, 3.6e-3)]
_DEVICE_NODES = [("conv", "Conv", 1e-3), ("lstm", "com.microsoft::DynamicQuantizeLSTM", 1e-5)]


def test_ops_without_a_static_cost_take_their_host_scaled_time() -> None:
    c = combine(_STATIC, Band(1.01e-3, 0.5e-3, 2e-3), _DEVICE_NODES, Band(4e-3, 3e-3, 5e-3), _HOST_NODES, Floors())
    unseen = c.record["unseen"]
    assert unseen["ops"] == ["DynamicQuantizeLSTM"] and unseen["host_share"] == pytest.approx(0.75)
    assert c.seconds.value == pytest.approx(1.01e-3 + 3e-3)  # the device model plus the unseen op, host-scaled
    assert c.estimator == DEVICE and "75% of this host's time" in " ".join(c.notes)
    assert "ops without a static cost (host-scaled)" in c.sources
    assert sum(t for _, _, t in c.per_node) == pytest.approx(c.seconds.value)


def test_estimators_that_disagree_give_a_band_spanning_both_and_name_the_ops() -> None:
    static = {"nodes": [{"name": "conv", "op": "Conv", "flops": 1e6, "cost_known": True}]}
    host = [HostNode("conv", "FusedConv", 100.0, 8e-3, 10e-3, 12e-3)]
    c = combine(static, Band(1e-3, 0.8e-3, 1.25e-3), [("conv", "Conv", 1e-3)], Band(10e-3, 8e-3, 12e-3), host,
                Floors())
    assert c.estimator == BOTH and c.label.startswith(f"{BOTH}, x10.0 apart")
    assert c.seconds.lower == pytest.approx(0.8e-3) and c.seconds.upper == pytest.approx(12e-3)
    assert c.seconds.value == pytest.approx(math.sqrt(1e-3 * 10e-3))
    assert c.record["agree"] is False and c.record["ops"][0].startswith("Conv (host-scaled 10 ms")
    assert "a verdict only the device model would give is INCONCLUSIVE" in " ".join(c.notes)



def test_a_device_model_adapted_to_rows_measured_on_the_device_decides_a_disagreement() -> None:
    """Rows measured on the target itself (``mlfit truth fit``) outrank the hardware file's figures the
    host-scaled estimate rests on: its centre and band are the adapted model's, the gap is told."""
    static = {"nodes": [{"name": "conv", "op": "Conv", "flops": 1e6, "cost_known": True}]}
    host = [HostNode("conv", "FusedConv", 100.0, 0.8e-3, 1e-3, 1.2e-3)]
    c = combine(static, Band(3e-3, 2.5e-3, 3.6e-3), [("conv", "Conv", 3e-3)], Band(1e-3, 0.8e-3, 1.2e-3), host,
                Floors(), device_rows=5)
    assert c.estimator == DEVICE and c.seconds == Band(3e-3, 2.5e-3, 3.6e-3)
    assert c.record["agree"] is False and c.record["overruled_by_device_rows"] == 5
    assert "adapted to 5 rows measured on this device" in " ".join(c.notes)

def test_a_model_of_uncosted_ops_is_host_scaled_and_floors_hold() -> None:
    static = {"nodes": [{"name": "enc", "op": "ai.onnx.ml::LabelEncoder", "flops": 10, "cost_known": False}]}
    host = [HostNode("enc", "LabelEncoder", 50.0, 4e-5, 5e-5, 6e-5)]
    c = combine(static, Band(1e-7, 5e-8, 2e-7), [("enc", "LabelEncoder", 1e-7)], Band(5e-5, 4e-5, 6e-5), host,
                Floors(roofline=0.0, host=8e-5, host_fastest=8e-5, host_reason="weaker"))
    assert c.estimator == HOST and c.label == HOST
    assert c.seconds.value == pytest.approx(8e-5) and c.seconds.lower == pytest.approx(8e-5)
    assert c.record["floored"] == "this host's uncontended cost"
    roof = combine(None, None, [], Band(1e-6, 1e-6, 2e-6), [], Floors(roofline=3e-6))
    assert roof.seconds.value == pytest.approx(3e-6) and roof.record["floored"].startswith("the roofline")


# ---- real models, measured once ---------------------------------------------------------------


@pytest.fixture(scope="module")
def built(models_dir: Path, transformer_model: Path) -> dict[str, tuple[Path, dict[str, Any]]]:
    crnn = fam.quantize_int8(fam.save(fam.crnn(), models_dir / "crnn21.onnx"), models_dir / "crnn21_int8.onnx")
    return {
        "crnn_int8": (crnn, {}),
        "forest": (fam.save(fam.random_forest(trees=60, depth=8), models_dir / "forest21.onnx"), {}),
        "transformer": (transformer_model, {"dims": {"seq": 32}, "ranges": {"input_ids": (0, 500)}}),
        "uncosted": (fam.save(fam.uncosted_chain(), models_dir / "chain21.onnx"), {"ranges": {"x": (0, 64)}}),
    }


@pytest.fixture(scope="module")
def results(built: dict[str, tuple[Path, dict[str, Any]]]) -> dict[str, RunResult]:
    opts = MeasureOptions(min_time=float(FAST[1]), max_time=float(FAST[3]), warmup=int(FAST[5]))
    out = {}
    for name, (path, kw) in built.items():
        r = api.check(path, ["edge", "weak-cpu"], options=opts, **kw)
        assert r.error is None, r.error
        out[name] = r
    return out


@pytest.mark.parametrize("name", ["crnn_int8", "forest", "transformer", "uncosted"])
def test_no_projection_is_faster_than_physics_allows(results: dict[str, RunResult], name: str) -> None:
    """Issue 21: projected / this host's fastest call >= 1.0 on the Pi 4, >= 1/3 on the 2-vCPU VM
    (before: the int8 CRNN 0.79 and 0.23, the forest 0.37 and 0.22 on this host)."""
    r = results[name]
    assert r.measurement is not None
    fastest = r.measurement.latency.min
    wanted = {"edge": 1.0, "weak-cpu": 1 / 3}
    for t in r.targets:
        assert t.projection is not None
        p50 = t.projection.latency["p50"]
        assert p50.value / fastest >= wanted[t.target], (name, t.target, p50.value, fastest, t.projection.method)


@pytest.mark.parametrize("name", ["crnn_int8", "forest", "transformer", "uncosted"])
def test_per_op_times_add_up_to_the_centre_and_the_method_is_named(results: dict[str, RunResult], name: str) -> None:
    for t in results[name].targets:
        p = t.projection
        assert p is not None
        per_op = p.details.per_op
        assert per_op and sum(o.seconds for o in per_op) == pytest.approx(p.latency["p50"].value, rel=1e-9)
        assert [o.op for o in p.top_ops] == [o.op for o in per_op[:len(p.top_ops)]]
        assert p.estimator in (DEVICE, HOST, BOTH) and p.method.startswith(p.estimator)
        est = p.details.estimators
        assert est is not None and est.estimator == p.estimator
        latency = [c for c in t.checks if c.metric.startswith("latency.")]
        assert latency and all(c.method.startswith(p.estimator) for c in latency)


def test_a_model_of_uncosted_ops_gets_a_host_scaled_projection(results: dict[str, RunResult]) -> None:
    r = results["uncosted"]
    facts = r.analysis or {}
    assert facts["shape_inference"]["nodes_with_unknown_cost"] == facts["node_count"]
    for t in r.targets:
        assert t.projection is not None and t.projection.estimator == HOST
        assert t.projection.method.startswith("host-scaled")
        assert any("no op of this model has a static cost model" in n for n in t.projection.notes)
        assert t.projection.latency["p50"].value > 0


def test_int8_crnn_a_verdict_only_the_optimistic_estimator_gives_is_not_pass(
        results: dict[str, RunResult], built: dict[str, tuple[Path, dict[str, Any]]]) -> None:
    """Re-projected in process from the run's own figures (deterministic), with a p50 budget between
    the two estimators: never PASS when they disagree."""
    r = results["crnn_int8"]
    assert r.measurement is not None and r.calibration is not None and r.host is not None
    static = analyze_onnx(built["crnn_int8"][0])
    target = api.resolve_targets(["edge"])[0]
    p = project(target, r.measurement, r.node_profile, static, r.calibration, r.host)
    assert p is not None
    est = p.details["estimators"]
    assert est["unseen"]["ops"] == [], est["unseen"]  # every op of the int8 CRNN now has a static cost
    if est["agree"]:
        pytest.skip("the two estimators agree on this host")
    low, high = sorted([est["device_model"], est["host_scaled"]], key=lambda b: b["value"])
    limit = math.sqrt(low["upper"] * high["lower"]) if high["lower"] > low["upper"] else high["value"]
    budgeted = api.resolve_targets(["edge"], budgets=[f"latency.p50={limit * 1e3:.6f}ms"])[0]
    checks = latency_checks(budgeted, r.measurement, Provenance.PROJECTED, p.method, p)
    p50 = next(c for c in checks if c.metric == "latency.p50")
    assert p50.verdict is not Verdict.PASS, (p50, est)
    assert "disagree beyond their bands; the band spans both" in p50.reason, p50.reason
    assert p.latency[Percentile.P50].upper >= high["upper"] * 0.999


def test_every_reporter_shows_the_one_projection_with_its_method(results: dict[str, RunResult]) -> None:
    """Terminal, Markdown and HTML read the same projection: the terminal's source names the estimator
    compactly; the Markdown and HTML per-op tables are the projection's per_op, which adds up to its p50."""
    from rich.console import Console

    from mlfit.catalog.units import format_duration
    from mlfit.report.html import render_html
    from mlfit.report.markdown import render_markdown
    from mlfit.report.styles import method_tag
    from mlfit.report.terminal import render_wide
    from mlfit.result import Report

    r = results["crnn_int8"]
    report = Report(mlfit_version="test", created="now", results=[r])
    console = Console(width=200, record=True, color_system=None)
    console.print(render_wide(report))
    text = console.export_text()
    markdown = render_markdown(report)
    html = render_html(report)
    for t in r.targets:
        p = t.projection
        assert p is not None
        check = next(c for c in t.checks if c.metric.startswith("latency."))
        tag = method_tag(check)
        assert tag in ("dm", "host") or tag.startswith("dm+host x"), tag
        assert f"projected ({tag})" in text and f"projected ({tag})" in markdown
        assert f"they add up to the projected p50, {format_duration(p.latency['p50'].value)}" in markdown
        top = p.details.per_op[0]
        assert format_duration(top.seconds) in markdown and format_duration(top.seconds) in html



def _busy(m: Any) -> Any:
    """The same measurement as if eight tasks had been runnable on this host's cores (busy = 1)."""
    assert m.contention is not None
    phases = [p.model_copy(update={"runnable_before": 8, "runnable_after": 8}) for p in m.contention.phases]
    return m.model_copy(update={"contention": m.contention.model_copy(update={"phases": phases})})


def test_only_a_centre_this_host_timed_is_a_median_from_the_host() -> None:
    """Issue 24: whether this host's load can move the centre, per way the two estimators combine."""
    static = {"nodes": [{"name": "conv", "op": "Conv", "flops": 1e6, "cost_known": True}]}
    host = [HostNode("conv", "FusedConv", 100.0, 0.8e-3, 1e-3, 1.2e-3)]
    agreed = combine(static, Band(1e-3, 0.5e-3, 2e-3), [("conv", "Conv", 1e-3)], Band(1e-3, 0.8e-3, 1.2e-3), host,
                     Floors())
    assert agreed.estimator == DEVICE and not agreed.median_from_host
    adapted = combine(static, Band(3e-3, 2.5e-3, 3.6e-3), [("conv", "Conv", 3e-3)], Band(1e-3, 0.8e-3, 1.2e-3),
                      host, Floors(), device_rows=5)
    assert not adapted.median_from_host
    apart = combine(static, Band(1e-3, 0.8e-3, 1.25e-3), [("conv", "Conv", 1e-3)], Band(10e-3, 8e-3, 12e-3), host,
                    Floors())
    unseen = combine(_STATIC, Band(1.01e-3, 0.5e-3, 2e-3), _DEVICE_NODES, Band(4e-3, 3e-3, 5e-3), _HOST_NODES,
                     Floors())
    raised = combine(static, Band(1e-3, 0.5e-3, 2e-3), [("conv", "Conv", 1e-3)], Band(1e-3, 0.8e-3, 1.2e-3), host,
                     Floors(host=5e-3, host_fastest=4e-3, host_reason="weaker"))
    assert raised.record["floored"] == HOST_FLOOR
    assert apart.median_from_host and unseen.median_from_host and raised.median_from_host


def test_host_load_widens_only_a_median_that_comes_from_this_host(results: dict[str, RunResult]) -> None:
    """Issue 24 (why a variant's band was 12.7x wide): a device model's median is its own figure, so the
    busy widening (x0.85-x1.2, for how far load moves this host's uncontended estimate) does not belong
    in any of its percentiles: the tails' shape from this host's samples keeps its own band (no tail ..
    the larger of the largest quiet spread and the measured one). Before, every percentile of a device
    median was widened (an adapted one's tails only: their optimistic end below the p50's). A median
    from this host keeps it."""
    r = results["transformer"]
    assert r.measurement is not None
    m = _busy(r.measurement)
    base, factor = 2e-3, Band(5.0, 2.0, 12.0)
    spread = tail_spread(m)
    load = host_load(m, 2, base)
    assert load is not None and load.busy == 1.0
    device = uncontended_bands(m, factor, base, load, median_from_host=False)
    hosted = uncontended_bands(m, factor, base, load, median_from_host=True)
    lo_w, hi_w = BUSY_WIDENING
    for p, (lo_s, mid_s, hi_s) in spread.items():
        if p not in device:
            continue
        want = (base * mid_s * factor.value, base * lo_s * factor.lower, base * hi_s * factor.upper)
        d, h = device[p], hosted[p]
        assert (d.value, d.lower, d.upper) == pytest.approx(want), p
        assert (h.value, h.lower, h.upper) == pytest.approx((want[0], want[1] * (1 - lo_w), want[2] * (1 + hi_w))), p
    assert device[Percentile.P95].lower >= device[Percentile.P50].lower
    notes: list[str] = []
    load_note(load, base, m, {}, notes, {}, median_from_host=False)
    assert "the band is not widened for it" in notes[0] and "x0.85" not in notes[0]
    load_note(load, base, m, {}, notes, {}, median_from_host=True)
    assert "the band is widened x0.85-x1.20 for it" in notes[1]
