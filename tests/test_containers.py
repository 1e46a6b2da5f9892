"""Measured under a container's limits (issue 15): the worker runs in a real cgroup with a CFS
quota and a memory limit. Each test is skipped, with the reason, where this machine cannot make
a cgroup (not root, no delegated subtree, no systemd)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from _containers import check_json, needs_cgroups, pod_manifest
from mlfit.measure import cgroup

# A quota binds only its own cgroup, so most of these run beside other tests (as the container runs of
# test_interrupt.py do). Serial (alone, after the parallel part): the throughput ratio, which needs the CPU
# the quota allows, and the tests that assert no cgroup of a dead mlfit is left anywhere on the host.
pytestmark = [needs_cgroups, pytest.mark.slow]


def _leftover_cgroups() -> list[str]:
    found = []
    for folder in [*cgroup.v1_dirs().values(), *([d] if (d := cgroup.v2_dir()) else [])]:
        found += [p.name for p in folder.glob(f"mlfit-{os.getpid()}-*")]
        found += [p.name for p in folder.glob("mlfit-*") if not Path(f"/proc/{p.name.split('-')[1]}").exists()]
    return found


def _busy_model(path: Path) -> Path:
    """A chain of 512x512 MatMuls over 256 rows: ~10 ms of pure CPU per inference, single-threaded,
    long beside the loop's own bookkeeping (whose CPU time also counts against a quota)."""
    rng = np.random.default_rng(0)
    nodes, inits = [], []
    prev = "x"
    for i in range(6):
        w = numpy_helper.from_array(rng.standard_normal((512, 512)).astype(np.float32) * 0.04, f"w{i}")
        inits.append(w)
        nodes.append(helper.make_node("MatMul", [prev, f"w{i}"], [f"h{i}"]))
        prev = f"h{i}"
    graph = helper.make_graph(nodes, "busy", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [256, 512])],
                              [helper.make_tensor_value_info(prev, TensorProto.FLOAT, [256, 512])], inits)
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)
    return path


def _big_model(path: Path, mib: int) -> Path:
    """One Add with a ``mib``-MiB initializer: the runtime needs at least that much memory to load it."""
    n = mib * 2**20 // 4
    w = numpy_helper.from_array(np.ones(n, dtype=np.float32), "w")
    graph = helper.make_graph([helper.make_node("Add", ["x", "w"], ["y"])], "big",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [n])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [n])], [w])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)
    return path


@pytest.fixture(scope="module")
def busy_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _busy_model(tmp_path_factory.mktemp("containers") / "busy.onnx")


def _single_stream(report: dict) -> float:
    """Inferences completed per wall second of the timed loop: under a quota, the waits for the
    next period count wherever they fall (1/mean latency would miss those outside the calls)."""
    measurement = report["results"][0]["measurement"]
    phase = next(p for p in measurement["contention"]["phases"] if p["phase"] == "measure")
    return measurement["latency"]["n"] / phase["wall_s"]


def _busy_cpus(window: float = 2.0) -> float:
    """How many CPUs the whole host kept busy over the last ``window`` seconds (from /proc/stat)."""

    def sample() -> tuple[int, int, int]:
        lines = Path("/proc/stat").read_text().splitlines()
        fields = [int(v) for v in lines[0].split()[1:]]  # the "cpu" line: all CPUs together
        cpus = sum(line.startswith("cpu") and line[3:4].isdigit() for line in lines)
        return sum(fields[:8]), fields[3] + fields[4], cpus  # all jiffies (guest is in user), idle + iowait

    total0, idle0, cpus = sample()
    time.sleep(window)
    total1, idle1, _ = sample()
    return cpus * (1 - (idle1 - idle0) / max(1, total1 - total0))


