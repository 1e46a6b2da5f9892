"""The cluster as a network service (issue 11, item 6), with real Dask processes on 127.0.0.1.

- ``mlfit worker`` listens on loopback for a loopback scheduler, and serves no web page;
- mutual TLS round trip with certificates made by the openssl CLI (the docs/scale.md recipe);
  tls:// without the files, partial flags, a key that is not the certificate's, and a client
  certificate from another CA are each a one-line exit 2;
- a rogue worker answering with a pickle (as the result and as the result's type) runs nothing
  on the client: the answer is refused and no sentinel file appears;
- a worker claiming a target it does not match is refused at start, and with --force-claim its
  figures are labelled "claimed, unverified", never measured on the target;
- over mutual TLS, only a worker whose certificate names mlfit-target-NAME is measured (target);
- a port that accepts and stays silent, or refuses, is an exit 2 naming the address, quickly;
- a SIGKILLed worker's scratch folder (the model bytes) is removed by the next worker.
"""

from __future__ import annotations

import json
import os
import pickle
import shutil
import socket
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from conftest import FAST, assert_no_traceback, run_mlfit

pytest.importorskip("distributed")

import psutil

from _cluster import LOOPBACK, cluster_factory, free_port, host_target, make_certs, make_target_cert
from mlfit.cluster import claims, guard, net
from mlfit.errors import ConfigError
from mlfit.result import HostInfo


@pytest.fixture
def make_cluster(tmp_path: Path) -> Iterator[Any]:
    yield from cluster_factory(tmp_path)


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    if shutil.which("openssl") is None:
        pytest.skip("the openssl CLI is needed to make test certificates")
    folder = tmp_path_factory.mktemp("certs")
    made = make_certs(folder)
    other = make_certs(folder / "other-ca")  # a second CA: its certificates must be refused
    made["other-client"], made["other-client-key"] = other["client"], other["client-key"]
    return made


def _tls(certs: dict[str, Path], cert: str = "client", key: str | None = None) -> list[str]:
    return ["--tls-ca-file", str(certs["ca"]), "--tls-cert", str(certs[cert]),
            "--tls-key", str(certs[key or f"{cert}-key"])]


def _listening(pid: int) -> list[tuple[str, int]]:
    """Every (address, port) the process and its children listen on."""
    procs = [psutil.Process(pid), *psutil.Process(pid).children(recursive=True)]
    found = []
    for proc in procs:
        for conn in proc.net_connections(kind="inet"):
            if conn.status == psutil.CONN_LISTEN:
                found.append((conn.laddr.ip, conn.laddr.port))
    return found


# -- fast checks, no cluster ------------------------------------------------------------------------------


def test_address_parsing_binding_and_loopback() -> None:
    address = net.parse_address("tls://[::1]:8786")
    assert (address.scheme, address.host, address.port, str(address)) == ("tls", "::1", 8786, "tls://[::1]:8786")
    assert net.bind_host(net.parse_address("tcp://127.0.0.1:8786")) == "127.0.0.1"
    assert net.bind_host(net.parse_address("tcp://localhost:8786")) == "127.0.0.1"
    assert net.is_loopback("127.0.0.2") and not net.is_loopback("192.0.2.1")  # TEST-NET: parsed, never reached
    with pytest.raises(ConfigError, match="expected a scheduler address"):
        net.parse_address("tcp://host:99999")


