"""A real local Dask cluster: scheduler and workers as separate processes, all on 127.0.0.1.

Checks routing (a worker embodying ``edge`` measures edge, labelled measured-on-target; the
others go anywhere), the combined report, and a worker killed in the middle of a measurement.
Every process is started in its own session and killed by id in the fixtures' finally blocks;
every wait is bounded.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from conftest import FAST, assert_no_traceback, run_mlfit

pytest.importorskip("distributed")

import psutil

from mlfit.cli.worker import worker_argv

LOOPBACK = "127.0.0.1"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind((LOOPBACK, 0))
        return int(sock.getsockname()[1])


@dataclass
class LocalCluster:
    address: str
    logs: Path
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    def start(self, name: str, argv: list[str], env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
        log = (self.logs / f"{name}.log").open("wb")
        proc = subprocess.Popen(
            argv,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            env={**os.environ, **(env or {})},
        )
        self.procs[name] = proc
        return proc

    def worker(self, name: str, targets: list[str], env: dict[str, str] | None = None) -> None:
        """Start ``mlfit worker`` (the documented wrapper) bound to loopback, without a nanny."""
        argv = [
            sys.executable,
            "-m",
            "mlfit",
            "worker",
            self.address,
            "--host",
            LOOPBACK,
            "--name",
            name,
            "--no-nanny",
            "--death-timeout",
            "30",
        ]
        for target in targets:
            argv += ["--target", target]
        self.start(name, argv, env)

    def plain_worker(self, name: str, nthreads: int) -> None:
        """Start a plain ``dask worker`` (no mlfit wrapper, no target), bound to loopback."""
        argv = [
            sys.executable,
            "-m",
            "distributed.cli.dask_worker",
            self.address,
            "--host",
            LOOPBACK,
            "--name",
            name,
            "--nthreads",
            str(nthreads),
            "--no-dashboard",
            "--no-nanny",
            "--death-timeout",
            "30",
        ]
        self.start(name, argv)

    def wait_for_workers(self, n: int, timeout: float = 90.0) -> dict[str, set[str]]:
        from distributed import Client

        from mlfit.cluster.client import worker_resources

        with Client(self.address, timeout=30, set_as_default=False) as client:
            client.wait_for_workers(n, timeout=timeout)
            return worker_resources(client)

    def kill_tree(self, name: str) -> None:
        """SIGKILL one process and everything under it (measurement subprocesses included), by pid."""
        proc = self.procs[name]
        try:
            children = psutil.Process(proc.pid).children(recursive=True)
        except psutil.NoSuchProcess:
            children = []
        for victim in [proc.pid, *(c.pid for c in children)]:
            with contextlib.suppress(ProcessLookupError):
                os.kill(victim, signal.SIGKILL)
        proc.wait(timeout=10)

    def stop(self) -> None:
        """Terminate workers, then the scheduler; SIGKILL whatever (or whoever's children) is left."""
        for name in list(self.procs)[::-1]:
            proc = self.procs[name]
            try:
                leftovers = psutil.Process(proc.pid).children(recursive=True)
            except psutil.NoSuchProcess:
                leftovers = []
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    self.kill_tree(name)
            for child in leftovers:
                with contextlib.suppress(psutil.NoSuchProcess):
                    child.kill()


@pytest.fixture
def make_cluster(tmp_path: Path) -> Iterator[object]:
    clusters: list[LocalCluster] = []

    def make() -> LocalCluster:
        port = _free_port()
        logs = tmp_path / f"cluster-{port}"
        logs.mkdir()
        cluster = LocalCluster(f"tcp://{LOOPBACK}:{port}", logs)
        clusters.append(cluster)
        cluster.start(
            "scheduler",
            [
                sys.executable,
                "-m",
                "distributed.cli.dask_scheduler",
                "--host",
                LOOPBACK,
                "--port",
                str(port),
                "--no-dashboard",
            ],
        )
        return cluster

    try:
        yield make
    finally:
        for cluster in clusters:
            cluster.stop()


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


def test_routing_and_combined_report_on_a_local_cluster(
    make_cluster: object, zoo: Path, tmp_path: Path
) -> None:
    cluster = make_cluster()  # type: ignore[operator]
    cluster.worker("edge-pi", ["edge"])
    cluster.worker("general", [])
    workers = cluster.wait_for_workers(2)
    assert sorted(map(sorted, workers.values())) == [[], ["mlfit-target-edge"]]
    edge_address = next(a for a, r in workers.items() if r)
    out = tmp_path / "report.json"
    run = _run(
        [
            "check",
            zoo,
            "--target",
            "edge",
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
    assert set(rows) == {(m, t) for m in ("a_tiny.onnx", "b_cnn.onnx") for t in ("edge", "weak-cpu")}
    for model in ("a_tiny.onnx", "b_cnn.onnx"):
        result, edge = rows[(model, "edge")]
        measured = {c["provenance"] for c in edge["checks"] if c["metric"].startswith(("latency", "memory"))}
        assert measured == {"measured-on-target"}
        assert any(edge_address in note for note in edge["notes"])
        assert result["model"]["path"] == str((zoo / model).resolve())  # the client's path, not the worker's
        assert result["host"]["fingerprint"]
        _, other = rows[(model, "weak-cpu")]
        measured = {c["provenance"] for c in other["checks"] if c["metric"].startswith(("latency", "memory"))}
        assert measured == {"projected"}  # no worker embodies weak-cpu: projected from a worker's run
        assert not any(edge_address in note for note in other["notes"])
    assert any("measured on the target's own worker: edge" in n for n in report["notes"])
    assert any("no worker embodies weak-cpu" in n for n in report["notes"])
    assert any("one model at a time" in n for n in report["notes"])
    assert "measured (target)" in run.stdout


def test_worker_killed_mid_run_is_reported_and_the_rest_go_on(
    make_cluster: object, zoo: Path, tmp_path: Path
) -> None:
    cluster = make_cluster()  # type: ignore[operator]
    # The edge worker's measurements hang in the timed loop, so it is surely mid-run when killed.
    cluster.worker("edge-pi", ["edge"], env={"MLFIT_WORKER_FAULT": "measure:hang"})
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
            "edge",
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
    assert all("[edge]" in r["error"]["message"] for r in errors)
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
