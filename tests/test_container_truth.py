"""A container target judged as the pod would be (issue 23, points 2 and 3): memory fit against the
container's limit, no false note about the CPU provider, the limits and throttling in an 80-column
log, and a memory limit the runtime's import already exceeds OOM-kills the run, as it kills a fresh
pod (the libraries' pages count: here the page cache had them charged to another cgroup)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from conftest import FAST, assert_no_traceback, run_mlfit
from mlfit.measure import cgroup

REASON = cgroup.can_emulate()
# Not serial: a container's limits bind only its own cgroup, and nothing here is a timing ratio.
pytestmark = [pytest.mark.skipif(REASON is not None, reason=f"cannot make a cgroup here: {REASON}"),
              pytest.mark.slow]


def _pod(tmp_path: Path, memory: str) -> Path:
    path = tmp_path / f"pod-{memory}.yaml"
    path.write_text(f"""\
apiVersion: v1
kind: Pod
metadata: {{name: scorer}}
spec:
  containers:
    - name: model
      image: registry.example/model:1
      resources:
        limits: {{cpu: "1", memory: {memory}}}
""")
    return path


def _check(model: Path, target: Path, tmp_path: Path) -> tuple[int, dict, str]:
    out = tmp_path / f"r{time.monotonic_ns()}.json"
    run = run_mlfit("check", model, "--target", target, "--json", out, *FAST, env={"COLUMNS": "80"})
    assert_no_traceback(run)
    return run.code, json.loads(out.read_text()), run.stdout


def test_fit_and_notes_are_the_containers_and_the_log_shows_its_limits(cnn_model: Path, tmp_path: Path) -> None:
    _, report, stdout = _check(cnn_model, _pod(tmp_path, "256Mi"), tmp_path)
    target = report["results"][0]["targets"][0]
    fit = next(c for c in target["checks"] if c["metric"] == "compat.memory_fit")
    assert fit["limit"] == 256 * 2**20, fit  # was the host's RAM (23 GiB on the machine that filed it)
    assert not any("could not be asked here" in n for n in target["notes"]), target["notes"]
    assert "container: cpu 1, memory 256.0 MiB" in stdout, stdout  # at 80 columns, not only in the reports
    assert "CFS periods while timed" in stdout or "no CFS throttling counters" in stdout
    assert max(len(line) for line in stdout.splitlines()) <= 80


def test_a_limit_below_the_runtime_and_model_oom_kills_like_the_pod(cnn_model: Path, tmp_path: Path) -> None:
    """90M: the peak measured ~108 MiB and nothing was killed; the FAIL came from the figure."""
    code, report, stdout = _check(cnn_model, _pod(tmp_path, "90M"), tmp_path)
    assert code == 1, stdout
    target = report["results"][0]["targets"][0]
    assert target["emulation"]["oom_killed"] is True, target
    check = next(c for c in target["checks"] if c["metric"] == "memory.peak")
    assert check["verdict"] == "FAIL" and "OOM-killed" in check["reason"]
    assert check["value"] >= check["limit"]  # killed at the limit, never "40.9 MiB <= 85.8 MiB FAIL"
    assert any("resident memory reached" in n for n in target["notes"]), target["notes"]