def test_plain_tcp_beyond_loopback_warns_and_dashboard_is_opt_in(capsys: pytest.CaptureFixture[str]) -> None:
    from mlfit.cli.worker import worker_argv

    net.warn_if_plain_tcp(net.parse_address(f"tcp://{LOOPBACK}:8786"), "--cluster")
    assert capsys.readouterr().err == ""
    # 192.0.2.1 is a documentation address (TEST-NET-1): only parsed here, never connected to.
    net.warn_if_plain_tcp(net.parse_address("tcp://192.0.2.1:8786"), "--cluster")
    assert "unencrypted, unauthenticated tcp://" in capsys.readouterr().err
    net.warn_if_plain_tcp(net.parse_address("tls://192.0.2.1:8786"), "--cluster")
    assert capsys.readouterr().err == ""
    quiet = worker_argv(f"tcp://{LOOPBACK}:8786", [], LOOPBACK, None, False, 60)
    assert "--no-dashboard" in quiet and "--dashboard" not in quiet
    asked = worker_argv(f"tcp://{LOOPBACK}:8786", [], LOOPBACK, None, False, 60, dashboard=True)
    assert asked[asked.index("--dashboard-address") + 1] == f"{LOOPBACK}:0"  # the listen address, not all


def test_guard_refuses_every_global_while_on(tmp_path: Path) -> None:
    sentinel = tmp_path / "pwned"

    class Evil:
        def __reduce__(self) -> tuple[Any, ...]:
            return (open, (str(sentinel), "w"))

    payload = pickle.dumps(Evil())
    with guard.no_unpickling():
        with pytest.raises(guard.RefusedUnpickling, match=r"io\.open"):
            pickle.loads(payload)
        assert pickle.loads(pickle.dumps((b"x", "y", 1, [2.0], {"k": {3}}))) == (b"x", "y", 1, [2.0], {"k": {3}})
        assert pickle.loads(pickle.dumps(bytes)) is bytes  # what Dask's "dask" family header names
    assert not sentinel.exists()
    assert pickle.loads(pickle.dumps(ConfigError("x"))).message == "x"  # off the block: pickle as usual


def _host(**changes: Any) -> HostInfo:
    base = {"fingerprint": "f", "hostname": "h", "cpu_model": "c", "arch": "aarch64", "cores_logical": 4,
            "cores_physical": 4, "cores_usable": 4, "affinity": [0, 1, 2, 3], "cgroup_cpu_quota": None,
            "cgroup_memory_limit": None, "ram_bytes": int(3.7 * 2**30), "os": "Linux", "python": "3.11",
            "load_avg_1m": 0.0}
    return HostInfo(**{**base, **changes})


def test_claim_checks_architecture_cores_and_memory() -> None:
    from mlfit.api import resolve_targets

    edge = resolve_targets(["edge"])[0].hardware  # Raspberry Pi 4, 4 GiB
    assert claims.mismatches(_host(), edge) == []  # what a real Pi 4 reports (3.7 GiB seen)
    assert claims.mismatches(_host(arch="arm64"), edge) == []
    wrong = claims.mismatches(_host(arch="x86_64", cores_usable=2, cores_logical=2, cores_physical=1,
                                    ram_bytes=24 * 2**30), edge)
    assert len(wrong) == 3 and "architecture x86_64" in wrong[0] and "hardware has 4" in wrong[1]
    assert "24.0 GiB" in wrong[2]
    assert claims.mismatches(_host(cgroup_memory_limit=2**30), edge)  # a container capped at 1 GiB is not a Pi


def test_tls_flag_mistakes_exit_2_before_connecting(tiny_model: Path, tmp_path: Path) -> None:
    port = free_port()  # nothing listens there: each refusal must come before any connection
    cases = [
        (["--cluster", f"tls://{LOOPBACK}:{port}"], "a tls:// scheduler needs --tls-ca-file"),
        (["--cluster", f"tls://{LOOPBACK}:{port}", "--tls-ca-file", tmp_path / "ca.pem"], "missing --tls-cert"),
        (["--cluster", f"tls://{LOOPBACK}:{port}", "--tls-ca-file", tmp_path / "no.pem", "--tls-cert",
          tmp_path / "no.pem", "--tls-key", tmp_path / "no.pem"], "--tls-ca-file"),
        (["--tls-ca-file", tmp_path / "no.pem"], "only apply with --cluster"),
    ]
    for args, message in cases:
        run = run_mlfit("check", tiny_model, "--target", "weak-cpu", *args, *FAST, timeout=60)
        assert_no_traceback(run)
        assert run.code == 2 and message in run.stderr, run.output


