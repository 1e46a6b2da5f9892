"""Ctrl-C, cancellation and output failures (issue 6, case 12): workers killed, a partial
report marked incomplete, exit 130; an unwritable path refused before measuring; a failed
write leaves the previous report intact and no temporary file behind."""

from __future__ import annotations

import json
import os
import queue
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from _hostile import assert_no_process_left, hanging_loop_model, load_report, marker_env, processes_with
from conftest import FAST, assert_no_traceback, run_mlfit


def _start_measuring(model: Path, out: Path, env: dict[str, str]) -> tuple[subprocess.Popen[str], list[str]]:
    """Start a long `mlfit check` and return once the worker is in its timed loop."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "mlfit", "check", model, "--target", "edge", "--min-time", "60", "--max-time",
         "90", "--warmup", "1", "--json", str(out)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True,
        env={**os.environ, **env})
    assert proc.stderr is not None
    lines: queue.Queue[str | None] = queue.Queue()

    def pump() -> None:
        assert proc.stderr is not None
        for line in proc.stderr:
            lines.put(line)
        lines.put(None)

    threading.Thread(target=pump, daemon=True).start()
    seen: list[str] = []
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        line = lines.get(timeout=60)
        if line is None:
            break
        seen.append(line)
        if "measuring latency" in line:
            time.sleep(1.5)  # let the worker stream some samples (every 0.5 s)
            return proc, _drain_later(lines, seen)
    proc.kill()
    pytest.fail("the measurement never started: " + "".join(seen))


def _drain_later(lines: queue.Queue[str | None], seen: list[str]) -> list[str]:
    def drain() -> None:
        while (line := lines.get()) is not None:
            seen.append(line)

    threading.Thread(target=drain, daemon=True).start()
    return seen


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_interrupt_during_measurement_writes_partial_report(tmp_path: Path, tiny_model: Path,
                                                            signum: signal.Signals) -> None:
    marker, env = marker_env()
    out = tmp_path / "report.json"
    proc, stderr = _start_measuring(tiny_model, out, env)
    proc.send_signal(signum)
    try:
        code = proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    time.sleep(0.1)
    text = "".join(stderr)
    assert "Traceback" not in text, text
    assert code == 130, text
    assert "interrupted while measuring latency" in text
    assert "partial report, marked incomplete" in text
    report = load_report(out)
    assert report["complete"] is False
    result = report["results"][0]
    assert result["complete"] is False and result["measurement"] is None
    assert result["error"]["kind"] == "interrupted" and result["error"]["exit_code"] == 130
    assert result["error"]["partial"]["latency"]["n"] > 0  # what was measured is kept
    assert_no_process_left(marker)


def test_unwritable_output_is_reported_before_measuring(tmp_path: Path, tiny_model: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    start = time.monotonic()
    run = run_mlfit("check", tiny_model, "--target", "edge", "--json", blocker / "report.json", *FAST)
    assert_no_traceback(run)
    assert run.code == 2
    assert "folder" in run.stderr and "does not exist" in run.stderr
    assert time.monotonic() - start < 30  # refused at once, not after a measurement
    run = run_mlfit("check", tiny_model, "--target", "edge", "--json", tmp_path, *FAST)
    assert run.code == 2 and "is a directory" in run.stderr


def test_full_disk_is_a_one_line_error(tiny_model: Path) -> None:
    if not Path("/dev/full").exists():
        pytest.skip("no /dev/full on this system")
    run = run_mlfit("check", tiny_model, "--target", "edge", "--json", "/dev/full", *FAST)
    assert_no_traceback(run)
    assert run.code == 2
    assert "could not write '/dev/full': No space left on device" in run.stderr


_WRITE_WITH_FILE_SIZE_LIMIT = """
import resource, sys
from pathlib import Path
from mlfit.errors import MlfitError
from mlfit.report.atomic import write_atomic
# The kernel refuses writes past 4 KiB (EFBIG), as a full disk or a quota would refuse them.
resource.setrlimit(resource.RLIMIT_FSIZE, (4096, resource.RLIM_INFINITY))
try:
    write_atomic(Path(sys.argv[1]), "x" * 100_000)
except MlfitError as exc:
    print(exc.one_line())
    sys.exit(2)
