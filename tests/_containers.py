"""Container targets for tests: a Pod manifest with resource limits, and ``mlfit check`` of a model
against one with its JSON report. Shared by tests/test_containers.py and tests/test_container_truth.py
(real cgroups: both skip, with the reason, where this machine cannot make one)."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

from conftest import FAST, Run, assert_no_traceback, run_mlfit
from mlfit.measure import cgroup

REASON = cgroup.can_emulate()
needs_cgroups = pytest.mark.skipif(REASON is not None, reason=f"cannot make a cgroup here: {REASON}")


def pod_manifest(tmp_path: Path, cpu: str | None, memory: str | None, name: str = "pod.yaml") -> Path:
    """A one-container Pod whose container has these limits (None: that limit left out)."""
    limits = ", ".join(f"{k}: {v}" for k, v in (("cpu", cpu), ("memory", memory)) if v is not None)
    path = tmp_path / name
    path.write_text(f"""\
apiVersion: v1
kind: Pod
metadata: {{name: scorer}}
spec:
  containers:
    - name: model
      image: registry.example/model:1
      resources:
        limits: {{{limits}}}
""")
    return path


def check_json(model: Path, target: Path, tmp_path: Path, *extra: str,
               env: dict[str, str] | None = None) -> tuple[int, dict[str, Any], Run]:
    """``mlfit check MODEL --target TARGET`` (fast settings): exit code, the JSON report ({} when none
    was written) and the run itself."""
    out = tmp_path / f"r{time.monotonic_ns()}.json"
    run = run_mlfit("check", model, "--target", target, "--json", out, *FAST, *extra, env=env)
    assert_no_traceback(run)
    return run.code, json.loads(out.read_text()) if out.exists() else {}, run
