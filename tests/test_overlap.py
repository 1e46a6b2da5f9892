"""The static analysis beside the worker's start-up (mlfit.run.overlap, issue 22): the worker waits,
idle, for the parent's analysis before its timed loop, and the result is the one a sequential run gives."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from dataclasses import replace
from pathlib import Path

import pytest

from mlfit.measure.protocol import MeasureSettings, WorkerRequest, WorkerResponse
from mlfit.options import MeasureOptions


def test_the_worker_does_not_start_timing_until_the_parent_is_done(tiny_model: Path, tmp_path: Path) -> None:
    hold = tmp_path / "static-analysis.done"
    settings = MeasureSettings(warmup_iterations=2, min_time_s=0.1, max_time_s=2, hold_path=str(hold))
    request = WorkerRequest(model_path=str(tiny_model), runtime="onnxruntime", threads=1,
                            scratch_dir=str(tmp_path), settings=settings)
    (tmp_path / "req.json").write_text(request.model_dump_json())
    proc = subprocess.Popen([sys.executable, "-m", "mlfit.measure.worker", str(tmp_path / "req.json"),
                             str(tmp_path / "out.json")], stdout=subprocess.PIPE, text=True)
    phases: list[str] = []
    warming = threading.Event()

    def read() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            event = json.loads(line)
            if event.get("event") == "phase":
                phases.append(event["phase"])
                if event["phase"] == "warmup":
                    warming.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    assert warming.wait(120)
    time.sleep(1.0)  # far past the 0.3 s a warm-up may last on its own
    held = list(phases)
    hold.touch()  # what the parent does when its analysis ends
    assert proc.wait(120) == 0
    reader.join(10)
    assert "measure" not in held  # no timing while the parent's work ran
    assert "measure" in phases
    response = WorkerResponse.model_validate_json((tmp_path / "out.json").read_text())
    assert response.error is None and response.measurement is not None
    warmup = response.measurement.contention.phase("warmup")  # type: ignore[union-attr]
    assert warmup is not None and warmup.wall_s >= 1.0  # the wait is part of the warm-up phase


def test_the_overlapped_analysis_is_the_sequential_one(tiny_model: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from mlfit.api import check
    from mlfit.run import overlap

    started: list[int] = []

    class Observed(overlap.PendingStatic):  # the real thread, counted
        def __init__(self, *args: object, **kwargs: object) -> None:
            started.append(1)
            super().__init__(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(overlap, "PendingStatic", Observed)
    fast = MeasureOptions(min_time=0.1, max_time=2, warmup=2)
    overlapped = check(tiny_model, ["edge"], options=fast)
    sequential = check(tiny_model, ["edge"], options=replace(fast, timeout=300.0))  # no overlap
    assert started == [1]  # the first ran its analysis beside the worker, the second (a --timeout) did not
    assert overlapped.error is None and sequential.error is None
    assert overlapped.analysis is not None and overlapped.analysis == sequential.analysis
    assert [t.verdict for t in overlapped.targets] == [t.verdict for t in sequential.targets]


_AFTER = """
import runpy, sys
import mlfit.measure.launcher as launcher
from mlfit.run.overlap import AFTER_THE_WORKER
run_worker = launcher._run_worker
seen = {}
def spy(*args, **kwargs):
    response = run_worker(*args, **kwargs)
    seen["after"] = set(sys.modules)
    return response
launcher._run_worker = spy
sys.argv = ["mlfit", "check", sys.argv[1], "--target", "edge", "--min-time", "0.1", "--warmup", "2", "--quiet"]
try:
    runpy.run_module("mlfit", run_name="__main__")
except SystemExit as exc:
    assert exc.code == 0, exc.code
print(sorted(set(AFTER_THE_WORKER) - seen["after"]))
"""


def test_the_modules_needed_after_the_worker_are_imported_beside_it(tiny_model: Path) -> None:
    # was: the device fits, the reports and rich's table were imported after the worker answered,
    # on the path to the verdict; now the analysis thread imports them under the worker's hold
    run = subprocess.run([sys.executable, "-c", _AFTER, str(tiny_model)], capture_output=True, text=True,
                         timeout=180, stdin=subprocess.DEVNULL)
    assert run.returncode == 0, run.stderr[-2000:]
    assert run.stdout.strip().splitlines()[-1] == "[]"