"""


def test_failed_write_keeps_the_previous_report(tmp_path: Path) -> None:
    target = tmp_path / "report.json"
    previous = json.dumps({"schema_version": 1, "previous": True})
    target.write_text(previous)
    proc = subprocess.run([sys.executable, "-c", _WRITE_WITH_FILE_SIZE_LIMIT, str(target)],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    assert f"could not write '{target}'" in proc.stdout and "the previous file is unchanged" in proc.stdout
    assert target.read_text() == previous
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report.json"]  # no temporary file remains


def test_successful_write_replaces_atomically(tmp_path: Path, tiny_model: Path) -> None:
    target = tmp_path / "report.json"
    target.write_text("old")
    run = run_mlfit("profile", tiny_model, "--json", target, *FAST)
    assert run.code == 0, run.output
    assert load_report(target)["complete"] is True
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report.json"]


def test_interrupt_with_several_models_stops_and_reports(tmp_path: Path, tiny_model: Path) -> None:
    marker, env = marker_env()
    out = tmp_path / "report.json"
    proc = subprocess.Popen(
        [sys.executable, "-m", "mlfit", "check", str(tiny_model), str(tiny_model), "--target", "edge",
         "--min-time", "60", "--max-time", "90", "--warmup", "1", "--json", str(out)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True,
        env={**os.environ, **env})
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not any(
                "mlfit.measure.worker" in " ".join(p.cmdline()) for p in processes_with(marker)):
            time.sleep(0.2)
        time.sleep(2.0)  # the first model is in its timed loop
        proc.send_signal(signal.SIGINT)
        _, stderr = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert "Traceback" not in stderr, stderr
    assert proc.returncode == 130, stderr
    report = load_report(out)
    assert report["complete"] is False
    assert len(report["results"]) == 1  # the second model was never started
    assert report["results"][0]["error"]["kind"] == "interrupted"
    assert_no_process_left(marker)


# ---------------------------------------------------------------- issue 19, item 2: container targets

def _pod(folder: Path) -> Path:
    path = folder / "pod.yaml"
    path.write_text("apiVersion: v1\nkind: Pod\nmetadata: {name: scorer}\nspec:\n  containers:\n"
                    "    - name: model\n      image: registry.example/model:1\n"
                    "      resources:\n        limits: {cpu: '1', memory: 2Gi}\n")
    return path


def _needs_cgroups() -> None:
    from mlfit.measure import cgroup

    reason = cgroup.can_emulate()
    if reason is not None:
        pytest.skip(f"cannot make a cgroup here: {reason}")


def _interrupt_when(proc: subprocess.Popen[str], words: str, signum: signal.Signals) -> str:
    """Send ``signum`` once ``words`` appeared on stderr (and the worker had a second in its
    phase); return all of stderr."""
    assert proc.stderr is not None
    seen: list[str] = []
    for line in proc.stderr:
        seen.append(line)
        if words in line:
            time.sleep(1.5)
            proc.send_signal(signum)
            break
    _, rest = proc.communicate(timeout=60)
    return "".join(seen) + rest


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_interrupted_container_run_of_many_models_keeps_the_finished_ones(
        tmp_path: Path, tiny_model: Path, signum: signal.Signals) -> None:
    """Against a container target, Ctrl-C in the second model lost every result: no report at all."""
    _needs_cgroups()
    folder = tmp_path / "models"
    folder.mkdir()
    shutil.copy(tiny_model, folder / "a.onnx")
    hanging_loop_model(folder / "b_hang.onnx")  # its first inference never ends
    marker, env = marker_env()
    out = tmp_path / "report.json"
    proc = subprocess.Popen(
        [sys.executable, "-m", "mlfit", "check", str(folder), "--target", str(_pod(tmp_path)), "--threads", "1",
         *FAST[:-1], "--json", str(out)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True,
        env={**os.environ, **env})
    try:
        stderr = _interrupt_when(proc, "b_hang.onnx: measuring", signum)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert "Traceback" not in stderr, stderr
    assert proc.returncode == 130, stderr
    report = load_report(out)
    assert report["complete"] is False
    first, second = report["results"]
    assert first["error"] is None and first["targets"][0]["checks"], first  # the finished model is kept
    assert second["error"]["kind"] == "interrupted" and second["complete"] is False
    assert f"partial report, marked incomplete, written to {out}" in stderr
    assert_no_process_left(marker)


def test_one_interrupted_container_run_writes_a_partial_report(tmp_path: Path, tiny_model: Path) -> None:
    """A single container run stopped by SIGTERM said only "interrupted" and wrote nothing."""
    _needs_cgroups()
    marker, env = marker_env()
    out = tmp_path / "report.json"
    proc = subprocess.Popen(
        [sys.executable, "-m", "mlfit", "check", str(tiny_model), "--target", str(_pod(tmp_path)), "--threads", "1",
         "--min-time", "60", "--max-time", "90", "--warmup", "1", "--json", str(out)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True,
        env={**os.environ, **env})
    try:
        stderr = _interrupt_when(proc, "measuring latency", signal.SIGTERM)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert "Traceback" not in stderr, stderr
    assert proc.returncode == 130, stderr
    result = load_report(out)["results"][0]
    assert result["complete"] is False and result["error"]["kind"] == "interrupted"
    assert result["error"]["partial"]["latency"]["n"] > 0  # the samples streamed before the signal
    assert "interrupted while measuring latency" in stderr
    assert f"partial report, marked incomplete, written to {out}" in stderr
    assert_no_process_left(marker)
