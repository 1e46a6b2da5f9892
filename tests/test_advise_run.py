"""check --suggest on real models: every variant kind built and compared by the real child, the
accuracy guard refusing an int8 build that changes the argmax, a conversion that fails, the time
budget ending the search, and --write-variants files that reproduce their figure."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from onnx import TensorProto, helper

from conftest import FAST, assert_no_traceback, run_cli
from mlfit.advise import SuggestOptions
from mlfit.advise.spawn import run_child
from mlfit.api import _run_one, resolve_targets
from mlfit.catalog.loader import Target
from mlfit.errors import ExitCode, ModelError
from mlfit.inputspec import InputSpec
from mlfit.options import MeasureOptions
from mlfit.zoo import builders
from mlfit.zoo.builders import GraphBuilder

QUICK = MeasureOptions(min_time=0.2, max_time=2.0, warmup=2)


def _tied_classifier() -> builders.onnx.ModelProto:
    """Ten classes whose logits differ by ~1e-3 of their size: int8 rounding visibly moves the argmax."""
    b = GraphBuilder(3)
    hidden = b.node("Relu", [b.node("MatMul", ["x", b.weight((64, 64))])])
    rng = np.random.default_rng(1)
    w2 = (rng.standard_normal((64, 1)) + 1e-3 * rng.standard_normal((64, 10))).astype(np.float32)
    b.node("MatMul", [hidden, b.constant(w2)])
    b.nodes[-1].output[0] = "logits"
    return b.model([helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 64])],
                   [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, 10])], "tied")


@pytest.fixture(scope="module")
def mlp_model(models_dir: Path) -> Path:
    return builders.save(builders.mlp(features=32, hidden=(64, 64), classes=10, batch=1), models_dir / "mlp.onnx")


def _one_core(name: str, *budgets: str) -> Target:
    """A built-in target on a one-core copy of its hardware: no thread variants, so the search
    tries the model builds only (quick)."""
    target = resolve_targets([name], budgets=budgets)[0]
    cpu = target.hardware.cpu.model_copy(update={"cores": 1})
    return replace(target, hardware=target.hardware.model_copy(update={"cpu": cpu}),
                   profile=target.profile.model_copy(update={"threads": 1}))


def _build_and_compare(tmp_path: Path, source: Path, fmt: str, runtime: str, kind: str,
                       spec: InputSpec) -> dict[str, object]:
    out = tmp_path / f"variant.{'tflite' if kind.startswith('tflite') else 'onnx'}"
    common = {"trust_model": False, "trust_types": [], "signature": "serving_default",
              "input_spec": spec.model_dump(mode="json")}
    built = run_child({"action": "build", "kind": kind, "source": str(source), "format": fmt, "output": str(out),
                       **common}, tmp_path, "build", 300)
    assert out.is_file() and built["tool"]
    variant_runtime = "tflite" if kind.startswith("tflite") else "onnxruntime"
    return run_child({"action": "compare", "original": str(source), "original_runtime": runtime,
                      "variant": str(out), "variant_runtime": variant_runtime, "count": 8, **common},
                     tmp_path, "compare", 300)


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["int8-dynamic", "int8-static", "fp16"])
def test_onnx_variant_kinds_build_and_compare(mlp_model: Path, tmp_path: Path, kind: str) -> None:
    data = tmp_path / "data.npz"
    np.savez(data, input=np.random.default_rng(0).uniform(0, 1, (8, 1, 32)).astype(np.float32))
    spec = InputSpec(data_file=str(data)) if kind == "int8-static" else InputSpec()
    answer = _build_and_compare(tmp_path, mlp_model, "onnx", "onnxruntime", kind, spec)
    assert answer["inputs"] == 8 and float(answer["cosine"]) > 0.9  # type: ignore[arg-type]
    assert answer["top1"] is not None  # (1, 10) logits: classifier-shaped
    assert str(answer["source"]).startswith("the first") == (kind == "int8-static")  # --data rows


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["tflite-float", "tflite-int8"])
def test_keras_to_tflite_variants_build_and_compare(tmp_path_factory: pytest.TempPathFactory, tmp_path: Path,
                                                    kind: str) -> None:
    from format_models import models

    keras_model = models(tmp_path_factory.getbasetemp())["keras"]
    answer = _build_and_compare(tmp_path, keras_model, "keras", "tensorflow", kind, InputSpec(batch=1))
    assert answer["inputs"] == 8
    if kind == "tflite-float":  # the same float graph: the same outputs up to rounding
        assert float(answer["cosine"]) > 0.9999 and answer["top1"] == 1.0  # type: ignore[arg-type]


@pytest.mark.slow
def test_batch_variants_are_measured_at_their_batch(models_dir: Path) -> None:
    """The batch kind on a real model: a target that serves batches of 8 gets batch=4, 2 and 1, each
    measured at that batch and projected (a smaller batch answers sooner: 8x fewer MACs per call at
    batch 1, so its projected p95 is well under the original's whatever this host's tail)."""
    model = builders.save(builders.mlp(features=256, hidden=(512, 512), classes=10), models_dir / "mlp_batch.onnx")
    target = _one_core("edge", "latency.p95=1ns")
    target = replace(target, profile=target.profile.model_copy(update={"batch_size": 8}))
    result = _run_one(model, [target], InputSpec(), QUICK, None, None, SuggestOptions(time_s=300))
    report = result.targets[0]
    assert result.error is None and report.verdict.value == "FAIL", result.error
    original = next(c.value for c in report.checks if c.metric == "latency.p95")
    by_label = {s.variant: s for s in report.suggestions}
    assert [s.variant for s in report.suggestions if s.kind == "batch"] == ["batch=4", "batch=2", "batch=1"]
    one = by_label["batch=1"]
    assert one.status == "does-not-fit" and one.agreement is None, one  # 1 ns: nothing fits
    p95 = next(c.value for c in one.checks if c.metric == "latency.p95")
    assert original is not None and p95 is not None and p95 < original / 2, (p95, original)
    assert "`batch_size: 1`" in one.reproduce, one.reproduce


@pytest.mark.slow
def test_fp16_and_int8_static_are_measured_projected_and_guarded(mlp_model: Path, tmp_path: Path) -> None:
    """The two builds the other tests only build and compare, end to end: fp16 for a GPU target
    (measured here, projected by the GPU roofline) and int8-static calibrated on --data for a CPU
    target, each judged and guarded against the original's outputs on the inputs it says."""
    data = tmp_path / "data.npz"
    np.savez(data, input=np.random.default_rng(0).uniform(0, 1, (16, 1, 32)).astype(np.float32))
    cases = [(resolve_targets(["gpu-server"])[0], InputSpec(), "fp16", "generated inputs"),
             (_one_core("edge"), InputSpec(data_file=str(data)), "int8-static", "--data")]
    for target, spec, kind, inputs in cases:
        result = _run_one(mlp_model, [target], spec, QUICK, None, None,
                          SuggestOptions(every_target=True, time_s=300))
        assert result.error is None, result.error
        found = next(s for s in result.targets[0].suggestions if s.variant == kind)
        assert found.status not in ("failed", "not-tried") and found.verdict is not None, found
        p95 = [c for c in found.checks if c.metric.startswith("latency.") and c.provenance == "projected"]
        assert p95 and all(c.value is not None and c.value > 0 for c in p95), found.checks
        assert found.agreement is not None and not found.agreement.same_model, found
        assert found.agreement.inputs > 0 and inputs in found.agreement.source, found.agreement
        assert found.agreement.cosine > 0.9


