"""Deployment manifests as targets: a Kubernetes manifest or a docker-compose file names the
container's CPU and memory limits, which is what a deployment profile's ``container:`` says.

Kubernetes: Pod, Deployment, StatefulSet, DaemonSet, ReplicaSet, ReplicationController, Job,
CronJob, PodTemplate and ``List`` documents, several per file (``---``); the container's
``resources.limits`` (imposed) and ``resources.requests`` (recorded). Quantities as Kubernetes
writes them: cpu ``500m`` / ``0.5``; memory ``512Mi``, ``1G`` (powers of 1000), ``129e6``.

Compose: ``services.NAME.deploy.resources.limits`` (``cpus``, ``memory``) and the older
service-level ``cpus``, ``mem_limit``, ``cpuset``; sizes as Docker reads them (``512m`` and
``512M`` are both MiB).

``--container NAME`` picks the container (Kubernetes) or service (Compose) when there are several.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlfit.catalog import units
from mlfit.catalog.schema import Budgets, Container, Profile, Runtime, with_container_budget
from mlfit.catalog.yamlload import Located, load_yaml_documents
from mlfit.errors import ConfigError

_POD_SPEC_PATHS: dict[str, tuple[str, ...]] = {
    "Pod": ("spec",),
    "PodTemplate": ("template", "spec"),
    "Deployment": ("spec", "template", "spec"),
    "StatefulSet": ("spec", "template", "spec"),
    "DaemonSet": ("spec", "template", "spec"),
    "ReplicaSet": ("spec", "template", "spec"),
    "ReplicationController": ("spec", "template", "spec"),
    "Job": ("spec", "template", "spec"),
    "CronJob": ("spec", "jobTemplate", "spec", "template", "spec"),
}


@dataclass(frozen=True)
class Candidate:
    """One container found in a manifest, with where it sits (for messages)."""

    name: str
    owner: str  # "Deployment/api" or "service web"
    resources: dict[str, Any]
    where: str
    compose: bool
    limit_where: dict[str, str] = field(default_factory=dict)  # limits key -> file:line:column of its value


def is_manifest(documents: list[Located]) -> bool:
    """A Kubernetes manifest (apiVersion + kind) or a Compose file (services), not an mlfit profile."""
    for doc in documents:
        data = doc.data
        if isinstance(data, dict) and (("apiVersion" in data and "kind" in data) or "services" in data) \
                and "hardware" not in data:
            return True
    return False


def _get(data: Any, path: tuple[str, ...]) -> Any:
    for key in path:
        if not isinstance(data, dict):
            return None
        data = data.get(key)
    return data


def _kubernetes(doc: Located, data: dict[str, Any], index: tuple[str | int, ...] = ()) -> list[Candidate]:
    kind = str(data.get("kind", ""))
    if kind == "List" or kind.endswith("List"):
        found = []
        for i, item in enumerate(data.get("items") or []):
            if isinstance(item, dict):
                found.extend(_kubernetes(doc, item, (*index, "items", i)))
        return found
    path = _POD_SPEC_PATHS.get(kind)
    if path is None:
        return []
    owner = f"{kind}/{_get(data, ('metadata', 'name')) or '?'}"
    spec = _get(data, path)
    found = []
    for key in ("containers",):  # init containers finish before the model serves: not the target
        for i, container in enumerate(_get(spec, (key,)) or []):
            if isinstance(container, dict):
                at = [*index, *path, key, i, "resources"]
                resources = container.get("resources") or {}
                limits = resources.get("limits") if isinstance(resources, dict) else None
                wheres = {k: doc.where([*at, "limits", k]) for k in (limits if isinstance(limits, dict) else {})}
                found.append(Candidate(str(container.get("name", f"#{i}")), owner, resources, doc.where(at),
                                       compose=False, limit_where=wheres))
    return found


def _compose(doc: Located, data: dict[str, Any]) -> list[Candidate]:
    services = data.get("services")
    if not isinstance(services, dict):
        return []
    found = []
    for name, service in services.items():
        if not isinstance(service, dict):
            continue
        resources = _get(service, ("deploy", "resources")) or {}
        limits = dict(resources.get("limits") or {})
        wheres = {str(k): doc.where(["services", name, "deploy", "resources", "limits", k]) for k in limits}
        # The older service-level keys (compose file format 2) apply when deploy says nothing.
        for key, limit in (("cpus", "cpus"), ("mem_limit", "memory"), ("cpuset", "cpuset")):
            if key in service and limit not in limits:
                limits[limit] = service[key]
                wheres[limit] = doc.where(["services", name, key])
        requests = dict(resources.get("reservations") or {})
        if "mem_reservation" in service:
            requests.setdefault("memory", service["mem_reservation"])
        found.append(Candidate(str(name), f"service {name}", {"limits": limits, "requests": requests},
                               doc.where(["services", name]), compose=True, limit_where=wheres))
    return found


def find_containers(documents: list[Located]) -> list[Candidate]:
    found: list[Candidate] = []
    for doc in documents:
        if isinstance(doc.data, dict):
            found.extend(_compose(doc, doc.data) if "services" in doc.data else _kubernetes(doc, doc.data))
    return found


def _pick(found: list[Candidate], path: Path, name: str | None) -> Candidate:
    listing = ", ".join(f"{c.name} ({c.owner})" for c in found)
    if not found:
        raise ConfigError(f"{path}: no containers found (expected a Kubernetes Pod, Deployment, StatefulSet, "
                          "DaemonSet, Job or CronJob, or a Compose file with services)",
                          "pass a deployment manifest, or a profile YAML")
    if name is None:
        if len(found) == 1:
            return found[0]
        raise ConfigError(f"{path}: {len(found)} containers: {listing}", "pick one with --container NAME")
    matches = [c for c in found if c.name == name]
    if not matches:
        raise ConfigError(f"{path}: no container named '{name}'; found: {listing}", "fix --container NAME")
    if len(matches) > 1:
        owners = ", ".join(c.owner for c in matches)
        raise ConfigError(f"{path}: container '{name}' appears in several workloads ({owners})",
                          "keep one workload per file, or rename the containers")
    return matches[0]


def _quantity(value: Any, parse: Any, where: str, key: str) -> float:
    try:
        return float(parse(value))
    except ValueError as exc:
        raise ConfigError(f"{where}: {key}: {exc}") from None


def _cpuset(value: Any, where: str) -> str:
    try:
        return units.format_cpuset(units.parse_cpuset(value))
    except ValueError as exc:
        raise ConfigError(f"{where}: cpuset: {exc}", "write the CPUs as Linux does, e.g. '0-1' or '0,2'") from None


def container_limits(candidate: Candidate, path: Path) -> Container:
    """The container's limits as a profile's ``container:`` section."""
    resources = candidate.resources if isinstance(candidate.resources, dict) else {}
    limits = resources.get("limits") or {}
    requests = resources.get("requests") or {}
    if not isinstance(limits, dict) or not isinstance(requests, dict):
        raise ConfigError(f"{candidate.where}: resources.limits and resources.requests must be mappings")
    cpu_key, memory_parse = ("cpus", units.parse_docker_memory) if candidate.compose else \
        ("cpu", units.parse_k8s_memory)
    cpu = limits.get(cpu_key)
    memory = limits.get("memory")
    cpuset = limits.get("cpuset")
    where = candidate.limit_where.get
    if cpu is None and memory is None and cpuset is None:
        section = "deploy.resources.limits" if candidate.compose else "resources.limits"
        raise ConfigError(f"{candidate.where}: container '{candidate.name}' has no {section} (cpu or memory)",
                          f"add {section} to the manifest; without limits there is nothing to emulate")
    return Container(
        cpu=(_quantity(cpu, units.parse_cpus, where(cpu_key, candidate.where), f"limits.{cpu_key}")
             if cpu is not None else None),
        memory=(_quantity(memory, memory_parse, where("memory", candidate.where), "limits.memory")
                if memory is not None else None),
        cpuset=_cpuset(cpuset, where("cpuset", candidate.where)) if cpuset is not None else None,
        cpu_request=(_quantity(requests[cpu_key], units.parse_cpus, candidate.where, f"requests.{cpu_key}")
                     if requests.get(cpu_key) is not None else None),
        memory_request=(_quantity(requests["memory"], memory_parse, candidate.where, "requests.memory")
                        if requests.get("memory") is not None else None),
        source=f"{path} ({candidate.owner}, container {candidate.name})",
    )


def _profile_id(name: str) -> str:
    cleaned = "".join(ch if ch.isalnum() or ch in "_.-" else "-" for ch in name.lower()).strip("-_.")
    return cleaned or "container"


def manifest_profile(path: Path, container: str | None = None, documents: list[Located] | None = None) -> Profile:
    """A deployment profile for one container of a manifest: this host's hardware under the
    container's limits, every runtime, the thread count a runtime picks there by default (the CPUs
    it sees; runtimes ignore quotas: see docs/containers.md), and the memory limit as the
    peak-memory budget. Budgets beyond that come from --budget."""
    documents = documents if documents is not None else load_yaml_documents(path)
    candidate = _pick(find_containers(documents), path, container)
    limits = container_limits(candidate, path)
    return with_container_budget(Profile(
        id=_profile_id(candidate.name),
        description=f"container '{candidate.name}' of {candidate.owner} in {path.name}",
        hardware="host",
        runtimes=list(Runtime),
        threads=limits.cpus_allowed() or _cores_seen(),
        container=limits,
    ))


def _cores_seen() -> int:
    import os

    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


# --budget METRIC=VALUE: the metric names of the report's checks, mapped to the profile's budget keys.
_BUDGET_KEYS = {
    "latency.p50": ("latency", "p50"), "latency.p90": ("latency", "p90"),
    "latency.p95": ("latency", "p95"), "latency.p99": ("latency", "p99"),
    "p50": ("latency", "p50"), "p90": ("latency", "p90"), "p95": ("latency", "p95"), "p99": ("latency", "p99"),
    "cold_start": ("cold_start", None), "peak_memory": ("peak_memory", None), "memory.peak": ("peak_memory", None),
    "model_size": ("model_size", None), "model.size": ("model_size", None),
    "throughput": ("throughput", None), "sustains": ("sustains", None),
}  # fmt: skip


def apply_budget_flags(profile: Profile, flags: list[str]) -> Profile:
    """``--budget latency.p95=80ms`` (repeatable) adds or overrides one budget of ``profile``."""
    if not flags:
        return profile
    budgets = profile.budgets
    for flag in flags:
        metric, sep, value = flag.partition("=")
        key = _BUDGET_KEYS.get(metric.strip())
        if not sep or not value.strip() or key is None:
            known = ", ".join(k for k in _BUDGET_KEYS if "." in k or k in ("cold_start", "throughput", "sustains"))
            raise ConfigError(f"--budget '{flag}': expected METRIC=VALUE with METRIC one of {known}",
                              "for example --budget latency.p95=80ms --budget peak_memory=400MiB")
        field, sub = key
        text = _spaced(value.strip())
        try:
            parsed = Budgets.model_validate({field: {sub: text} if sub else text})
        except ValueError as exc:
            errors = exc.errors() if hasattr(exc, "errors") else [{"msg": str(exc)}]
            message = str(errors[0]["msg"]).removeprefix("Value error, ")
            raise ConfigError(f"--budget '{flag}': {message}",
                              "units as in profiles: 80ms, 2s, 400MiB, 60%, 10/s") from None
        update = getattr(parsed, field)
        if field == "latency":
            update = {**budgets.latency, **update}
        budgets = budgets.model_copy(update={field: update})
    new = budgets
    return profile.model_copy(update={"budgets": new})


def _spaced(value: str) -> str:
    """'80ms' -> '80 ms': the unit parsers accept both, this keeps messages readable."""
    import re

    match = re.match(r"^([0-9.eE+-]+)\s*(.*)$", value)
    return f"{match.group(1)} {match.group(2)}".strip() if match else value
