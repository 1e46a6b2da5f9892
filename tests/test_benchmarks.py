"""The benchmark suite's own plumbing: the parts whose mistakes would silently corrupt RESULTS.md.

The benchmarks themselves are timed, so they are run by `make bench`, not here; these tests
check the baselines and parsers they rely on, quickly and with real subprocesses.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"
sys.path.insert(0, str(BENCH))

import bench_memory  # noqa: E402
import benchlib  # noqa: E402
import run_all  # noqa: E402


def test_table_escapes_pipes_and_newlines() -> None:
    text = benchlib.table(["a", "b"], [["x|y", "two\nlines"]])
    assert text.splitlines() == ["| a | b |", "|---|---|", "| x\\|y | two lines |"]


def test_met_renders_the_three_outcomes() -> None:
    assert benchlib.met(True) == "yes"
    assert benchlib.met(False, "too slow") == "**no** (too slow)"
    assert benchlib.met(None, "no goal") == "n/a (no goal)"


@pytest.mark.skipif(not Path("/usr/bin/time").exists(), reason="GNU time is not installed")
def test_gnu_time_maxrss_is_read_from_a_real_run() -> None:
    proc = subprocess.run(["/usr/bin/time", "-v", sys.executable, "-c", "b = bytearray(64 * 2**20)"],
                          capture_output=True, text=True, check=True)
    maxrss = bench_memory._gnu_time_maxrss(proc.stderr)
    assert maxrss is not None and maxrss >= 64 * 2**20


def test_included_headings_are_nested_under_the_item() -> None:
    text = run_all._demote_headings("# Title\n\nbody # not a heading\n## Sub\n")
    assert text == "### Title\n\nbody # not a heading\n#### Sub\n"


def _bare(model: Path, *args: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, str(BENCH / "bare_onnxruntime.py"), str(model), "--threads", "1", *args]
    return subprocess.run(command, capture_output=True, text=True, check=True)


def test_bare_baseline_collects_exactly_the_samples_asked_for(tiny_model: Path) -> None:
    proc = _bare(tiny_model, "--samples", "37", "--warmup", "2")
    data = json.loads(proc.stdout.strip().splitlines()[-1])
    assert data["n"] == 37 and data["threads"] == 1
    assert 0 < data["p50"] <= data["p95"]
    assert data["peak_rss_bytes"] >= data["rss_after_import_bytes"] > 0


def test_bare_baseline_fills_symbolic_dims(cnn_model: Path) -> None:
    proc = _bare(cnn_model, "--samples", "2", "--warmup", "1", "--dim", "batch=1")
    assert json.loads(proc.stdout.strip().splitlines()[-1])["n"] == 2
