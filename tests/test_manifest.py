"""Deployment manifests as targets (issue 15): Kubernetes and Compose files parsed into container
limits, --container, --budget, and one-line errors for bad manifests. Measurement under the limits
is in test_containers.py."""

from __future__ import annotations

from pathlib import Path

import pytest

from conftest import assert_no_traceback, run_cli
from mlfit.catalog import units
from mlfit.catalog.loader import resolve_target
from mlfit.catalog.manifest import apply_budget_flags
from mlfit.errors import ConfigError

DEPLOYMENT = """\
apiVersion: v1
kind: Service
metadata: {name: api}
spec: {ports: [{port: 80}]}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: api}
spec:
  replicas: 3
  template:
    spec:
      initContainers:
        - name: fetch-weights
          resources: {limits: {cpu: "2", memory: 4Gi}}
      containers:
        - name: model
          image: registry.example/model:1
          resources:
            limits: {cpu: 500m, memory: 512Mi}
            requests: {cpu: 250m, memory: 256Mi}
        - name: sidecar
          image: registry.example/proxy:1
          resources:
            limits: {cpu: "0.1", memory: 64M}
"""

CRONJOB = """\
apiVersion: batch/v1
kind: CronJob
metadata: {name: nightly}
spec:
  schedule: "0 3 * * *"
  jobTemplate:
    spec:
      template:
        spec:
          containers:
            - name: scorer
              resources: {limits: {cpu: 2, memory: 1.5Gi}}
"""

LIST = """\
apiVersion: v1
kind: List
items:
  - apiVersion: v1
    kind: Pod
    metadata: {name: one}
    spec:
      containers:
        - name: solo
          resources: {limits: {memory: 129e6}}
"""

COMPOSE = """\
services:
  web:
    image: x
    deploy:
      resources:
        limits: {cpus: '0.50', memory: 512M}
        reservations: {memory: 128m}
  legacy:
    image: y
    cpus: 1.5
    mem_limit: 1g
    cpuset: "0-1"
"""


def _write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


@pytest.mark.parametrize(("text", "cores"), [
    ("500m", 0.5), ("0.5", 0.5), (2, 2.0), ("1500m", 1.5), ("1", 1.0), ("250m", 0.25),
])
def test_cpu_quantities(text: object, cores: float) -> None:
    assert units.parse_cpus(text) == pytest.approx(cores)


@pytest.mark.parametrize(("text", "size"), [
    ("512Mi", 512 * 2**20), ("1Gi", 2**30), ("1G", 1e9), ("128M", 128e6), ("64K", 64e3), ("64k", 64e3),
    ("129e6", 129e6), (134217728, 134217728), ("1.5Gi", 1.5 * 2**30),
])
def test_kubernetes_memory_quantities(text: object, size: float) -> None:
    assert units.parse_k8s_memory(text) == pytest.approx(size)


@pytest.mark.parametrize(("text", "size"), [
    ("512m", 512 * 2**20), ("512M", 512 * 2**20), ("1g", 2**30), ("1gb", 2**30), ("2048k", 2 * 2**20),
    (536870912, 536870912),
])
def test_compose_sizes_are_binary(text: object, size: float) -> None:
    assert units.parse_docker_memory(text) == pytest.approx(size)


@pytest.mark.parametrize("bad", ["500 millicores", "1Zi", "-1", "0", "abc", "", "1e3Mi"])
def test_bad_quantities_are_refused(bad: str) -> None:
    with pytest.raises(ValueError):
        units.parse_k8s_memory(bad)