@pytest.mark.slow
def test_tls_misconfiguration_exits_2(tiny_model: Path, certs: dict[str, Path]) -> None:
    port = free_port()
    address = f"tls://{LOOPBACK}:{port}"
    wrong_key = run_mlfit("check", tiny_model, "--target", "weak-cpu", "--cluster", address,
                          *_tls(certs, "client", "worker-key"), *FAST, timeout=60)
    assert_no_traceback(wrong_key)
    assert wrong_key.code == 2 and "cannot be used together" in wrong_key.stderr, wrong_key.output
    plain = run_mlfit("check", tiny_model, "--target", "weak-cpu", "--cluster", f"tcp://{LOOPBACK}:{port}",
                      *_tls(certs), *FAST, timeout=60)
    assert plain.code == 2 and "use tls://" in plain.stderr, plain.output
    worker = run_mlfit("worker", address, *_tls(certs, "worker", "client-key"), timeout=60)
    assert_no_traceback(worker)
    assert worker.code == 2 and "cannot be used together" in worker.stderr, worker.output


@pytest.mark.slow
def test_worker_refuses_a_target_it_does_not_match() -> None:
    run = run_mlfit("worker", f"tcp://{LOOPBACK}:{free_port()}", "--target", "edge", timeout=60)
    assert_no_traceback(run)
    assert run.code == 2, run.output
    assert "is not edge's hardware rpi4-4gb" in run.stderr and "--force-claim" in run.stderr


class _SilentServer:
    """A plain TCP server on 127.0.0.1 that accepts connections and never says a word (or only
    ``greeting``, then nothing)."""

    def __init__(self, greeting: bytes = b"") -> None:
        self.greeting = greeting
        self.sock = socket.socket()
        self.sock.bind((LOOPBACK, 0))
        self.sock.listen(8)
        self.port = int(self.sock.getsockname()[1])
        self.accepted: list[socket.socket] = []
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            if self.greeting:
                conn.sendall(self.greeting)
            self.accepted.append(conn)

    def close(self) -> None:
        self.sock.close()
        for conn in self.accepted:
            conn.close()


@pytest.mark.slow
def test_connect_to_a_port_that_is_not_a_scheduler_exits_2_quickly(tiny_model: Path) -> None:
    server, greeter = _SilentServer(), _SilentServer(b"\x01")
    try:
        for address, message in [
            (f"tcp://{LOOPBACK}:{server.port}", "did not answer like a Dask scheduler"),
            (f"tcp://{LOOPBACK}:{free_port()}", "cannot reach the Dask scheduler"),
            # It greets, so the probe passes; Dask's handshake then stalls, bounded by mlfit.
            (f"tcp://{LOOPBACK}:{greeter.port}", "did not complete Dask's handshake"),
        ]:
            start = time.monotonic()
            run = run_mlfit("check", tiny_model, "--target", "weak-cpu", "--cluster", address, *FAST, timeout=90)
            elapsed = time.monotonic() - start
            assert_no_traceback(run)
            assert run.code == 2 and message in run.stderr and address in run.stderr, run.output
            assert elapsed < 60, elapsed  # bounded (the probe waits 10 s); before: 400 s and more
        assert server.accepted and greeter.accepted  # both were really reached
    finally:
        server.close()
        greeter.close()


# -- real clusters ----------------------------------------------------------------------------------------


