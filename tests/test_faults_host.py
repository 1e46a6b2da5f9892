"""The host's resources fail (issue 19, items 3 and 4): temporary folders left by a killed run
are swept by the next one (only a dead run's, only mlfit's); a full scratch disk, no writable
temporary folder and a tiny `ulimit -n` are one line with the fix, never a traceback or exit 1;
a signal in the first tenths of a second still exits 130.

Real faults: a SIGKILLed `mlfit check`, real tmpfs mounts and read-only bind mounts in a mount
namespace (root only, else skipped), a real RLIMIT_NOFILE, real early signals.
"""

from __future__ import annotations

import contextlib
import json
import os
import resource
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from _hostile import assert_no_process_left, marker_env, processes_with
from conftest import FAST, assert_no_traceback, run_mlfit
from mlfit import scratch

needs_root = pytest.mark.skipif(os.geteuid() != 0 or shutil.which("mount") is None, reason="mounts need root")


def _mlfit_folders(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("mlfit-"))


def _wait(predicate: object, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return True
        time.sleep(0.1)
    return False


def _worker(marker: str) -> psutil.Process | None:
    found = [p for p in processes_with(marker) if "mlfit.measure.worker" in " ".join(p.cmdline())]
    return found[0] if found else None


def _scratch_of(marker: str) -> Path | None:
    """The scratch folder of the worker that got its request: where its stderr (the run's log) goes."""
    worker = _worker(marker)
    try:
        log = Path(os.readlink(f"/proc/{worker.pid}/fd/2")) if worker is not None else None
    except OSError:
        return None
    return log.parent if log is not None and log.name == "worker.log" else None


# ---------------------------------------------------------------- item 3: stale temporary folders


def test_folders_of_a_sigkilled_run_are_swept_by_the_next_run(tmp_path: Path, tiny_model: Path) -> None:
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    foreign = tmp / "mlfit-not-ours"  # no owner marker: never touched
    foreign.mkdir()
    marker, env = marker_env()
    env = {**os.environ, **env, "TMPDIR": str(tmp)}
    killed = subprocess.Popen([sys.executable, "-m", "mlfit", "check", str(tiny_model), "--target", "edge",
                               "--min-time", "60", "--max-time", "90", "--quiet"], env=env,
                              stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        # The worker that measures writes its log (stderr) in the run's scratch folder, which is also its
        # TMPDIR (set at its spawn, or when a worker started ahead gets its request: test_spare.py), so
        # everything it writes through tempfile lands there.
        assert _wait(lambda: _scratch_of(marker) is not None, 60)
        worker_tmp = _scratch_of(marker)
        assert worker_tmp is not None
        assert worker_tmp.parent == tmp and worker_tmp.name.startswith("mlfit-")
        left = _mlfit_folders(tmp)
        assert any(n.startswith("mlfit-model-") for n in left) and worker_tmp.name in left
        live = subprocess.run([sys.executable, "-m", "mlfit", "check", str(tiny_model), "--target", "edge", *FAST],
                              env=env, capture_output=True, text=True, timeout=300)
        assert live.returncode == 0, live.stderr
        assert set(left) <= set(_mlfit_folders(tmp))  # a live run's folders are never swept
        killed.kill()
        killed.wait()
        assert_no_process_left(marker)
        assert set(left) <= set(_mlfit_folders(tmp))  # left behind by SIGKILL
        run = subprocess.run([sys.executable, "-m", "mlfit", "check", str(tiny_model), "--target", "edge", *FAST],
                             env=env, capture_output=True, text=True, timeout=300)
        assert run.returncode == 0, run.stderr
        assert _mlfit_folders(tmp) == ["mlfit-not-ours"]
    finally:
        if killed.poll() is None:
            killed.kill()


def test_sweep_needs_the_marker_a_free_lock_and_a_dead_owner(tmp_path: Path) -> None:
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                          text=True, check=True)
    for name, owner in (("mlfit-dead", {"pid": int(dead.stdout), "start": "1"}),
                        ("mlfit-reused-pid", {"pid": os.getpid(), "start": "1"}),  # pid alive, other start
                        ("mlfit-alive", {"pid": os.getpid(), "start": scratch.start_time(os.getpid())}),
                        ("mlfit-garbled", "not json")):
        (tmp_path / name).mkdir()
        (tmp_path / name / scratch.MARKER).write_text(json.dumps(owner) if isinstance(owner, dict) else owner)
    (tmp_path / "mlfit-unmarked").mkdir()
    (tmp_path / "other-dead").mkdir()
    (tmp_path / "other-dead" / scratch.MARKER).write_text(json.dumps({"pid": int(dead.stdout), "start": "1"}))
    removed = scratch.sweep(tmp_path)
    assert sorted(p.name for p in removed) == ["mlfit-dead", "mlfit-reused-pid"]
    with scratch.run_folder() as held:  # locked by this live process
        marker = json.loads((held / scratch.MARKER).read_text())
        (held / scratch.MARKER).write_text(json.dumps({**marker, "start": "1"}))  # even a lying marker
        assert held not in scratch.sweep(held.parent)
    assert not held.exists()


# ---------------------------------------------------------------- item 4: resources, early signals


@contextlib.contextmanager
def _tmpfs(where: Path, size: str) -> Iterator[Path]:
    where.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where)], check=True)
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)


