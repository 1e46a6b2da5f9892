"""A real local Dask cluster: scheduler and workers as separate processes, all on 127.0.0.1.

Checks routing (a worker embodying ``this-host``, a target whose hardware file describes this
machine, measures it, labelled measured-on-target; the others go anywhere), the combined
report, and a worker killed in the middle of a measurement. Every process is started in its
own session and killed by id in the fixtures' finally blocks (tests/_cluster.py); every wait is
bounded. Security (binding, TLS, refused answers, claims, bounded connect, scratch cleanup):
tests/test_cluster_security.py.
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

from _cluster import cluster_factory, host_target
from mlfit.cli.worker import worker_argv


@pytest.fixture
def make_cluster(tmp_path: Path) -> Iterator[Any]:
    yield from cluster_factory(tmp_path)


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A target whose hardware file describes this machine: a worker may honestly claim it."""
    return host_target(tmp_path_factory.mktemp("lab"))


@pytest.fixture(scope="module")
def zoo(tmp_path_factory: pytest.TempPathFactory, tiny_model: Path, small_cnn_model: Path) -> Path:
    folder = tmp_path_factory.mktemp("cluster-models")
    shutil.copy(tiny_model, folder / "a_tiny.onnx")
    shutil.copy(small_cnn_model, folder / "b_cnn.onnx")
    return folder


def _run(args: list[str | Path], timeout: float = 240) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "COLUMNS": "200"}
    return subprocess.run(
        [sys.executable, "-m", "mlfit", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        stdin=subprocess.DEVNULL,
    )


def test_worker_command_line_is_loopback_ready_and_advertises_targets() -> None:
    argv = worker_argv("tcp://127.0.0.1:8786", ["edge", "weak-cpu"], "127.0.0.1", "pi", True, 60)
    assert argv[argv.index("--resources") + 1] == "mlfit-target-edge=1,mlfit-target-weak-cpu=1"
    assert "--no-dashboard" in argv and argv[argv.index("--nthreads") + 1] == "1"
    assert argv[argv.index("--host") + 1] == "127.0.0.1"
    assert argv[argv.index("--worker-class") + 1] == "mlfit.cluster.node.MeasuringWorker"


def test_routing_and_combined_report_on_a_local_cluster(
    make_cluster: object, zoo: Path, lab: Path, tmp_path: Path
) -> None:
    cluster = make_cluster()  # type: ignore[operator]
    cluster.worker("lab-box", [str(lab)])
    cluster.worker("general", [])
    workers = cluster.wait_for_workers(2)
    assert sorted(map(sorted, workers.values())) == [[], ["mlfit-target-this-host"]]
    edge_address = next(a for a, r in workers.items() if r)
    out = tmp_path / "report.json"
    run = _run(
        [
            "check",
            zoo,
            "--target",
            lab,
            "--target",
            "weak-cpu",
            "--cluster",
            cluster.address,
            "--json",
            out,
            *FAST,
        ]
    )
    assert "Traceback" not in run.stdout + run.stderr, run.stderr
    assert run.returncode in (0, 1), run.stdout + run.stderr
    report = json.loads(out.read_text())
    rows = {
        (Path(r["model"]["path"]).name, t["target"]): (r, t) for r in report["results"] for t in r["targets"]
    }
    assert set(rows) == {(m, t) for m in ("a_tiny.onnx", "b_cnn.onnx") for t in ("this-host", "weak-cpu")}
    for model in ("a_tiny.onnx", "b_cnn.onnx"):
        result, edge = rows[(model, "this-host")]
        measured = [c for c in edge["checks"] if c["metric"].startswith(("latency", "memory"))]
        # Plain tcp:// authenticates nobody: the lab worker's figures are its host's, never the target's.
        assert {c["provenance"] for c in measured} == {"measured-on-host"}
        assert all(c["verdict"] == "INCONCLUSIVE" and "claimed, unverified" in c["reason"] for c in measured)
        assert any(edge_address in note and "plain tcp://" in note for note in edge["notes"])
        assert result["model"]["path"] == str((zoo / model).resolve())  # the client's path, not the worker's
        assert result["host"]["fingerprint"]
        _, other = rows[(model, "weak-cpu")]
        measured = {c["provenance"] for c in other["checks"] if c["metric"].startswith(("latency", "memory"))}
        assert measured == {"projected"}  # no worker embodies weak-cpu: projected from a worker's run
        assert not any(edge_address in note for note in other["notes"])
    assert not any("measured on the target's own worker" in n for n in report["notes"])
    assert any("sent once" in n and "JSON text" in n for n in report["notes"])
    assert any("no worker embodies weak-cpu" in n for n in report["notes"])
    assert any("one model at a time" in n for n in report["notes"])
    assert "measured (target)" not in run.stdout


def test_worker_killed_mid_run_is_reported_and_the_rest_go_on(
    make_cluster: object, zoo: Path, lab: Path, tmp_path: Path
) -> None:
    cluster = make_cluster()  # type: ignore[operator]
    # The lab worker's measurements hang in the timed loop, so it is surely mid-run when killed.
    cluster.worker("edge-pi", [str(lab)], env={"MLFIT_WORKER_FAULT": "measure:hang"})
    cluster.plain_worker("general", nthreads=2)  # plain `dask worker`, two tasks at once
    cluster.wait_for_workers(2)
    out = tmp_path / "report.json"
    env = {**os.environ, "COLUMNS": "200"}
    check = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "mlfit",
            "check",
            str(zoo),
            "--target",
            str(lab),
            "--target",
            "weak-cpu",
            "--cluster",
            cluster.address,
            "--json",
            str(out),
            *FAST,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        edge_proc = psutil.Process(cluster.procs["edge-pi"].pid)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if any(
                "mlfit.measure.worker" in " ".join(c.cmdline()) for c in edge_proc.children(recursive=True)
            ):
                break
            time.sleep(0.1)
        else:
            pytest.fail("the edge worker never started a measurement")
        cluster.kill_tree("edge-pi")
        stdout, stderr = check.communicate(timeout=180)
    finally:
        if check.poll() is None:
            os.killpg(check.pid, signal.SIGKILL)
            check.wait(timeout=10)
    assert "Traceback" not in stdout + stderr, stderr
    assert check.returncode == 3, stdout + stderr
    report = json.loads(out.read_text())
    errors = [r for r in report["results"] if r["error"] is not None]
    finished = [r for r in report["results"] if r["error"] is None]
    assert len(errors) == 2, [r["error"] for r in errors]
    assert all("left the cluster" in r["error"]["message"] for r in errors)
    assert all("[this-host]" in r["error"]["message"] for r in errors)
    assert len(finished) == 2 and all([t["target"] for t in r["targets"]] == ["weak-cpu"] for r in finished)
    assert "left the cluster" in stderr
    assert any("run several tasks at once" in n for n in report["notes"])


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--shared-path",), "--shared-path only applies with --cluster"),
        (("--cluster", "bogus://x"), "expected a scheduler address such as tcp://HOST:8786"),
        (("--cluster", "127.0.0.1:8786"), "expected a scheduler address"),
    ],
)
def test_bad_cluster_flags_exit_2_at_once(tiny_model: Path, args: tuple[str, ...], message: str) -> None:
    run = run_mlfit("check", tiny_model, "--target", "edge", *args, *FAST, timeout=60)
    assert_no_traceback(run)
    assert run.code == 2 and message in run.stderr, run.output