@pytest.mark.slow
def test_worker_listens_on_loopback_only_and_serves_no_web_page(make_cluster: Any) -> None:
    cluster = make_cluster()
    # No --host: the listen address is derived from the (loopback) scheduler. With a nanny, so
    # that both of its processes are checked.
    argv = [sys.executable, "-m", "mlfit", "worker", cluster.address, "--name", "quiet", "--death-timeout", "30"]
    proc = cluster.start("quiet", argv)
    cluster.wait_for_workers(1)
    (info,) = cluster.worker_info().values()
    assert info["host"] == LOOPBACK and info["nanny"].startswith(f"tcp://{LOOPBACK}:")
    assert "dashboard" not in (info.get("services") or {})
    sockets = _listening(proc.pid)
    assert sockets and {ip for ip, _ in sockets} == {LOOPBACK}, sockets
    assert len(sockets) == 2, sockets  # the nanny's and the worker's comm ports: no HTTP server
    assert "listening on 127.0.0.1" in (cluster.logs / "quiet.log").read_text()
    # Asked for, the web pages are served, on the listen address only.
    cluster.worker("asked", [], host=None, extra=["--dashboard"])
    cluster.wait_for_workers(2)
    (asked,) = [w for w in cluster.worker_info().values() if w["name"] == "asked"]
    assert "dashboard" in asked["services"]
    sockets = _listening(cluster.procs["asked"].pid)
    assert {ip for ip, _ in sockets} == {LOOPBACK} and len(sockets) == 2, sockets  # comm + HTTP, no nanny


@pytest.mark.slow
def test_mutual_tls_round_trip(make_cluster: Any, tiny_model: Path, certs: dict[str, Path], tmp_path: Path) -> None:
    cluster = make_cluster(certs)
    # With a nanny (the default) and the listen address derived from the scheduler's.
    cluster.start("tls-worker", [sys.executable, "-m", "mlfit", "worker", cluster.address, "--name", "tls-worker",
                                 "--death-timeout", "30", *cluster.tls_args("worker")])
    cluster.wait_for_workers(1)
    (info,) = cluster.worker_info().values()
    assert info["host"] == LOOPBACK and str(info["nanny"]).startswith(f"tls://{LOOPBACK}:"), info
    out = tmp_path / "report.json"
    run = run_mlfit("check", tiny_model, "--target", "weak-cpu", "--cluster", cluster.address, *_tls(certs),
                    "--json", out, *FAST, timeout=240)
    assert_no_traceback(run)
    assert run.code in (0, 1), run.output
    (result,) = json.loads(out.read_text())["results"]
    assert result["error"] is None and result["measurement"]["latency"]["n"] > 0
    assert "unencrypted" not in run.stderr  # tls:// on loopback: no warning
    # A certificate from another CA, and no TLS at all, are refused with exit 2.
    other = run_mlfit("check", tiny_model, "--target", "weak-cpu", "--cluster", cluster.address,
                      *_tls(certs, "other-client"), *FAST, timeout=90)
    assert_no_traceback(other)
    assert other.code == 2 and cluster.address in other.stderr, other.output
    plain = run_mlfit("check", tiny_model, "--target", "weak-cpu", "--cluster",
                      cluster.address.replace("tls://", "tcp://"), *FAST, timeout=90)
    assert_no_traceback(plain)
    assert plain.code == 2, plain.output


