"""The worker started ahead of its request (mlfit.measure.spare, issue 22): it is the process that
measures, its cold start leaves out its wait, and one nobody takes never outlives the CLI."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import psutil

from _hostile import assert_no_process_left, marker_env
from conftest import run_mlfit
from mlfit.measure import spare
from mlfit.measure.launcher import run_worker, scratch_dir
from mlfit.measure.protocol import MeasureSettings, WorkerRequest


def test_the_waiting_worker_measures_and_its_wait_is_not_its_start(tiny_model: Path) -> None:
    # was: every worker was spawned only once the request was written (0.25-0.45 s of interpreter
    # start and imports after the CLI's own work, never beside it)
    spare.prestart()
    waiting = spare._spare
    assert waiting is not None
    time.sleep(2.0)  # the CLI's work, during which the spare finished its imports and waits
    assert waiting.poll() is None
    with scratch_dir() as scratch:
        request = WorkerRequest(model_path=str(tiny_model), runtime="onnxruntime", threads=1, scratch_dir=scratch,
                                settings=MeasureSettings(warmup_iterations=2, min_time_s=0.1, max_time_s=2))
        response = run_worker(request, "onnxruntime")
    assert spare._spare is None and waiting.returncode == 0  # taken: this process measured, and ended
    assert response.error is None and response.measurement is not None
    cold = response.measurement.cold_start
    assert cold.process_start_s is not None and cold.process_start_s < 2.0  # the 2 s wait left out
    assert [name for name, _ in response.timeline.phases][:2] == ["start", "import"]  # type: ignore[union-attr]


def test_a_spare_ends_when_its_parent_closes_stdin_or_discards_it() -> None:
    spare.prestart()
    first = spare._spare
    assert first is not None
    spare.discard()
    assert first.poll() is not None
    proc = subprocess.Popen([sys.executable, "-m", "mlfit.measure.worker", "--wait"], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE)
    out, _ = proc.communicate(b"", timeout=120)  # stdin closed without a request: the parent is gone
    assert proc.returncode == 0 and out == b""


def test_no_spare_outlives_a_check_that_never_measured(tmp_path: Path) -> None:
    # a spare is started before the model is read; a model that cannot be read ends the run first
    marker, env = marker_env()
    bad = tmp_path / "broken.onnx"
    bad.write_bytes(b"not a model")
    run = run_mlfit("check", bad, "--target", "edge", "--quiet", env=env)
    assert run.code == 3, run.output
    assert_no_process_left(marker)
    mine = [p for p in psutil.Process().children(recursive=True) if "--wait" in " ".join(p.cmdline())]
    assert mine == []


def test_a_spare_takes_the_run_s_scratch_folder_as_tmpdir(tiny_model: Path, monkeypatch) -> None:
    # a spawned worker gets TMPDIR=scratch in its environment; a spare sets it when its request comes, so
    # what it starts (here the "orphan" test fault's child) and writes through tempfile land there too
    monkeypatch.setenv("MLFIT_WORKER_FAULT", "load:orphan")
    spare.prestart()
    with scratch_dir() as scratch:
        request = WorkerRequest(model_path=str(tiny_model), runtime="onnxruntime", threads=1, scratch_dir=scratch)
        (Path(scratch) / "request.json").write_text(request.model_dump_json())
        (Path(scratch) / "worker.log").touch()
        proc = spare.take(str(Path(scratch) / "request.json"), str(Path(scratch) / "out.json"),
                          str(Path(scratch) / "worker.log"))
        assert proc is not None and proc.stdout is not None
        try:
            for line in proc.stdout:
                if b'"load"' in line:
                    break
            deadline = time.monotonic() + 30
            children: list[psutil.Process] = []
            while not children and time.monotonic() < deadline:
                children = psutil.Process(proc.pid).children()
                time.sleep(0.1)
            assert children and children[0].environ()["TMPDIR"] == scratch
            assert Path(f"/proc/{proc.pid}/fd/2").resolve() == (Path(scratch) / "worker.log").resolve()
        finally:
            spare._kill(proc)


_DEFERRED = """
import sys
from pydantic import BaseModel
from mlfit.result import DEFERRED_MODELS, build_validators
import mlfit.measure.protocol as protocol
def built(name):
    module = sys.modules[name]
    return [type(v.__pydantic_validator__).__name__ == "SchemaValidator" for v in vars(module).values()
            if isinstance(v, type) and issubclass(v, BaseModel) and v.__module__ == name]
before = [any(built(name)) for name in DEFERRED_MODELS]
build_validators(*DEFERRED_MODELS)
after = [all(built(name)) for name in DEFERRED_MODELS]
print(before, after)
"""


def test_model_validators_are_built_when_the_time_is_free() -> None:
    # was: importing the result, records, protocol and catalog models built ~80 validators at once, in
    # the CLI before it could hand the worker its request; now a spare (while it waits) and the CLI's
    # analysis thread (under the worker's hold) build them, and a first use builds any other
    run = subprocess.run([sys.executable, "-c", _DEFERRED], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    assert run.stdout.split("] [") == ["[False, False, False, False, False", "True, True, True, True, True]\n"]
