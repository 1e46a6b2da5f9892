"""`mlfit compare` and `mlfit check --baseline` on real runs: quiet on re-runs (even one made next to two
busy processes), loud on a real slow-down, and a refusal (exit 2) when the runs are not comparable.

Runs use one thread: on a shared machine a second thread mostly measures the neighbours.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from conftest import assert_no_traceback, run_cli
from mlfit.result import ChangeStatus, Report, Verdict
from mlfit.zoo import builders

RUN = ("--threads", "1", "--min-time", "1", "--max-time", "4", "--warmup", "5", "--quiet")
SMALL, LARGE = "input=1x3x160x160", "input=2x3x160x160"  # the same network, twice the work
BIG = "input=1x3x320x320"  # the same network built at twice the resolution: four times the work

# serial: one run is made under two CPU hogs; others running beside it would be loaded too.
pytestmark = pytest.mark.serial


@pytest.fixture(scope="module")
def big_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The example's network at 320x320 instead of 160x160: a real slow-down, another file."""
    return builders.save(builders.mobilenet_v2(width=0.5, resolution=320, batch="batch", seed=42),
                         tmp_path_factory.mktemp("big") / "mobilenet_v2_320.onnx")


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory, cnn_model: Path, big_model: Path) -> dict[str, Path]:
    """Three runs of the same model and input, one of them while two processes keep both cores
    busy; the same file on a larger input; and the network at twice the resolution."""
    out = tmp_path_factory.mktemp("compare")
    paths = {name: out / f"{name}.json" for name in ("a", "b", "c", "loaded", "other_input", "slow")}
    for name, path in paths.items():
        model, shape = (big_model, BIG) if name == "slow" else (cnn_model, LARGE if name == "other_input" else SMALL)
        hogs = [subprocess.Popen(["yes"], stdout=subprocess.DEVNULL) for _ in range(2)] if name == "loaded" else []
        try:
            run = run_cli("profile", model, "--shape", shape, *RUN, "--json", path)
        finally:
            for hog in hogs:
                hog.kill()
                hog.wait()
        assert run.code == 0, run.output
    return paths


@pytest.mark.parametrize("base, new", [("a", "b"), ("b", "c"), ("c", "a"), ("b", "a"), ("a", "loaded"),
                                       ("loaded", "a")])
def test_reruns_of_the_same_model_are_not_a_regression(runs: dict[str, Path], base: str, new: str,
                                                        tmp_path: Path) -> None:
    """Two runs of the same file never exit 1, even when one ran next to two busy processes."""
    out = tmp_path / "cmp.json"
    run = run_cli("compare", runs[base], runs[new], "--output", f"json={out}")
    assert_no_traceback(run)
    assert run.code == 0, run.output
    assert "Compare: no regression" in run.stdout
    comparison = Report.model_validate_json(out.read_text()).comparison
    assert comparison is not None and comparison.same_host and not comparison.regressed
    cost = next(c for c in comparison.models[0].changes if c.metric == "cost.uncontended")
    assert cost.status is not ChangeStatus.REGRESSION


def test_a_model_at_twice_the_resolution_is_a_regression(runs: dict[str, Path], tmp_path: Path) -> None:
    out = {fmt: tmp_path / f"cmp.{fmt}" for fmt in ("json", "markdown", "junit", "html")}
    run = run_cli("compare", runs["a"], runs["slow"], *(f"--output={f}={p}" for f, p in out.items()))
    assert run.code == 1, run.output
    assert "Compare: REGRESSION" in run.stdout
    comparison = Report.model_validate_json(out["json"].read_text()).comparison
    assert comparison is not None and comparison.regressed
    cost = next(c for c in comparison.models[0].changes if c.metric == "cost.uncontended")
    assert cost.status is ChangeStatus.REGRESSION and cost.ci_low is not None and cost.ci_low > 0.05
    assert any("input shapes differ" in n for n in comparison.models[0].notes)
    assert "🔻 regression" in out["markdown"].read_text()
    assert "<failure" in out["junit"].read_text()
    assert "Change against the baseline" in out["html"].read_text()


def test_the_same_file_on_other_inputs_is_not_comparable(runs: dict[str, Path]) -> None:
    run = run_cli("compare", runs["a"], runs["other_input"])
    assert_no_traceback(run)
    assert run.code == 2, run.output
    assert "not comparable" in run.stderr and "different inputs" in run.stderr and "REGRESSION" not in run.stdout


def test_mann_whitney_agrees(runs: dict[str, Path]) -> None:
    assert run_cli("compare", runs["a"], runs["slow"], "--method", "mannwhitney").code == 1
    assert run_cli("compare", runs["a"], runs["b"], "--method", "mannwhitney").code == 0


def test_check_with_a_baseline_fails_on_a_slow_down(runs: dict[str, Path], big_model: Path, tmp_path: Path) -> None:
    out = tmp_path / "r.json"
    run = run_cli("check", big_model, "--target", "weak-cpu", "--shape", BIG, *RUN, "--baseline", runs["a"],
                    "--json", out)
    assert_no_traceback(run)
    stored = Report.model_validate_json(out.read_text())
    assert stored.comparison is not None and stored.comparison.regressed
    assert stored.results[0].verdict is not Verdict.FAIL  # so the exit code below is the regression's
    assert run.code == 1, run.output


def test_different_machines_warn_and_strict_refuses(runs: dict[str, Path], cnn_model: Path, tmp_path: Path) -> None:
    data = json.loads(runs["a"].read_text())
    data["results"][0]["host"]["fingerprint"] = "0123456789abcdef"
    data["results"][0]["host"]["cpu_model"] = "Another CPU"
    other = tmp_path / "other.json"
    other.write_text(json.dumps(data))

    warned = run_cli("compare", other, runs["b"])
    assert warned.code == 0 and "different machines" in warned.stderr and "Another CPU" in warned.stderr

    refused = run_cli("compare", other, runs["b"], "--strict")
    assert refused.code == 2 and "refusing under --strict" in refused.stderr
    assert_no_traceback(refused)

    before = run_cli("check", cnn_model, "--target", "weak-cpu", "--baseline", other, "--strict", *RUN)
    assert before.code == 2 and "another machine" in before.stderr  # refused before measuring


@pytest.mark.parametrize("args, expected", [
    (("--min-effect", "five"), "not a fraction"),
    (("--method", "ttest"), "use bootstrap or mannwhitney"),
])
def test_bad_compare_flags_are_usage_errors(runs: dict[str, Path], args: tuple[str, str], expected: str) -> None:
    run = run_cli("compare", runs["a"], runs["b"], *args)
    assert run.code == 2 and expected in run.stderr
    assert_no_traceback(run)