@pytest.mark.slow
def test_only_a_certificate_naming_the_target_makes_figures_measured_on_target(
    make_cluster: Any, tiny_model: Path, certs: dict[str, Path], tmp_path: Path
) -> None:
    """Over mutual TLS, a worker whose host facts match the target is measured (target) only when
    the certificate it authenticated with names mlfit-target-NAME; a CA-signed worker certificate
    without that name gives claimed figures, INCONCLUSIVE."""
    lab = host_target(tmp_path / "lab")
    named_cert, named_key = make_target_cert(certs["ca"].parent, "lab-worker", "this-host")
    cluster = make_cluster(certs)
    runs = {}
    for name, cert, key in (("named", named_cert, named_key), ("unnamed", certs["worker"], certs["worker-key"])):
        cluster.start(name, [sys.executable, "-m", "mlfit", "worker", cluster.address, "--name", name, "--no-nanny",
                             "--death-timeout", "30", "--target", str(lab), "--tls-ca-file", str(certs["ca"]),
                             "--tls-cert", str(cert), "--tls-key", str(key)])
        cluster.wait_for_workers(1)
        out = tmp_path / f"{name}.json"
        run = run_mlfit("check", tiny_model, "--target", lab, "--cluster", cluster.address, *_tls(certs),
                        "--json", out, *FAST, timeout=240)
        assert_no_traceback(run)
        assert run.code in (0, 1, 4), run.output
        (result,) = json.loads(out.read_text())["results"]
        (report,) = result["targets"]
        runs[name] = (run, report)
        cluster.kill_tree(name)
        deadline = time.monotonic() + 60
        while cluster.worker_info() and time.monotonic() < deadline:
            time.sleep(0.5)
    run, report = runs["named"]
    measured = [c for c in report["checks"] if c["metric"].startswith(("latency", "memory"))]
    assert {c["provenance"] for c in measured} == {"measured-on-target"}, report
    assert "measured (target)" in run.stdout
    run, report = runs["unnamed"]
    measured = [c for c in report["checks"] if c["metric"].startswith(("latency", "memory"))]
    assert {c["provenance"] for c in measured} == {"measured-on-host"}
    assert all(c["verdict"] == "INCONCLUSIVE" for c in measured)
    assert any("does not name mlfit-target-this-host" in n for n in report["notes"]), report["notes"]
    assert "measured (target)" not in run.stdout


_ROGUE = '''
"""A worker preload that turns a Dask worker hostile. Its first answer is a pickle that creates a
sentinel file (named by the pid of whoever unpickles it), sent in the pickle family whatever the
client asks for, with the result's type (which Dask clients unpickle) such a payload too; its
second task raises an exception that is such a payload; later ones answer like the first."""
import os
import pickle
import types

import mlfit.cluster.tasks as tasks
from distributed import Worker, worker_state_machine

SENTINELS = os.environ["ROGUE_SENTINELS"]
CODE = f"import os; open(os.path.join({SENTINELS!r}, 'unpickled-by-' + str(os.getpid())), 'w')"
CALLS = [0]


class Evil:
    def __reduce__(self):
        return (exec, (CODE,))


class EvilError(Exception):
    def __reduce__(self):
        return (exec, (CODE,))


def measure_task(*args, **kwargs):
    CALLS[0] += 1
    if CALLS[0] == 2:
        raise EvilError("no")
    return Evil()


tasks.measure_task = measure_task
# Dask may import a preload twice (from the given path and from its own copy): patch once.
_get_data = getattr(Worker, "_honest_get_data", Worker.get_data)
Worker._honest_get_data = _get_data


async def get_data(self, comm, keys, who=None, serializers=None):
    return await _get_data(self, comm, keys, who=who, serializers=["pickle"])


Worker.get_data = get_data
_finished = worker_state_machine.TaskFinishedMsg
_to_dict = getattr(_finished, "_honest_to_dict", _finished.to_dict)
_finished._honest_to_dict = _to_dict


def to_dict(self):
    message = _to_dict(self)
    message["type"] = pickle.dumps(Evil())
    return message


worker_state_machine.TaskFinishedMsg.to_dict = to_dict


def dask_setup(worker):
    worker.handlers["get_data"] = types.MethodType(get_data, worker)
'''