@pytest.mark.slow
def test_guard_refuses_int8_that_changes_the_argmax(models_dir: Path) -> None:
    model = builders.save(_tied_classifier(), models_dir / "tied.onnx")
    result = _run_one(model, [_one_core("edge")], InputSpec(), QUICK, None, None,
                      SuggestOptions(every_target=True, time_s=300))
    report = result.targets[0]
    assert result.error is None and report.verdict.value == "PASS" and result.exit_code() == 0
    [suggestion] = report.suggestions
    assert suggestion.variant == "int8-dynamic" and suggestion.verdict == "PASS", suggestion
    assert suggestion.status == "changes-outputs" and suggestion.agreement is not None
    assert suggestion.agreement.top1 is not None and suggestion.agreement.top1 < 0.99
    assert "changes outputs" in suggestion.reason and "generated inputs" in suggestion.agreement.source


@pytest.mark.slow
def test_failed_conversion_is_listed_and_the_verdict_stands(models_dir: Path) -> None:
    old = builders.mlp(features=16, hidden=(32,), classes=4, batch=1)
    for opset in old.opset_import:  # opset 7 / IR 3: onnxruntime runs it, its quantiser cannot convert it
        opset.version = 7
    old.ir_version = 3
    model = builders.save(old, models_dir / "mlp_opset7.onnx")
    result = _run_one(model, [_one_core("edge", "latency.p95=1ns")], InputSpec(), QUICK, None, None,
                      SuggestOptions(time_s=300))
    report = result.targets[0]
    assert result.error is None and report.verdict.value == "FAIL" and result.exit_code() == ExitCode.BUDGET_FAILED
    [suggestion] = report.suggestions
    assert suggestion.status == "failed" and suggestion.verdict is None and suggestion.reason, suggestion