def test_deployment_with_several_containers_and_documents(tmp_path: Path) -> None:
    path = _write(tmp_path, "deploy.yaml", DEPLOYMENT)
    with pytest.raises(ConfigError) as info:
        resolve_target(str(path))
    assert "model (Deployment/api)" in info.value.message and "sidecar" in info.value.message
    assert "--container" in (info.value.hint or "")
    target = resolve_target(str(path), "model")
    container = target.profile.container
    assert container is not None
    assert container.cpu == pytest.approx(0.5) and container.memory == 512 * 2**20
    assert container.cpu_request == pytest.approx(0.25) and container.memory_request == 256 * 2**20
    assert target.profile.hardware == "host" and target.hardware.id == "host"
    assert target.profile.budgets.peak_memory is not None
    assert target.profile.budgets.peak_memory.absolute == 512 * 2**20
    sidecar = resolve_target(str(path), "sidecar").profile.container
    assert sidecar is not None and sidecar.memory == 64e6  # Kubernetes "M" is 10^6


def test_cronjob_list_and_compose(tmp_path: Path) -> None:
    cron = resolve_target(str(_write(tmp_path, "cron.yaml", CRONJOB))).profile.container
    assert cron is not None and cron.cpu == 2 and cron.memory == 1.5 * 2**30
    solo = resolve_target(str(_write(tmp_path, "list.yaml", LIST))).profile.container
    assert solo is not None and solo.memory == 129e6 and solo.cpu is None
    compose = _write(tmp_path, "compose.yaml", COMPOSE)
    web = resolve_target(str(compose), "web").profile.container
    assert web is not None and web.cpu == 0.5 and web.memory == 512 * 2**20 and web.memory_request == 128 * 2**20
    legacy = resolve_target(str(compose), "legacy").profile.container
    assert legacy is not None and legacy.cpu == 1.5 and legacy.memory == 2**30 and legacy.cpuset == "0-1"


def test_budget_flags_add_and_override() -> None:
    profile = resolve_target("edge").profile
    changed = apply_budget_flags(profile, ["latency.p95=50ms", "throughput=10/s", "peak_memory=400MiB",
                                           "p99=1s"])
    assert changed.budgets.latency[next(p for p in changed.budgets.latency if p.value == "p95")] == 0.05
    assert len(changed.budgets.latency) == len(profile.budgets.latency) + 1
    assert changed.budgets.throughput == 10.0
    assert changed.budgets.peak_memory is not None and changed.budgets.peak_memory.absolute == 400 * 2**20
    assert changed.budgets.cold_start == profile.budgets.cold_start
    for bad in (["foo=1"], ["latency.p95=fast"], ["throughput"], ["latency.p95="]):
        with pytest.raises(ConfigError):
            apply_budget_flags(profile, bad)


NO_LIMITS = """\
apiVersion: v1
kind: Pod
metadata: {name: p}
spec:
  containers:
    - name: c
      resources: {requests: {cpu: 100m}}
"""
BAD_UNIT = """\
apiVersion: v1
kind: Pod
metadata: {name: p}
spec:
  containers:
    - name: c
      resources: {limits: {memory: 512MB}}
"""
NO_CONTAINERS = """\
apiVersion: v1
kind: ConfigMap
metadata: {name: cfg}
data: {a: b}
"""


@pytest.mark.parametrize(("text", "container", "expected"), [
    (NO_LIMITS, None, "has no resources.limits"),
    (BAD_UNIT, None, "unknown memory quantity unit 'MB'"),
    (NO_CONTAINERS, None, "no containers found"),
    (DEPLOYMENT, None, "2 containers"),
    (DEPLOYMENT, "nope", "no container named 'nope'"),
])
def test_bad_manifests_are_one_line_errors(tmp_path: Path, tiny_model: Path, text: str, container: str | None,
                                           expected: str) -> None:
    path = _write(tmp_path, "bad.yaml", text)
    args = ["check", tiny_model, "--target", path, "--quiet"] + (["--container", container] if container else [])
    run = run_cli(*args)
    assert run.code == 2, run.output
    assert expected in run.stderr
    assert_no_traceback(run)
    assert len([line for line in run.stderr.splitlines() if line.startswith("mlfit: error")]) == 1


def test_container_flag_without_a_manifest_is_a_usage_error(tiny_model: Path) -> None:
    run = run_cli("check", tiny_model, "--target", "edge", "--container", "model", "--quiet")
    assert run.code == 2, run.output
    assert "--container" in run.stderr
    assert_no_traceback(run)