@pytest.mark.slow
def test_rogue_worker_pickle_never_runs_on_the_client(make_cluster: Any, tiny_model: Path, tmp_path: Path) -> None:
    sentinels = tmp_path / "sentinels"
    sentinels.mkdir()
    preload = tmp_path / "rogue_preload.py"
    preload.write_text(_ROGUE)
    cluster = make_cluster()
    cluster.plain_worker("rogue", 1, extra=["--preload", str(preload)], env={"ROGUE_SENTINELS": str(sentinels)})
    cluster.wait_for_workers(1)
    rogue_pid = cluster.procs["rogue"].pid

    def unpickled_by() -> set[int]:
        """Pids, other than the rogue worker's own, that ran a payload."""
        return {int(p.name.rsplit("-", 1)[1]) for p in sentinels.iterdir()} - {rogue_pid}

    out = tmp_path / "report.json"
    answer = run_mlfit("check", tiny_model, "--target", "weak-cpu", "--cluster", cluster.address, "--json", out,
                       *FAST, timeout=240)
    assert_no_traceback(answer)
    assert unpickled_by() == set()  # nothing the worker sent was unpickled by the client (nor the scheduler)
    assert answer.code == 3, answer.output
    (result,) = json.loads(out.read_text())["results"]
    assert "refused the worker's answer" in result["error"]["message"], result["error"]
    assert "refused the worker's answer" in answer.stderr
    raised = run_mlfit("check", tiny_model, "--target", "weak-cpu", "--cluster", cluster.address, *FAST,
                       timeout=240)
    assert_no_traceback(raised)
    assert unpickled_by() == set()  # nor an exception it raised
    assert raised.code == 3 and "the cluster task failed" in raised.stderr, raised.output
    # Control: a plain Dask client of the same cluster does run the payload (the message that says
    # a result is ready carries it), so the rogue is really hostile and mlfit's client really differs.
    control = (f"import time; from distributed import Client; import mlfit.cluster.tasks as t; "
               f"c = Client({cluster.address!r}, timeout=30, set_as_default=False); "
               "f = c.submit(t.measure_task, 1, 2, 3, 4, 5, pure=False); deadline = time.monotonic() + 60\n"
               "while f.status == 'pending' and time.monotonic() < deadline: time.sleep(0.1)\n"
               "c.close()")
    proc = subprocess.run([sys.executable, "-c", control], capture_output=True, timeout=120, check=False)
    assert len(unpickled_by()) == 1, proc.stderr[-2000:]


@pytest.mark.slow
def test_forced_claim_is_labelled_unverified_never_measured_on_target(
    make_cluster: Any, tiny_model: Path, tmp_path: Path
) -> None:
    cluster = make_cluster()
    cluster.worker("fake-pi", ["edge"], extra=["--force-claim"])
    cluster.wait_for_workers(1)
    assert "advertised anyway (--force-claim)" in (cluster.logs / "fake-pi.log").read_text()
    out = tmp_path / "report.json"
    run = run_mlfit("check", tiny_model, "--target", "edge", "--cluster", cluster.address, "--json", out,
                    *FAST, timeout=240)
    assert_no_traceback(run)
    assert run.code in (0, 1), run.output
    report = json.loads(out.read_text())
    (result,) = report["results"]
    (edge,) = result["targets"]
    provenances = {c["provenance"] for c in edge["checks"]}
    assert "measured-on-target" not in provenances and "measured-on-host" in provenances
    measured = [c for c in edge["checks"] if c["provenance"] == "measured-on-host"]
    assert all(c["verdict"] == "INCONCLUSIVE" and "claimed, unverified" in c["reason"] for c in measured)
    assert any("claimed, unverified" in n and "rpi4-4gb" in n for n in edge["notes"])
    assert any("claimed, unverified" in n for n in report["notes"])
    assert not any("measured on the target's own worker" in n for n in report["notes"])
    assert "measured (target)" not in run.stdout


@pytest.mark.slow
def test_killed_worker_leaves_no_model_bytes_behind(make_cluster: Any, tiny_model: Path, tmp_path: Path) -> None:
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    env = {"TMPDIR": str(tmp)}
    cluster = make_cluster()
    cluster.worker("doomed", [], env={**env, "MLFIT_WORKER_FAULT": "measure:hang"})
    cluster.wait_for_workers(1)
    check = subprocess.Popen(
        [sys.executable, "-m", "mlfit", "check", str(tiny_model), "--target", "weak-cpu", "--cluster",
         cluster.address, *FAST],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL, start_new_session=True,
    )
    scratch = tmp / f"mlfit-cluster-{os.getuid()}"
    try:
        deadline = time.monotonic() + 120
        models: list[Path] = []
        while time.monotonic() < deadline and not models:
            models = list(scratch.glob("p*/task-*/model/tiny_add.onnx"))
            time.sleep(0.2)
        assert models, "the worker never wrote the model it measures"
        folder = models[0].parents[2]
        cluster.kill_tree("doomed")
        assert folder.exists()  # SIGKILL: nothing of the worker ran to clean up
    finally:
        check.kill()
        check.wait(timeout=30)
    cluster.worker("next", [], env=env)  # the next worker on this machine sweeps at start
    deadline = time.monotonic() + 60
    while folder.exists() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not folder.exists()
    assert not list(scratch.glob("p*/task-*/model/tiny_add.onnx"))