@pytest.mark.slow
def test_time_budget_ends_the_search(mlp_model: Path) -> None:
    edge = resolve_targets(["edge"], budgets=["latency.p95=1ns"])[0]  # threads 1, 2, 3, then int8
    # just over the time one variant needs left to start: the first is tried, and a worker's start
    # alone takes longer than the 0.2 s margin, so the next ones are not (a fixed 5 s let a quiet
    # host try three of the four)
    from mlfit.advise.engine import MIN_VARIANT_S

    result = _run_one(mlp_model, [edge], InputSpec(), QUICK, None, None, SuggestOptions(time_s=MIN_VARIANT_S + 0.2))
    report = result.targets[0]
    statuses = [s.status for s in report.suggestions]
    assert statuses[0] != "not-tried" and statuses.count("not-tried") >= 2, statuses
    assert report.suggest_search is not None and report.suggest_search.not_tried == statuses.count("not-tried")
    assert report.verdict.value == "FAIL"


@pytest.mark.slow
def test_write_variants_files_reproduce_their_figure(transformer_model: Path, tmp_path: Path) -> None:
    out, folder = tmp_path / "r.json", tmp_path / "variants"
    dims = ("--dim", "seq=32")
    run = run_cli("check", transformer_model, "--target", "weak-cpu", *dims, "--budget", "latency.p95=10s",
                    "--suggest=all", "--suggest-time", "300", "--write-variants", folder, "--json", out, *FAST)
    assert_no_traceback(run)
    assert run.code == 0, run.output
    suggestions = json.loads(out.read_text())["results"][0]["targets"][0]["suggestions"]
    int8 = next(s for s in suggestions if s["variant"] == "int8-dynamic")
    assert int8["verdict"] == "PASS" and int8["file"], int8
    saved = Path(int8["file"])
    recipe = json.loads(saved.with_name(saved.name + ".recipe.json").read_text())
    assert recipe["variant"] == "int8-dynamic" and "quantize_dynamic" in recipe["tool"]
    assert (folder / "weak-cpu.threads-1.recipe.json").is_file()  # a deployment setting: its recipe only
    again = tmp_path / "again.json"
    rerun = run_cli("check", saved, "--target", "weak-cpu", *dims, "--budget", "latency.p95=10s", "--json",
                      again, *FAST)
    assert rerun.code == 0, rerun.output
    checks = json.loads(again.read_text())["results"][0]["targets"][0]["checks"]
    first = next(c for c in int8["checks"] if c["metric"] == "latency.p95")
    second = next(c for c in checks if c["metric"] == "latency.p95")
    # The same file, measured again on a busy host: the two projections' bands overlap.
    assert second["lower"] <= first["upper"] and first["lower"] <= second["upper"], (first, second)


