"""The README's Python API snippet, extracted from README.md and run as written on the README's
own example model (a real subprocess; the model is built the way `make demo` builds it)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import REPO

pytestmark = pytest.mark.slow


def _python_blocks(text: str) -> list[str]:
    return re.findall(r"```python\n(.*?)```", text, flags=re.S)


def test_the_readme_snippet_runs_on_the_readme_model(tmp_path: Path) -> None:
    section = (REPO / "README.md").read_text().split("## Python API", 1)[1]
    snippet = _python_blocks(section)[0]
    assert "examples/models/mobilenet_v2_example.onnx" in snippet
    build = subprocess.run([sys.executable, "-m", "mlfit.zoo", "examples/models"], cwd=tmp_path,
                           capture_output=True, text=True, timeout=300)
    assert build.returncode == 0, build.stderr
    run = subprocess.run([sys.executable, "-c", snippet], cwd=tmp_path, capture_output=True, text=True,
                         timeout=600)
    assert "Traceback" not in run.stderr, run.stderr
    assert run.returncode in (0, 1), run.stdout + run.stderr  # pass, or a budget failed on this host
    assert "edge" in run.stdout and "weak-cpu" in run.stdout and "latency.p95" in run.stdout
    assert f"passed: {run.returncode == 0}" in run.stdout
    html = (tmp_path / "mlfit-report.html").read_text()
    assert "<html" in html.lower() and "mobilenet_v2_example" in html


def test_api_errors_and_exit_codes_match_the_cli(tmp_path: Path, tiny_model: Path) -> None:
    import mlfit
    from mlfit.api import MeasureOptions
    from mlfit.errors import ConfigError, ModelError

    fast = MeasureOptions(min_time=0.1, max_time=1.0, warmup=1)
    with pytest.raises(ConfigError, match="out of range"):
        mlfit.check(tiny_model, ["edge"], dims={"batch": 0}, options=fast)
    lacking = mlfit.check(tiny_model, ["edge"], dims={"height": 2}, options=fast)  # decided against the model
    assert lacking.error is not None and lacking.exit_code() == 2 and "not a symbolic dim" in lacking.error.message
    broken = tmp_path / "broken.onnx"
    broken.write_bytes(b"\x08\x07" + b"\xff" * 64)
    result = mlfit.check(broken, ["edge"], options=fast)
    assert result.error is not None and not result.passed and result.exit_code() == 3
    with pytest.raises(ModelError) as info:
        result.raise_for_error()
    assert info.value.exit_code == 3 and info.value.message == result.error.message
    ok = mlfit.check(tiny_model, ["edge"], options=fast)
    assert ok.raise_for_error() is ok
    assert ok.passed == (ok.exit_code() == 0)
    for fmt in ("json", "markdown", "junit", "html", "text"):
        path = ok.write(fmt, tmp_path / f"r.{fmt}")
        assert path.stat().st_size > 0