@pytest.mark.slow
def test_model_is_sent_again_when_the_worker_holding_it_dies(
    make_cluster: Any, tiny_model: Path, tmp_path: Path
) -> None:
    """The model's bytes are scattered once, to one worker; when that worker dies mid-run, the
    bytes die with it, and the client sends them again so that another worker can measure."""
    cluster = make_cluster()
    cluster.worker("holder", [], env={"MLFIT_WORKER_FAULT": "measure:hang"})
    cluster.wait_for_workers(1)
    out = tmp_path / "report.json"
    check = subprocess.Popen(
        [sys.executable, "-m", "mlfit", "check", str(tiny_model), "--target", "weak-cpu", "--cluster",
         cluster.address, "--json", str(out), *FAST],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        holder = psutil.Process(cluster.procs["holder"].pid)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if any("mlfit.measure.worker" in " ".join(c.cmdline()) for c in holder.children(recursive=True)):
                break
            time.sleep(0.1)
        else:
            pytest.fail("the holder never started a measurement")
        cluster.worker("rescuer", [])
        cluster.wait_for_workers(2)
        cluster.kill_tree("holder")
        stdout, stderr = check.communicate(timeout=180)
    finally:
        if check.poll() is None:
            check.kill()
            check.wait(timeout=10)
    assert "Traceback" not in stdout + stderr, stderr
    assert check.returncode in (0, 1), stdout + stderr
    report = json.loads(out.read_text())
    (result,) = report["results"]
    assert result["error"] is None and result["measurement"]["latency"]["n"] > 0
    assert any("1 task(s) were sent again" in n for n in report["notes"]), report["notes"]


def test_scratch_sweep_removes_only_folders_of_dead_processes(tmp_path: Path) -> None:
    """The lock, not the pid, says who is alive: a folder whose lock a live process holds stays;
    one whose process is gone (lock free) or that never had a lock goes."""
    from mlfit.cluster import scratch

    base = str(tmp_path)
    root = scratch.root(base)
    (root / "pLIVE").mkdir()
    holder = subprocess.Popen(
        [sys.executable, "-c", "import fcntl, os, sys, time; fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT); "
         "fcntl.flock(fd, fcntl.LOCK_EX); print('locked', flush=True); time.sleep(60)", str(root / "pLIVE" / ".lock")],
        stdout=subprocess.PIPE, text=True,
    )
    assert holder.stdout is not None
    try:
        assert holder.stdout.readline().strip() == "locked"
        for name in ("pDEAD", "pHALF"):
            (root / name).mkdir()
            (root / name / "model.onnx").write_bytes(b"secret model bytes")
        (root / "pDEAD" / ".lock").touch()  # its process is gone: nobody holds the lock
        removed = {p.name for p in scratch.sweep(base)}
        assert removed == {"pDEAD", "pHALF"}
        assert (root / "pLIVE").is_dir()
    finally:
        holder.kill()
        holder.wait(timeout=10)
    assert {p.name for p in scratch.sweep(base)} == {"pLIVE"}  # now its process is gone too
    os.chmod(root, 0o755)
    assert stat.S_IMODE(scratch.root(base).stat().st_mode) == 0o700  # tightened again
    (tmp_path / "elsewhere").mkdir()
    root.rmdir()
    root.symlink_to(tmp_path / "elsewhere")
    with pytest.raises(ConfigError, match="not a folder owned by this user"):
        scratch.root(base)
