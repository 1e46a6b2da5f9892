"""check --suggest --what-if and combined variants on real models: input sizes re-measured,
projected and judged like any variant (a small conv net with a symbolic side), bad specs refused
with one line before anything is measured, and a combination of two changes passing where no
single change does."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from conftest import FAST, assert_no_traceback, run_cli
from mlfit.advise import SuggestOptions
from mlfit.advise.variants import parse_what_if
from mlfit.api import _run_one, resolve_targets
from mlfit.catalog.loader import Target
from mlfit.errors import ExitCode
from mlfit.inputspec import InputSpec
from mlfit.options import MeasureOptions
from mlfit.zoo import builders

QUICK = MeasureOptions(min_time=0.2, max_time=2.0, warmup=2)


@pytest.fixture(scope="module")
def side_cnn(models_dir: Path) -> Path:
    """A small MobileNetV2 (width 0.35, 10 classes) whose input side is a symbolic dim 'side'."""
    return builders.save(builders.mobilenet_v2(width=0.35, resolution="side", classes=10, batch=1),  # type: ignore[arg-type]
                         models_dir / "mobilenet_v2_side.onnx")


def _one_core(name: str, *budgets: str) -> Target:
    """A built-in target on a one-core copy of its hardware: no thread variants (quick)."""
    target = resolve_targets([name], budgets=budgets)[0]
    cpu = target.hardware.cpu.model_copy(update={"cores": 1})
    return replace(target, hardware=target.hardware.model_copy(update={"cpu": cpu}),
                   profile=target.profile.model_copy(update={"threads": 1}))


def _p95(checks: list) -> float:  # type: ignore[type-arg]
    return next(c.value for c in checks if c.metric == "latency.p95")


@pytest.mark.slow
def test_what_if_input_sizes_are_measured_and_judged(side_cnn: Path) -> None:
    target = _one_core("edge", "latency.p95=1ns")  # nothing fits: every size is judged and listed
    settings = SuggestOptions(time_s=300, what_if=parse_what_if(["dim=side:64,32"]))
    result = _run_one(side_cnn, [target], InputSpec(dims={"side": 96}), QUICK, None, None, settings)
    report = result.targets[0]
    assert result.error is None and report.verdict.value == "FAIL" and result.exit_code() == ExitCode.BUDGET_FAILED
    by_name = {s.variant: s for s in report.suggestions}
    assert {"side=64", "side=32"} <= set(by_name), list(by_name)
    big, small = by_name["side=64"], by_name["side=32"]
    for suggestion in (big, small):
        assert suggestion.kind == "dim" and suggestion.status == "does-not-fit", suggestion
        assert suggestion.agreement is None  # another input size: outputs not comparable
    assert "--dim side=32" in small.reproduce
    # The projected centre comes from the device model (static structure): 4x fewer pixels, faster.
    assert _p95(small.checks) < _p95(big.checks) < _p95(report.checks)


def test_what_if_bad_specs_are_one_line_exit_2(small_cnn_model: Path, side_cnn: Path) -> None:
    """Through the real CLI (the spec's grammar is tested in test_advise_plan.py): each refused
    with one line and exit 2, before anything is measured."""
    cases = [
        (side_cnn, ("--what-if", "dim=side:64",), "only applies with --suggest"),
        (side_cnn, ("--suggest", "--what-if", "dim=side:64,zero"), "'zero' is not a size"),
        (small_cnn_model, ("--suggest", "--what-if", "dim=height:32"), "none (every dim is fixed)"),
    ]
    for model, args, says in cases:
        run = run_cli("check", model, "--target", "edge", *args, "--quiet")
        assert_no_traceback(run)
        lines = [line for line in run.stderr.splitlines() if line.strip()]
        assert run.code == ExitCode.USAGE and len(lines) == 1 and lines[0].startswith("mlfit: error:"), (args, run)
        assert says in lines[0], lines[0]
    assert "dynamic_axes" in lines[0]  # the fixed dim: how to get a named one


@pytest.mark.slow
def test_combination_passes_where_no_single_change_does(models_dir: Path, tmp_path: Path) -> None:
    """The size budget only int8 meets (static); the latency budget, a third of the original's
    projected p95, int8 alone cannot meet (its projected centre, the device model's from the
    structure, is about half the original's) and the shorter sequence alone fails on size: no
    single change passes, int8 + 32x fewer tokens does (its centre ~25x under the original's).
    --write-variants saves the pair's built file with its recipe; checked again at the pair's
    input size, it reproduces the figure (the same size, a p95 band that overlaps)."""
    model = builders.save(builders.transformer_block(d_model=128, heads=2, ff=512, vocab=4000),
                          models_dir / "transformer_combo.onnx")
    spec = InputSpec(dims={"seq": 256}, ranges={"input_ids": (0.0, 4000.0)})
    plain = _run_one(model, [_one_core("edge")], spec, QUICK, None, None)
    p95 = _p95(plain.targets[0].checks)
    size = model.stat().st_size
    budgets = (f"latency.p95={p95 / 3 * 1000:.4f}ms", f"model_size={size * 0.6 / 1024:.0f}KiB")
    folder = tmp_path / "variants"
    settings = SuggestOptions(time_s=300, what_if=parse_what_if(["dim=seq:8"]), write_variants=folder)
    result = _run_one(model, [_one_core("edge", *budgets)], spec, QUICK, None, None, settings)
    report = result.targets[0]
    assert report.verdict.value == "FAIL" and result.exit_code() == ExitCode.BUDGET_FAILED
    singles = [s for s in report.suggestions if s.kind != "combo"]
    combos = [s for s in report.suggestions if s.kind == "combo"]
    assert {s.variant for s in singles} == {"seq=8", "int8-dynamic"}, report.suggestions
    assert all(s.verdict != "PASS" for s in singles), singles
    assert combos and combos[0].variant == "int8-dynamic+seq=8", combos
    assert combos[0].verdict == "PASS", combos[0]
    assert combos[0].status == "changes-outputs"  # another input size: its accuracy is for the user to check
    assert "quantize_dynamic" in combos[0].reproduce and "--dim seq=8" in combos[0].reproduce
    # --write-variants: the pair's int8 file (its input size is a --dim, not a file change) and its recipe
    assert combos[0].file is not None, combos[0]
    saved = Path(combos[0].file)
    assert saved.parent == folder and saved.name == "transformer_combo.int8-dynamic+seq-8.onnx"
    recipe = json.loads(saved.with_name(saved.name + ".recipe.json").read_text())
    assert recipe["variant"] == "int8-dynamic+seq=8" and "quantize_dynamic" in recipe["tool"], recipe
    assert recipe["reproduce"] == combos[0].reproduce and recipe["file"] == str(saved)
    again = _run_one(saved, [_one_core("edge", *budgets)], spec.model_copy(update={"dims": {"seq": 8}}), QUICK,
                     None, None)
    assert again.error is None and again.targets[0].verdict.value == "PASS", again.targets[0]
    checks = {c.metric: c for c in again.targets[0].checks}
    first = {c.metric: c for c in combos[0].checks}
    assert checks["model.size"].value == first["model.size"].value == saved.stat().st_size
    a, b = first["latency.p95"], checks["latency.p95"]
    assert a.lower is not None and a.upper is not None and b.lower is not None and b.upper is not None
    assert b.lower <= a.upper and a.lower <= b.upper, (a, b)  # measured again on a busy host: bands overlap


@pytest.mark.slow
def test_suggest_for_a_folder_of_models(tmp_path: Path) -> None:
    """Many models (a folder): each is measured, then its variants searched (--suggest-time per
    model), in one report; a --what-if dim only the models that have it get."""
    folder = tmp_path / "models"
    folder.mkdir()
    builders.save(builders.tiny_add(16), folder / "a.onnx")
    builders.save(builders.mobilenet_v2(width=0.35, resolution="side", classes=10, batch=1),  # type: ignore[arg-type]
                  folder / "b.onnx")
    out = tmp_path / "r.json"
    run = run_cli("check", folder, "--target", "edge", "--budget", "latency.p95=1ns", "--dim", "side=48",
                    "--suggest", "--suggest-time", "6", "--what-if", "dim=side:32", "--json", out, *FAST)
    assert_no_traceback(run)
    assert run.code == ExitCode.BUDGET_FAILED, run.output
    results = {Path(r["model"]["path"]).name: r for r in json.loads(out.read_text())["results"]}
    assert set(results) == {"a.onnx", "b.onnx"}
    for name, result in results.items():
        suggestions = result["targets"][0]["suggestions"]
        # a short --suggest-time: the first variant is measured, the rest listed as not tried
        assert suggestions[0]["variant"] == "threads=1" and suggestions[0]["status"] != "not-tried", suggestions
        assert ("side=32" in {s["variant"] for s in suggestions}) == (name == "b.onnx"), (name, suggestions)


def test_api_refuses_a_what_if_dim_before_measuring(small_cnn_model: Path) -> None:
    from mlfit.errors import ConfigError

    settings = SuggestOptions(what_if=(("height", (32,)),))
    with pytest.raises(ConfigError, match="no symbolic dim 'height'"):
        _run_one(small_cnn_model, [_one_core("edge")], InputSpec(), QUICK, None, None, settings)