def test_suggest_flags_refused_with_one_line(tiny_model: Path, tmp_path: Path) -> None:
    for args in (("--write-variants", tmp_path), ("--suggest=maybe",), ("--suggest", "--cluster", "tcp://h:1")):
        run = run_cli("check", tiny_model, "--target", "edge", *args, "--quiet")
        assert_no_traceback(run)
        assert run.code == ExitCode.USAGE and "mlfit: error:" in run.stderr, (args, run.output)


def test_child_without_answer_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ModelError):
        run_child({"action": "build", "kind": "no-such-kind"}, tmp_path, "bad", 60)


def _interrupt_suggest(model: Path, tmp_path: Path, when: str, *extra: str) -> tuple[int, str, Path]:
    """Run `mlfit check --suggest` as a user would (its own TMPDIR), send it a real SIGINT once
    the progress line ``when`` appears, and return (exit code, stderr, the report written)."""
    import os
    import signal
    import subprocess
    import sys

    from _hostile import assert_no_process_left, marker_env

    marker, env = marker_env()
    out, scratch = tmp_path / "r.json", tmp_path / "tmp"
    scratch.mkdir()
    proc = subprocess.Popen([sys.executable, "-m", "mlfit", "check", str(model), "--target", "edge", "--budget",
                             "latency.p95=1ns", "--suggest", "--suggest-time", "300", *extra, "--warmup", "1",
                             "--json", str(out)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True,
                            env={**os.environ, **env, "COLUMNS": "200", "TMPDIR": str(scratch)})
    try:
        assert proc.stderr is not None
        for line in proc.stderr:  # progress lines (not a terminal): one per variant started
            if when in line:
                break
        proc.send_signal(signal.SIGINT)
        _, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert_no_process_left(marker)
    assert not list(scratch.iterdir()), list(scratch.iterdir())  # no scratch folder or variant file left
    assert "Traceback" not in stderr, stderr
    return proc.returncode, stderr, out


@pytest.mark.slow
def test_ctrl_c_during_the_search_exits_130_and_leaves_nothing(mlp_model: Path, tmp_path: Path) -> None:
    """A real SIGINT while a variant is measured: exit 130 (interrupted, as anywhere else), the
    original verdict kept in the report marked incomplete, no worker, child or scratch file left."""
    code, stderr, out = _interrupt_suggest(mlp_model, tmp_path, "suggest edge: threads=1", "--min-time", "5",
                                           "--max-time", "10")
    assert code == ExitCode.INTERRUPTED, stderr
    assert "interrupted" in stderr and "partial report" in stderr
    report = json.loads(out.read_text())
    assert report["complete"] is False
    target = report["results"][0]["targets"][0]
    assert target["verdict"] == "FAIL" and "interrupted" in target["suggest_search"]["note"]
    assert {s["status"] for s in target["suggestions"]} == {"not-tried"}


@pytest.mark.slow
def test_ctrl_c_during_a_build_exits_130(mlp_model: Path, tmp_path: Path) -> None:
    """SIGINT while the quantiser's child runs (the thread variants come first, timed briefly; the
    signal is sent when the int8 build starts): exit 130, the child's process group gone."""
    code, stderr, _ = _interrupt_suggest(mlp_model, tmp_path, "suggest edge: int8-dynamic", "--min-time", "0.2",
                                         "--max-time", "1")
    assert code == ExitCode.INTERRUPTED, stderr