@needs_root
def test_full_scratch_disk_names_the_folder_and_the_reason(tmp_path: Path, tiny_model: Path) -> None:
    """It said "the worker exited with code 1 (worker log: PATH)", the log already deleted."""
    with _tmpfs(tmp_path / "small", "1m") as small:
        (small / "ballast").write_bytes(b"\0" * 900_000)  # a few hundred samples fill what is left
        run = run_mlfit("check", tiny_model, "--target", "edge", "--min-time", "5", "--max-time", "8",
                        "--warmup", "2", "--quiet", env={"TMPDIR": str(small)})
        left = _mlfit_folders(small)
    assert_no_traceback(run)
    assert run.code == 3, run.output
    line = run.stderr.strip().splitlines()[-1]
    assert "is full (No space left on device)" in line and str(small) in line, run.stderr
    assert "or set TMPDIR to a folder with room" in line
    assert "worker.log" not in run.stderr
    assert left == []


@needs_root
def test_no_writable_temporary_folder_names_tmpdir(tmp_path: Path, tiny_model: Path) -> None:
    if shutil.which("unshare") is None:
        pytest.skip("no unshare")
    model = Path("/dev/shm") / f"mlfit-test-{os.getpid()}.onnx"  # readable once /tmp is read-only
    shutil.copy(tiny_model, model)
    script = ("mount --bind /tmp /tmp && mount -o remount,bind,ro /tmp && mount --bind /var/tmp /var/tmp && "
              "mount -o remount,bind,ro /var/tmp && cd /tmp && exec \"$@\"")
    try:
        proc = subprocess.run(["unshare", "-m", "sh", "-c", script, "sh", sys.executable, "-m", "mlfit", "check",
                               str(model), "--target", "edge", *FAST], capture_output=True, text=True, timeout=300,
                              env={**os.environ, "TMPDIR": str(tmp_path)})
    finally:
        model.unlink()
    assert "Traceback" not in proc.stderr, proc.stderr
    assert proc.returncode == 2, proc.stderr
    assert f"no writable temporary folder: TMPDIR ({tmp_path})" in proc.stderr
    assert "set TMPDIR to a writable folder" in proc.stderr


def test_too_few_file_descriptors_name_ulimit(tiny_model: Path) -> None:
    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (8, 8))

    proc = subprocess.run([sys.executable, "-m", "mlfit", "check", str(tiny_model), "--target", "edge", *FAST],
                          capture_output=True, text=True, timeout=300, preexec_fn=limit)
    assert "Traceback" not in proc.stderr, proc.stderr
    assert proc.returncode in (2, 3), proc.stderr
    assert "too many open files" in proc.stderr and "ulimit -n" in proc.stderr


def test_the_entry_point_imports_nothing_heavy_before_its_handlers() -> None:
    code = "import sys, mlfit.cli.entry; print(sorted(m for m in ('typer', 'rich', 'pydantic', 'numpy') " \
           "if m in sys.modules))"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert proc.stdout.strip() == "[]"


def _catches(pid: int, signum: int) -> bool:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    caught = int(next(line.split()[1] for line in status.splitlines() if line.startswith("SigCgt:")), 16)
    return bool(caught >> (signum - 1) & 1)


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_a_signal_in_the_first_tenths_of_a_second_exits_130(tiny_model: Path, signum: signal.Signals) -> None:
    """Ctrl-C while the CLI imported printed a traceback; SIGTERM exited 143."""
    proc = subprocess.Popen([sys.executable, "-m", "mlfit", "check", str(tiny_model), "--target", "edge", *FAST],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL)
    started = time.monotonic()
    # As soon as SIGTERM is handled (the entry point's first act), or 0.3 s at most: still importing.
    while time.monotonic() - started < 0.3 and not _catches(proc.pid, signal.SIGTERM):
        time.sleep(0.005)
    proc.send_signal(signum)
    _, stderr = proc.communicate(timeout=60)
    assert "Traceback" not in stderr, stderr
    assert proc.returncode == 130, stderr
    assert stderr.strip().endswith("interrupted")


def test_loadgen_output_lives_in_the_scratch_folder_and_goes_with_ctrl_c(tmp_path: Path, tiny_model: Path) -> None:
    """MLPerf LoadGen's output folder was made in TMPDIR, outside the run's scratch folder, and
    stayed after Ctrl-C (the worker is killed, so its own cleanup never runs)."""
    pytest.importorskip("mlperf_loadgen")
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    marker, env = marker_env()
    proc = subprocess.Popen([sys.executable, "-m", "mlfit", "check", str(tiny_model), "--target", "edge",
                             "--scenario", "server", "--qps", "50", "--min-time", "30", "--max-time", "40",
                             "--warmup", "1"], env={**os.environ, **env, "TMPDIR": str(tmp), "COLUMNS": "200"},
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        assert _wait(lambda: any(p.name.startswith("mlfit-loadgen-") for p in tmp.rglob("mlfit-loadgen-*")), 120)
        outputs = list(tmp.rglob("mlfit-loadgen-*"))
        assert all(p.parent.parent == tmp and p.parent.name.startswith("mlfit-") for p in outputs), outputs
        proc.send_signal(signal.SIGINT)
        _, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, stderr
    assert_no_process_left(marker)
    assert _mlfit_folders(tmp) == []
