"""The worker as a real subprocess: crashes, hangs, leftover children and memory spikes."""

from __future__ import annotations

import json
import time
from pathlib import Path

import psutil
import pytest

from conftest import FAST, assert_no_traceback, run_cli


@pytest.mark.parametrize(("fault", "expected"), [
    ("load:SIGSEGV", "onnxruntime crashed (SIGSEGV) while creating the session"),
    ("measure:SIGABRT", "onnxruntime crashed (SIGABRT) while measuring latency"),
])
def test_native_crash_is_one_explained_line(small_cnn_model: Path, tmp_path: Path, fault: str, expected: str) -> None:
    out = tmp_path / "r.json"
    run = run_cli("check", small_cnn_model, "--target", "weak-cpu", "--json", out, *FAST,
                    env={"MLFIT_WORKER_FAULT": fault})
    assert run.code == 3
    assert expected in run.stderr
    assert_no_traceback(run)
    error = json.loads(out.read_text())["results"][0]["error"]
    assert error["kind"] == "crash" and error["phase"] == fault.split(":")[0]


def test_hang_times_out_and_kills_the_group(small_cnn_model: Path) -> None:
    start = time.monotonic()
    # 8 s, not less: the bound is per phase, and on a loaded runner starting the worker alone can take seconds.
    run = run_cli("profile", small_cnn_model, "--timeout", "8", *FAST, env={"MLFIT_WORKER_FAULT": "warmup:orphan"})
    assert run.code == 3
    assert "timed out after 8 s in warmup" in run.stderr
    assert time.monotonic() - start < 60
    assert_no_traceback(run)
    time.sleep(0.5)
    leftovers = [p for p in psutil.process_iter(["cmdline"])
                 if p.info["cmdline"] and "import time; time.sleep(600)" in " ".join(p.info["cmdline"])]
    assert leftovers == [], "the worker's child survived the timeout"


def test_memory_spike_is_caught_by_the_kernel_high_water_mark(small_cnn_model: Path, tmp_path: Path) -> None:
    """A 200 MB allocation held for a few ms inside the measured phase must show in the peak."""
    plain, spiked = tmp_path / "plain.json", tmp_path / "spiked.json"
    assert run_cli("profile", small_cnn_model, "--json", plain, *FAST).code == 0
    assert run_cli("profile", small_cnn_model, "--json", spiked, *FAST,
                     env={"MLFIT_WORKER_FAULT": "measure:spike"}).code == 0
    base = json.loads(plain.read_text())["results"][0]["measurement"]["memory"]
    spike = json.loads(spiked.read_text())["results"][0]["measurement"]["memory"]
    assert spike["inference_peak_bytes"] - base["inference_peak_bytes"] > 150 * 2**20
    assert base["method"].startswith("VmHWM")


def test_memory_phases_are_ordered(small_cnn_model: Path, tmp_path: Path) -> None:
    out = tmp_path / "r.json"
    assert run_cli("profile", small_cnn_model, "--json", out, *FAST).code == 0
    mem = json.loads(out.read_text())["results"][0]["measurement"]["memory"]
    assert 0 < mem["interpreter_bytes"] < mem["runtime_baseline_bytes"] <= mem["peak_bytes"]
    assert mem["load_peak_bytes"] <= mem["peak_bytes"] and mem["inference_peak_bytes"] <= mem["peak_bytes"]
    assert mem["arena_enabled"] is True


def test_memory_timeline_has_phase_marks(small_cnn_model: Path, tmp_path: Path) -> None:
    out = tmp_path / "r.json"
    assert run_cli("profile", small_cnn_model, "--json", out, *FAST).code == 0
    timeline = json.loads(out.read_text())["results"][0]["measurement"]["memory_timeline"]
    phases = [name for name, _ in timeline["phases"]]
    assert phases[:3] == ["start", "import", "load"] and phases[-1] == "done"
    assert len(timeline["samples"]) >= 2 and all(rss > 0 for _, rss in timeline["samples"])
    assert "high-water mark" in timeline["source"]