@pytest.mark.serial
def test_half_a_cpu_halves_throughput_and_throttles(busy_model: Path, tmp_path: Path) -> None:
    full = pod_manifest(tmp_path, "1", "2Gi", "full.yaml")
    half = pod_manifest(tmp_path, "500m", "2Gi", "half.yaml")
    # make test runs this right after its parallel part. The 1-minute load average lags the host by a
    # minute or more, so the CPU time the host spends now is what is read. Once the tests before it are
    # done that is at once; a host still busy after 30 s is busy with someone else's work.
    quiet = len(os.sched_getaffinity(0)) - 1.0  # a whole CPU free for the 1-CPU run
    deadline = time.monotonic() + 30
    while (busy := _busy_cpus()) > quiet and time.monotonic() < deadline:
        time.sleep(1)
    if busy > quiet:
        pytest.skip(f"host busy ({busy:.1f} CPUs in use): a throughput ratio needs the CPU the quota allows")
    rates: dict[str, list[float]] = {"full": [], "half": []}
    reports = {}
    for _ in range(3):  # interleaved, so a busy moment of the host hits both alike
        for name, path in (("full", full), ("half", half)):
            code, report, run = check_json(busy_model, path, tmp_path, "--threads", "1", "--min-time", "1.5")
            assert code == 0, run.output
            rates[name].append(_single_stream(report))
            reports[name] = report
    target = reports["half"]["results"][0]["targets"][0]
    measure = target["emulation"]["throttling"]["measure"]
    assert measure["periods"] > 0  # the worker ran inside the cgroup
    if measure["throttled_periods"] == 0:
        # The quota binds only when the worker could use more than half a CPU: on a host so busy
        # that it gets less, the limit changes nothing (true of a real pod on such a node too).
        pytest.skip(f"host too busy for a 0.5-CPU quota to bind (load {os.getloadavg()[0]:.1f}); rates {rates}")
    # Pairs ran interleaved; the median of the pairwise ratios resists one run the host disturbed.
    ratios = sorted(h / f for h, f in zip(rates["half"], rates["full"], strict=True))
    ratio = ratios[len(ratios) // 2] if len(ratios) % 2 else sum(ratios[len(ratios) // 2 - 1:][:2]) / 2
    assert 0.4 <= ratio <= 0.6, rates
    assert {c["provenance"] for c in target["checks"] if c["metric"] != "model.size"
            and not c["metric"].startswith("compat")} == {"emulated"}
    emulation = target["emulation"]
    assert emulation["cpu"] == 0.5 and emulation["threads"] == 1
    assert measure["throttled_s"] > 0
    assert any("CFS throttling" in note for note in target["notes"])
    assert _leftover_cgroups() == []


@pytest.mark.serial
def test_memory_limit_below_the_model_is_an_oom_fail(tmp_path: Path) -> None:
    model = _big_model(tmp_path / "big.onnx", 160)
    code, report, run = check_json(model, pod_manifest(tmp_path, "1", "120Mi"), tmp_path)
    assert code == 1, run.output
    target = report["results"][0]["targets"][0]
    assert target["verdict"] == "FAIL"
    check = next(c for c in target["checks"] if c["metric"] == "memory.peak")
    assert check["verdict"] == "FAIL" and check["provenance"] == "emulated"
    assert "OOM" in check["reason"] and "120.0 MiB" in check["reason"]
    assert target["emulation"]["oom_killed"] is True
    assert "OOM" in run.output
    config = report["results"][0]["configurations"][0]
    assert config["targets"] == ["model"] and "emulated" in config["label"]
    assert target["configuration"] == config["label"]
    assert _leftover_cgroups() == []


def test_thread_default_is_compared_with_the_quota(busy_model: Path, tmp_path: Path) -> None:
    if len(os.sched_getaffinity(0)) < 2:
        pytest.skip("needs 2 cores for the runtime's default to differ from a 1-CPU quota")
    code, report, run = check_json(busy_model, pod_manifest(tmp_path, "500m", "2Gi"), tmp_path)
    assert code == 0, run.output
    target = report["results"][0]["targets"][0]
    compared = target["emulation"]["threads_compared"]
    assert compared["default_threads"] == len(os.sched_getaffinity(0))
    assert compared["matched_threads"] == 1
    assert compared["default_p50_s"] > 0 and compared["matched_p50_s"] > 0
    assert "threads" in compared["recommendation"]


@pytest.mark.serial
def test_ctrl_c_removes_the_cgroup(busy_model: Path, tmp_path: Path) -> None:
    target = pod_manifest(tmp_path, "250m", "2Gi")
    proc = subprocess.Popen([sys.executable, "-m", "mlfit", "check", busy_model, "--target", target,
                             "--min-time", "20", "--max-time", "30", "--quiet"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not any(
            p.name.startswith(f"mlfit-{proc.pid}-") for d in cgroup.v1_dirs().values() for p in d.glob("mlfit-*")) \
            and cgroup.v2_dir() is None:
        time.sleep(0.2)
    time.sleep(3)  # inside the timed loop
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "Traceback" not in err
    assert _leftover_cgroups() == []


def test_container_on_named_hardware_is_projected_and_emulated(busy_model: Path, tmp_path: Path) -> None:
    profile = tmp_path / "pi-pod.yaml"
    profile.write_text("""\
schema_version: 1
id: pi-pod
hardware: rpi5-8gb
runtimes: [onnxruntime]
threads: 1
budgets: {latency: {p50: 10 s}}
container: {cpu: "1", memory: 1Gi}
""")
    code, report, run = check_json(busy_model, profile, tmp_path)
    assert code in (0, 1), run.output
    target = report["results"][0]["targets"][0]
    sources = {c["metric"]: c["provenance"] for c in target["checks"]}
    assert sources["latency.p50"] == "projected"
    assert sources["memory.peak"] == "emulated"
    assert target["emulation"]["memory_bytes"] == 2**30
    assert target["hardware"] == "rpi5-8gb"


def test_a_tenth_of_a_cpu_throttles_a_busy_model(busy_model: Path, tmp_path: Path) -> None:
    """At 100m even a busy host leaves the worker more CPU than its quota, so the counters must move."""
    code, report, run = check_json(busy_model, pod_manifest(tmp_path, "100m", "2Gi"), tmp_path, "--threads", "1",
                                  "--min-time", "1", "--max-time", "3")
    assert code in (0, 1), run.output
    target = report["results"][0]["targets"][0]
    measure = target["emulation"]["throttling"]["measure"]
    assert measure["periods"] >= 5
    assert measure["throttled_periods"] >= measure["periods"] // 2, measure
    assert measure["throttled_s"] > 0.1


def test_free_batch_dim_is_filled_for_a_manifest_target(cnn_model: Path, tmp_path: Path) -> None:
    """The gate's input plan (batch from the target) reaches the emulated run, as for any target."""
    code, report, run = check_json(cnn_model, pod_manifest(tmp_path, "1", "2Gi"), tmp_path, "--min-time", "0.3")
    assert code in (0, 1), run.output
    result = report["results"][0]
    assert result["error"] is None
    assert result["model"]["inputs_used"][0]["shape"][0] == 1
    assert result["targets"][0]["emulation"]["cpu"] == 1
