"""`mlfit compare` and `mlfit check --baseline` on real runs: quiet on re-runs, loud on a real slow-down.

Runs use one thread: on a shared machine a second thread mostly measures the neighbours.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import assert_no_traceback, run_mlfit
from mlfit.result import ChangeStatus, Report, Verdict

RUN = ("--threads", "1", "--min-time", "1", "--max-time", "4", "--warmup", "5", "--quiet")
SMALL, LARGE = "input=1x3x160x160", "input=2x3x160x160"  # the same network, twice the work


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory, cnn_model: Path) -> dict[str, Path]:
    """Three runs of the same model and input, and one with a larger input."""
    out = tmp_path_factory.mktemp("compare")
    paths = {name: out / f"{name}.json" for name in ("a", "b", "c", "slow")}
    for name, path in paths.items():
        shape = LARGE if name == "slow" else SMALL
        run = run_mlfit("profile", cnn_model, "--shape", shape, *RUN, "--json", path)
        assert run.code == 0, run.output
    return paths


@pytest.mark.parametrize("base, new", [("a", "b"), ("b", "c"), ("c", "a"), ("b", "a")])
def test_reruns_of_the_same_model_are_not_a_regression(runs: dict[str, Path], base: str, new: str,
                                                        tmp_path: Path) -> None:
    out = tmp_path / "cmp.json"
    run = run_mlfit("compare", runs[base], runs[new], "--output", f"json={out}")
    assert_no_traceback(run)
    assert run.code == 0, run.output
    assert "Compare: no regression" in run.stdout
    comparison = Report.model_validate_json(out.read_text()).comparison
    assert comparison is not None and comparison.same_host and not comparison.regressed


def test_a_larger_input_is_a_regression(runs: dict[str, Path], tmp_path: Path) -> None:
    out = {fmt: tmp_path / f"cmp.{fmt}" for fmt in ("json", "markdown", "junit", "html")}
    run = run_mlfit("compare", runs["a"], runs["slow"], *(f"--output={f}={p}" for f, p in out.items()))
    assert run.code == 1, run.output
    assert "Compare: REGRESSION" in run.stdout
    comparison = Report.model_validate_json(out["json"].read_text()).comparison
    assert comparison is not None and comparison.regressed
    p50 = next(c for c in comparison.models[0].changes if c.metric == "latency.p50")
    assert p50.status is ChangeStatus.REGRESSION and p50.ci_low is not None and p50.ci_low > 0.05
    assert any("input shapes differ" in n for n in comparison.models[0].notes)
    assert "🔻 regression" in out["markdown"].read_text()
    assert "<failure" in out["junit"].read_text()
    assert "Change against the baseline" in out["html"].read_text()


def test_mann_whitney_agrees(runs: dict[str, Path]) -> None:
    assert run_mlfit("compare", runs["a"], runs["slow"], "--method", "mannwhitney").code == 1
    assert run_mlfit("compare", runs["a"], runs["b"], "--method", "mannwhitney").code == 0


def test_check_with_a_baseline_fails_on_a_slow_down(runs: dict[str, Path], cnn_model: Path, tmp_path: Path) -> None:
    out = tmp_path / "r.json"
    run = run_mlfit("check", cnn_model, "--target", "weak-cpu", "--shape", LARGE, *RUN, "--baseline", runs["a"],
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

    warned = run_mlfit("compare", other, runs["b"])
    assert warned.code == 0 and "different machines" in warned.stderr and "Another CPU" in warned.stderr

    refused = run_mlfit("compare", other, runs["b"], "--strict")
    assert refused.code == 2 and "refusing under --strict" in refused.stderr
    assert_no_traceback(refused)

    before = run_mlfit("check", cnn_model, "--target", "weak-cpu", "--baseline", other, "--strict", *RUN)
    assert before.code == 2 and "another machine" in before.stderr  # refused before measuring


@pytest.mark.parametrize("args, expected", [
    (("--min-effect", "five"), "not a fraction"),
    (("--method", "ttest"), "use bootstrap or mannwhitney"),
])
def test_bad_compare_flags_are_usage_errors(runs: dict[str, Path], args: tuple[str, str], expected: str) -> None:
    run = run_mlfit("compare", runs["a"], runs["b"], *args)
    assert run.code == 2 and expected in run.stderr
    assert_no_traceback(run)
