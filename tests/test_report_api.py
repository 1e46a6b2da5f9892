"""`mlfit.check(...)` as a user calls it from a notebook or from their own pytest suite."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import mlfit
from mlfit.api import MeasureOptions
from mlfit.result import RunResult, Verdict

FAST = MeasureOptions(min_time=0.2, max_time=2.0, warmup=2)


def profile(tmp_path: Path, name: str, budgets: str) -> Path:
    """A deployment profile whose verdict does not hang on this machine's noise."""
    path = tmp_path / f"{name}.yaml"
    head = f"schema_version: 1\nid: {name}\ndescription: test profile\nhardware: weak-cpu-2vcpu\n"
    path.write_text(head + "runtimes: [onnxruntime]\nbudgets:\n" + textwrap.indent(budgets, "  ") + "\n")
    return path


def test_check_returns_the_result_the_cli_renders(tmp_path: Path, tiny_model: Path) -> None:
    fits = profile(tmp_path, "fits", "model_size: 10 MB\npeak_memory: 4 GiB")
    tight = profile(tmp_path, "tight", "peak_memory: 1 MiB")
    result = mlfit.check(tiny_model, targets=[str(fits), str(tight)], options=FAST)
    assert isinstance(result, RunResult)
    verdicts = {t.target: t.verdict for t in result.targets}
    assert verdicts == {"fits": Verdict.PASS, "tight": Verdict.FAIL}
    assert result.passed is False and result.verdict is Verdict.FAIL
    only_fits = mlfit.check(tiny_model, targets=[str(fits)], options=FAST)
    assert only_fits.passed, only_fits.verdict


def test_a_users_pytest_suite_can_gate_on_it(tmp_path: Path, tiny_model: Path) -> None:
    fits = profile(tmp_path, "fits", "model_size: 10 MB\npeak_memory: 4 GiB")
    user_test = tmp_path / "test_model_fits.py"
    user_test.write_text(textwrap.dedent(f"""\
        import mlfit
        from mlfit.api import MeasureOptions

        def test_model_fits_the_device():
            result = mlfit.check({str(tiny_model)!r}, targets=[{str(fits)!r}],
                                 options=MeasureOptions(min_time=0.2, max_time=2.0, warmup=2))
            assert result.passed, result.verdict

        def test_model_does_not_fit_a_tiny_budget():
            result = mlfit.check({str(tiny_model)!r}, targets=["edge"],
                                 options=MeasureOptions(min_time=0.2, max_time=2.0, warmup=2))
            assert result.targets and result.targets[0].target == "edge"
        """))
    run = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(user_test)],
                         capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "2 passed" in run.stdout
