"""A real local Dask cluster for tests: scheduler and workers as separate processes, all on
127.0.0.1. Every process is started in its own session and stopped (or killed) by id; every
wait is bounded. Shared by tests/test_cluster.py and tests/test_cluster_security.py."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil

LOOPBACK = "127.0.0.1"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((LOOPBACK, 0))
        return int(sock.getsockname()[1])


def make_certs(folder: Path) -> dict[str, Path]:
    """A CA and one certificate per role, made with the openssl CLI (the docs/scale.md recipe)."""
    folder.mkdir(parents=True, exist_ok=True)

    def openssl(*args: str) -> None:
        subprocess.run(["openssl", *args], cwd=folder, check=True, capture_output=True, timeout=60)

    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca-key.pem", "-out", "ca.pem",
            "-days", "2", "-subj", "/CN=mlfit test CA")
    paths = {"ca": folder / "ca.pem"}
    for role in ("scheduler", "worker", "client"):
        openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{role}-key.pem", "-out", f"{role}.csr",
                "-subj", f"/CN=mlfit-{role}")
        openssl("x509", "-req", "-in", f"{role}.csr", "-CA", "ca.pem", "-CAkey", "ca-key.pem", "-CAcreateserial",
                "-out", f"{role}.pem", "-days", "2")
        paths[role] = folder / f"{role}.pem"
        paths[f"{role}-key"] = folder / f"{role}-key.pem"
    return paths


def make_target_cert(folder: Path, name: str, target: str) -> tuple[Path, Path]:
    """A worker certificate signed by ``folder``'s CA that names ``mlfit-target-TARGET`` as a
    subject alternative name URI (the docs/scale.md recipe). Returns (certificate, key)."""

    def openssl(*args: str) -> None:
        subprocess.run(["openssl", *args], cwd=folder, check=True, capture_output=True, timeout=60)

    (folder / f"{name}.ext").write_text(f"subjectAltName = URI:mlfit-target-{target}\n")
    openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{name}-key.pem", "-out", f"{name}.csr",
            "-subj", f"/CN=mlfit-{name}")
    openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey", "ca-key.pem", "-CAcreateserial",
            "-out", f"{name}.pem", "-days", "2", "-extfile", f"{name}.ext")
    return folder / f"{name}.pem", folder / f"{name}-key.pem"


@dataclass
class LocalCluster:
    address: str
    logs: Path
    certs: dict[str, Path] | None = None
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

    def tls_args(self, role: str) -> list[str]:
        if self.certs is None:
            return []
        return ["--tls-ca-file", str(self.certs["ca"]), "--tls-cert", str(self.certs[role]),
                "--tls-key", str(self.certs[f"{role}-key"])]

    def worker(self, name: str, targets: list[str], env: dict[str, str] | None = None,
               host: str | None = LOOPBACK, extra: list[str] | None = None) -> None:
        """Start ``mlfit worker`` (the documented wrapper), without a nanny."""
        argv = [sys.executable, "-m", "mlfit", "worker", self.address, "--name", name, "--no-nanny",
                "--death-timeout", "30", *self.tls_args("worker"), *(extra or [])]
        if host is not None:
            argv += ["--host", host]
        for target in targets:
            argv += ["--target", str(target)]
        self.start(name, argv, env)

    def plain_worker(self, name: str, nthreads: int, extra: list[str] | None = None,
                     env: dict[str, str] | None = None) -> None:
        """Start a plain ``dask worker`` (no mlfit wrapper, no target), bound to loopback."""
        argv = [sys.executable, "-m", "distributed.cli.dask_worker", self.address, "--host", LOOPBACK,
                "--name", name, "--nthreads", str(nthreads), "--no-dashboard", "--no-nanny",
                "--death-timeout", "30", *(extra or [])]
        self.start(name, argv, env)

    def client(self) -> Any:
        from distributed import Client

        security = None
        if self.certs is not None:
            from distributed.security import Security

            security = Security(tls_ca_file=str(self.certs["ca"]), tls_client_cert=str(self.certs["client"]),
                                tls_client_key=str(self.certs["client-key"]), require_encryption=True)
        return Client(self.address, timeout=30, set_as_default=False, security=security)

    def wait_for_workers(self, n: int, timeout: float = 90.0) -> dict[str, set[str]]:
        from mlfit.cluster.client import worker_resources

        with self.client() as client:
            client.wait_for_workers(n, timeout=timeout)
            return worker_resources(client)

    def worker_info(self) -> dict[str, Any]:
        with self.client() as client:
            return dict(client.scheduler_info(n_workers=-1)["workers"])

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


def cluster_factory(tmp_path: Path) -> Iterator[Any]:
    """The body of a ``make_cluster`` fixture: yields a function that starts a scheduler."""
    clusters: list[LocalCluster] = []

    def make(certs: dict[str, Path] | None = None) -> LocalCluster:
        port = free_port()
        logs = tmp_path / f"cluster-{port}"
        logs.mkdir()
        scheme = "tls" if certs else "tcp"
        cluster = LocalCluster(f"{scheme}://{LOOPBACK}:{port}", logs, certs)
        clusters.append(cluster)
        argv = [sys.executable, "-m", "distributed.cli.dask_scheduler", "--host", LOOPBACK, "--port", str(port),
                "--no-dashboard"]
        env = None
        if certs:
            argv += ["--protocol", "tls", *cluster.tls_args("scheduler")]
            env = {"DASK_DISTRIBUTED__COMM__REQUIRE_ENCRYPTION": "True"}
        cluster.start("scheduler", argv, env)
        return cluster

    try:
        yield make
    finally:
        for cluster in clusters:
            cluster.stop()


def host_target(folder: Path, name: str = "this-host") -> Path:
    """A profile whose hardware file describes this very machine (so a worker may claim it)."""
    from mlfit.measure.host import host_info

    host = host_info()
    folder.mkdir(parents=True, exist_ok=True)
    ram = min(host.ram_bytes, host.cgroup_memory_limit or host.ram_bytes)
    (folder / f"{name}-hw.yaml").write_text(f"""schema_version: 1
id: {name}-hw
name: The machine running the tests
cpu: {{arch: {host.arch}, model: test host, cores: {host.cores_usable}, frequency: 2 GHz, peak_fp32: 100 GFLOPS,
      source: "measured: the test host"}}
memory: {{ram: {ram} B, os_reserved: 300 MiB, bandwidth: 10 GB/s, source: "measured: the test host"}}
storage: {{size: 32 GB, source: "measured: the test host"}}
""")
    profile = folder / f"{name}.yaml"
    profile.write_text(f"""schema_version: 1
id: {name}
description: A deployment on the machine running the tests
hardware: {name}-hw.yaml
runtimes: [onnxruntime]
threads: 1
batch_size: 1
budgets:
  latency: {{p50: 5 s}}
  peak_memory: 90%
""")
    return profile
