"""Cluster faults with real Dask processes on 127.0.0.1 (issue 18 items 11, 13; issue 19 item 5).

- only checked bytes are sent: a SavedModel folder with a symlink out of it and a FIFO named like
  a model are refused on the client, before anything is sent, and the other model goes on;
- a task error Dask cannot rebuild on the client, and an oversized answer, are one line each,
  exit 3, within a bound far below the run's deadline;
- a scheduler that dies is named as such, and the report is marked incomplete;
- a stopped (SIGSTOP) worker is named within the stall bound and its task re-sent;
- the documented scheduler command listens on loopback only, HTTP included.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from conftest import FAST, assert_no_traceback, run_mlfit

pytest.importorskip("distributed")

import psutil

from _cluster import LOOPBACK, cluster_factory, free_port

pytestmark = pytest.mark.slow


@pytest.fixture
def make_cluster(tmp_path: Path) -> Iterator[Any]:
    yield from cluster_factory(tmp_path)


def _popen_check(args: list[str], env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "mlfit", "check", *args, *FAST], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL, start_new_session=True,
                            env={**os.environ, "COLUMNS": "200", **(env or {})})


def _wait_measuring(pid: int, timeout: float = 120) -> None:
    proc = psutil.Process(pid)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if any("mlfit.measure.worker" in " ".join(c.cmdline()) for c in proc.children(recursive=True)):
            return
        time.sleep(0.1)
    pytest.fail("the worker never started a measurement")


def _finish(check: subprocess.Popen[str], timeout: float) -> tuple[str, str]:
    try:
        return check.communicate(timeout=timeout)
    finally:
        if check.poll() is None:
            os.killpg(check.pid, signal.SIGKILL)
            check.wait(timeout=10)


def test_only_checked_bytes_are_sent(make_cluster: Any, tiny_model: Path, tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    models = repo / "models"
    saved = models / "sm"
    (saved / "assets").mkdir(parents=True)
    (repo / "secret.txt").write_text("SECRET-BYTES")
    (saved / "saved_model.pb").write_bytes(b"\x0a\x00")
    (saved / "assets" / "leak.txt").symlink_to("../../../secret.txt")  # git keeps symlinks
    os.mkfifo(models / "pipe.onnx")  # opening it for reading would block forever
    shutil.copy(tiny_model, models / "ok.onnx")
    cluster = make_cluster()
    cluster.worker("general", [])
    cluster.wait_for_workers(1)
    out = tmp_path / "report.json"
    run = run_mlfit("check", models, "--target", "weak-cpu", "--cluster", cluster.address, "--json", out, *FAST,
                    timeout=180)
    assert_no_traceback(run)
    assert run.code == 3, run.output
    results = {Path(r["model"]["path"]).name: r for r in json.loads(out.read_text())["results"]}
    assert results["ok.onnx"]["error"] is None and results["ok.onnx"]["measurement"]["latency"]["n"] > 0
    assert "FIFO" in results["pipe.onnx"]["error"]["message"]
    assert "symlink leading out of the model's folder" in results["sm"]["error"]["message"]
    assert "SECRET-BYTES" not in run.output
    # Refused on the client: the worker never received them (the old client sent the secret's bytes,
    # where the worker saw a plain file, and blocked forever reading the FIFO).


_ROGUE = '''
"""A worker preload: its first task raises an error whose traceback no client can rebuild (the
pickle calls int('not a number')), its later tasks answer with 60 MiB of text."""
import pickle

import distributed.worker as dw
import mlfit.cluster.tasks as tasks
from distributed import protocol

CALLS = [0]


class Bad:
    def __reduce__(self):
        return (int, ("not a number",))


_honest = getattr(dw, "_honest_error_message", dw.error_message)
dw._honest_error_message = _honest


def error_message(e, status="error"):
    msg = _honest(e, status)
    msg["traceback"] = protocol.to_serialize(pickle.dumps(Bad()))
    return msg


dw.error_message = error_message


def measure_task(*args, **kwargs):
    CALLS[0] += 1
    if CALLS[0] == 1:
        raise RuntimeError("rogue")
    return "x" * (60 * 2**20)


tasks.measure_task = measure_task
'''


def test_unbuildable_error_and_oversized_answer_are_one_line_each(
    make_cluster: Any, tiny_model: Path, tmp_path: Path
) -> None:
    preload = tmp_path / "rogue_errors.py"
    preload.write_text(_ROGUE)
    models = tmp_path / "models"
    models.mkdir()
    shutil.copy(tiny_model, models / "a.onnx")
    shutil.copy(tiny_model, models / "b.onnx")
    cluster = make_cluster()
    cluster.plain_worker("rogue", 1, extra=["--preload", str(preload)])
    cluster.wait_for_workers(1)
    out = tmp_path / "report.json"
    # The run's own deadline is many minutes: this timeout fails the old code, which waited it out.
    run = run_mlfit("check", models, "--target", "weak-cpu", "--cluster", cluster.address, "--json", out, *FAST,
                    timeout=150)
    assert_no_traceback(run)
    assert run.code == 3, run.output
    messages = sorted(r["error"]["message"] for r in json.loads(out.read_text())["results"])
    assert any("the cluster task failed" in m for m in messages), messages
    assert any("refused the worker's answer unread" in m and "8 MiB" in m for m in messages), messages
    assert "invalid literal" not in run.output  # Dask's own failure is not shown


def test_lost_scheduler_is_named_and_the_report_is_incomplete(
    make_cluster: Any, tiny_model: Path, tmp_path: Path
) -> None:
    cluster = make_cluster()
    cluster.worker("busy", [], env={"MLFIT_WORKER_FAULT": "measure:hang"})
    cluster.wait_for_workers(1)
    out = tmp_path / "report.json"
    check = _popen_check([str(tiny_model), "--target", "weak-cpu", "--cluster", cluster.address, "--json", str(out)])
    _wait_measuring(cluster.procs["busy"].pid)
    cluster.kill_tree("scheduler")
    stdout, stderr = _finish(check, 120)
    assert "Traceback" not in stdout + stderr, stderr
    assert check.returncode == 3, stdout + stderr
    assert "scheduler" in stderr and "was lost" in stderr, stderr
    assert "NoneType" not in stdout + stderr and "left the cluster" not in stderr, stderr
    report = json.loads(out.read_text())
    assert report["complete"] is False
    (result,) = report["results"]
    assert result["complete"] is False and "scheduler" in result["error"]["message"]


def test_stopped_worker_is_named_and_its_task_sent_again(
    make_cluster: Any, tiny_model: Path, tmp_path: Path
) -> None:
    cluster = make_cluster()
    cluster.worker("frozen", [], env={"MLFIT_WORKER_FAULT": "measure:hang"})
    cluster.wait_for_workers(1)
    out = tmp_path / "report.json"
    check = _popen_check([str(tiny_model), "--target", "weak-cpu", "--cluster", cluster.address, "--json", str(out)],
                         env={"MLFIT_CLUSTER_STALL_S": "8"})
    try:
        _wait_measuring(cluster.procs["frozen"].pid)
        cluster.worker("rescuer", [])
        cluster.wait_for_workers(2)
        os.kill(cluster.procs["frozen"].pid, signal.SIGSTOP)
        stdout, stderr = _finish(check, 150)
    finally:
        cluster.kill_tree("frozen")
    assert "Traceback" not in stdout + stderr, stderr
    assert check.returncode in (0, 1), stdout + stderr
    report = json.loads(out.read_text())
    (result,) = report["results"]
    assert result["error"] is None and result["measurement"]["latency"]["n"] > 0
    assert any("frozen" in n and "sent no heartbeat" in n for n in report["notes"]), report["notes"]


def test_documented_scheduler_command_listens_on_loopback_only(tmp_path: Path) -> None:
    """The docs/scale.md recipe, with the loopback address for the machine's interface."""
    recipe = (Path(__file__).parents[1] / "docs" / "scale.md").read_text()
    assert "--dashboard-address 10.0.0.5:8787" in recipe and "--no-dashboard" in recipe
    port = free_port()
    argv = [sys.executable, "-m", "distributed.cli.dask_scheduler", "--host", LOOPBACK, "--port", str(port),
            "--dashboard-address", f"{LOOPBACK}:0", "--no-dashboard"]
    log = (tmp_path / "scheduler.log").open("wb")
    proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                            start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        sockets: list[tuple[str, int]] = []
        while time.monotonic() < deadline:
            sockets = [(c.laddr.ip, c.laddr.port) for c in psutil.Process(proc.pid).net_connections(kind="inet")
                       if c.status == psutil.CONN_LISTEN]
            if len(sockets) >= 2:
                break
            time.sleep(0.2)
        assert len(sockets) >= 2, sockets  # the comm port and the HTTP server (/info, /json, /health)
        assert {ip for ip, _ in sockets} == {LOOPBACK}, sockets
    finally:
        proc.kill()
        proc.wait(timeout=10)
