"""Workers that hang, crash, abort, leave children behind or eat memory (issue 6, cases 6-8).

Every fault is real: a Loop that never ends, a worker that raises SIGSEGV or SIGABRT on
itself (MLFIT_WORKER_FAULT, see measure/worker.py), a model that allocates 400 MB per
inference. Each becomes an explained error, the process group is gone afterwards, and
partial timings are kept and flagged.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from _hostile import (
    assert_no_process_left,
    hanging_loop_model,
    load_report,
    marker_env,
    memory_hog_model,
    processes_with,
)
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
    # A bound the fine model meets even on a loaded runner (its profiling phase once took over 3 s there).
    run = run_mlfit("check", hang, tiny_model, "--target", "edge", "--timeout", "10", "--json", out, *FAST, env=env)
    assert_no_traceback(run)
    assert run.code == 3  # the worst: a model could not be measured
    report = load_report(out)
    assert report["complete"] is False
    stuck, fine = report["results"]
    assert stuck["error"]["kind"] == "timeout" and stuck["complete"] is False
    assert fine["error"] is None and fine["measurement"] is not None and fine["complete"] is True
    assert_no_process_left(marker)


# ---------------------------------------------------------------- issue 19, item 1: no orphaned worker


def _workers(marker: str) -> list[Any]:
    return [p for p in processes_with(marker) if "mlfit.measure.worker" in " ".join(p.cmdline())]


def _wait_for(predicate: Callable[[], Any], seconds: float) -> Any:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        found = predicate()
        if found:
            return found
        time.sleep(0.1)
    return predicate()


def test_sigkilled_parent_takes_its_never_ending_worker_along(tmp_path: Path) -> None:
    """`timeout -s KILL`, a CI job's hard limit, the OOM killer: the worker in a never-ending
    inference (a 2^62-trip Loop) used to run on at 100% CPU, re-parented to init."""
    model = hanging_loop_model(tmp_path / "hang.onnx")
    marker, env = marker_env()
    parent = subprocess.Popen([sys.executable, "-m", "mlfit", "check", str(model), "--target", "edge", *FAST],
                              env={**os.environ, **env}, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    try:
        workers = _wait_for(lambda: _workers(marker), 60)
        assert workers, "the worker never started"
        worker = workers[0]
        _wait_for(lambda: worker.cpu_times().user > 1.0, 60)  # inside the inference that never ends
        parent.kill()
        parent.wait()
        gone = _wait_for(lambda: not _workers(marker), 5)
        assert gone, [p.cmdline() for p in _workers(marker)]
    finally:
        if parent.poll() is None:
            parent.kill()
        assert_no_process_left(marker)


_WATCHED = """
import os, sys, time
from mlfit.lifeline import Watchdog
dog = Watchdog(int(sys.argv[1]), poll_s=0.1).start()
if len(sys.argv) > 2:
    dog.arm(float(sys.argv[2]))
time.sleep(600)
"""

_MIDDLE = """
import subprocess, sys, time, os
subprocess.Popen([sys.executable, "-c", sys.argv[1], str(os.getpid()), *sys.argv[2:]], start_new_session=True)
time.sleep(600)
"""


def test_watchdog_ends_a_child_whose_parent_died_without_the_kernel_signal() -> None:
    """The worker's own watchdog: a child without the parent-death signal (here: none was set)
    still ends when its parent is SIGKILLed."""
    marker, env = marker_env()
    middle = subprocess.Popen([sys.executable, "-c", _MIDDLE, _WATCHED], env={**os.environ, **env})
    try:
        assert _wait_for(lambda: len(processes_with(marker)) == 2, 30)
        middle.kill()
        middle.wait()
        assert _wait_for(lambda: not processes_with(marker), 5)
    finally:
        assert_no_process_left(marker)


def test_watchdog_enforces_the_phase_deadline_itself() -> None:
    _marker, env = marker_env()
    child = subprocess.Popen([sys.executable, "-c", _WATCHED, str(os.getpid()), "0.5"], env={**os.environ, **env},
                             start_new_session=True)
    try:
        assert child.wait(timeout=30) == -signal.SIGKILL
    finally:
        if child.poll() is None:
            child.kill()


def test_sigkilled_parent_takes_the_workers_own_children_along(tmp_path: Path, tiny_model: Path) -> None:
    """A child the worker started in a session of its own ("escape") dies with the worker, which
    dies with mlfit: nothing is left after `kill -9` of `mlfit check`."""
    marker, env = marker_env()
    env = {**os.environ, **env, "MLFIT_WORKER_FAULT": "load:escape"}
    parent = subprocess.Popen([sys.executable, "-m", "mlfit", "check", str(tiny_model), "--target", "edge", *FAST],
                              env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    try:
        assert _wait_for(lambda: len(processes_with(marker)) >= 3, 60), "the worker's child never started"
        parent.kill()
        parent.wait()
        assert _wait_for(lambda: not processes_with(marker), 5), [p.cmdline() for p in processes_with(marker)]
    finally:
        if parent.poll() is None:
            parent.kill()
        assert_no_process_left(marker)
