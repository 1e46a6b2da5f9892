"""Workers that hang, crash, abort, leave children behind or eat memory (issue 6, cases 6-8).

Every fault is real: a Loop that never ends, a worker that raises SIGSEGV or SIGABRT on
itself (MLFIT_WORKER_FAULT, see measure/worker.py), a model that allocates 400 MB per
inference. Each becomes an explained error, the process group is gone afterwards, and
partial timings are kept and flagged.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from _hostile import assert_no_process_left, hanging_loop_model, load_report, marker_env, memory_hog_model
from conftest import FAST, assert_no_traceback, run_mlfit
from mlfit.api import MeasureOptions, identify, resolve_targets, run_model
from mlfit.inputspec import InputSpec
from mlfit.measure.launcher import DEFAULT_TIMEOUTS
from mlfit.measure.protocol import Phase
from mlfit.result import Report


def test_default_timeouts_are_finite() -> None:
    assert all(0 < bound < float("inf") for bound in DEFAULT_TIMEOUTS.values())
    assert DEFAULT_TIMEOUTS[Phase.FIRST_INFERENCE] == 120.0  # the documented bound for one inference


def test_hanging_loop_times_out_and_leaves_nothing(tmp_path: Path) -> None:
    model = hanging_loop_model(tmp_path / "hang.onnx")
    marker, env = marker_env()
    out = tmp_path / "r.json"
    run = run_mlfit("check", model, "--target", "edge", "--timeout", "3", "--json", out, *FAST, env=env)
    assert_no_traceback(run)
    assert run.code == 3, run.output
    assert "timed out after 3 s in first_inference (running the first inference)" in run.stderr
    assert "--timeout SECONDS" in run.stderr
    result = load_report(out)["results"][0]
    assert result["complete"] is False and result["error"]["kind"] == "timeout"
    partial = result["error"]["partial"]  # what was measured before the hang is kept
    assert partial["load_s"] is not None and partial["latency"] is None
    assert_no_process_left(marker)


def test_stall_mid_measurement_keeps_partial_samples(tmp_path: Path, tiny_model: Path) -> None:
    marker, env = marker_env()
    out = tmp_path / "r.json"
    run = run_mlfit("check", tiny_model, "--target", "edge", "--timeout", "3", "--min-time", "2",
                    "--max-time", "2", "--warmup", "1", "--quiet", "--json", out,
                    env={**env, "MLFIT_WORKER_FAULT": "measure:stall"})
    assert_no_traceback(run)
    assert run.code == 3
    assert "in measure (measuring latency)" in run.stderr and "partial timings kept" in run.stderr
    report = load_report(out)
    assert report["complete"] is False
    result = report["results"][0]
    assert result["measurement"] is None  # partial samples are never passed off as a measurement
    latency = result["error"]["partial"]["latency"]
    assert latency["n"] > 0 and len(latency["samples_ns"]) == latency["n"]
    assert_no_process_left(marker)


@pytest.mark.parametrize(("fault", "words"), [
    ("load:SIGSEGV", "onnxruntime crashed (SIGSEGV) while creating the session"),
    ("measure:SIGABRT", "onnxruntime crashed (SIGABRT) while measuring latency"),
    ("first_inference:SIGKILL",
     "crashed (SIGKILL) while running the first inference (likely killed for using too much memory)"),
])
def test_native_crash_is_explained(tmp_path: Path, tiny_model: Path, fault: str, words: str) -> None:
    marker, env = marker_env()
    out = tmp_path / "r.json"
    run = run_mlfit("check", tiny_model, "--target", "edge", "--json", out, *FAST,
                    env={**env, "MLFIT_WORKER_FAULT": fault})
    assert_no_traceback(run)
    assert run.code == 3
    assert words in run.stderr
    result = load_report(out)["results"][0]
    assert result["error"]["kind"] == "crash" and result["complete"] is False
    assert_no_process_left(marker)


@pytest.mark.parametrize("fault", ["load:orphan", "load:escape"], ids=["same-group", "own-session"])
def test_leftover_children_are_killed(tmp_path: Path, tiny_model: Path, fault: str) -> None:
    marker, env = marker_env()
    run = run_mlfit("check", tiny_model, "--target", "edge", "--timeout", "3", *FAST,
                    env={**env, "MLFIT_WORKER_FAULT": fault})
    assert_no_traceback(run)
    assert run.code == 3
    assert "timed out after 3 s in load" in run.stderr
    assert_no_process_left(marker, grace_s=1.0)


def test_memory_limit_stops_a_model_that_does_not_fit(tmp_path: Path) -> None:
    model = memory_hog_model(tmp_path / "hog.onnx")
    marker, env = marker_env()
    out = tmp_path / "r.json"
    run = run_mlfit("profile", model, "--value", "n=100000000", "--memory-limit", "250MiB", "--json", out,
                    *FAST, env=env)
    assert_no_traceback(run)
    assert run.code == 3, run.output
    assert "exceeded the memory limit of 250 MiB (--memory-limit)" in run.stderr
    assert "stopped so the host does not swap" in run.stderr
    result = load_report(out)["results"][0]
    assert result["error"]["kind"] == "memory" and result["complete"] is False
    assert_no_process_left(marker)


def test_memory_limit_target_uses_the_targets_ram(tmp_path: Path) -> None:
    # 2.4 GB per inference: fits this host, not the weak-cpu target (2 GiB RAM, 1748 MiB available).
    model = memory_hog_model(tmp_path / "hog.onnx")
    run = run_mlfit("check", model, "--target", "weak-cpu", "--value", "n=600000000",
                    "--memory-limit", "target", *FAST)
    assert_no_traceback(run)
    assert run.code == 3, run.output
    assert "exceeded the memory limit of 1748 MiB (--memory-limit)" in run.stderr


def test_a_crashed_model_does_not_stop_the_others(tmp_path: Path, tiny_model: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """Several models checked one after another: the crash is a result, the next model still runs."""
    targets = resolve_targets(["edge"])
    options = MeasureOptions(min_time=0.2, max_time=2, warmup=2)
    results = []
    for fault in ("load:SIGSEGV", ""):
        monkeypatch.setenv("MLFIT_WORKER_FAULT", fault)
        results.append(run_model(identify(tiny_model), targets, InputSpec(), options))
    report = Report(mlfit_version="test", created="now", results=results,
                    complete=all(r.complete for r in results))
    crashed, fine = report.results
    assert crashed.error is not None and crashed.error.kind == "crash" and "SIGSEGV" in crashed.error.message
    assert fine.error is None and fine.measurement is not None and fine.targets
    assert report.complete is False  # the report marks the crashed one


def test_several_models_a_hang_does_not_stop_the_others(tmp_path: Path, tiny_model: Path) -> None:
    hang = hanging_loop_model(tmp_path / "hang.onnx")
    marker, env = marker_env()
    out = tmp_path / "r.json"
    run = run_mlfit("check", hang, tiny_model, "--target", "edge", "--timeout", "3", "--json", out, *FAST, env=env)
    assert_no_traceback(run)
    assert run.code == 3  # the worst: a model could not be measured
    report = load_report(out)
    assert report["complete"] is False
    stuck, fine = report["results"]
    assert stuck["error"]["kind"] == "timeout" and stuck["complete"] is False
    assert fine["error"] is None and fine["measurement"] is not None and fine["complete"] is True
    assert_no_process_left(marker)
