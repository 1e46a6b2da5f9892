"""Decisions taken from static sizes before a worker is spawned.

A model whose parameters alone exceed a target's memory does not fit there, whatever a
measurement would say; a model larger than this host's free memory would swap or be
killed if loaded. Both are known from the file without running anything, so they are
decided here (Provenance.STATIC) and the model is not loaded when nothing is gained.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from mlfit.catalog.units import format_size, parse_size
from mlfit.errors import ConfigError, ModelError
from mlfit.result import Check, Provenance, TargetReport, Verdict, worst

if TYPE_CHECKING:
    from mlfit.catalog.loader import Target
    from mlfit.modelref import ModelRef

# Without --memory-limit the worker is still stopped before it can exhaust the host:
# at this share of the memory available when the measurement starts.
DEFAULT_HOST_SHARE = 0.9


def parse_memory_limit(text: str | None, targets: Sequence[Target]) -> int | None:
    """``--memory-limit``: a size ('2 GiB') or 'target' (the smallest target's available RAM)."""
    if text is None:
        return None
    if text.strip().lower() == "target":
        if not targets:
            raise ConfigError("--memory-limit target: no --target to take the memory from",
                              "give a size such as --memory-limit 2GiB")
        return int(min(t.hardware.memory.available for t in targets))
    try:
        return int(parse_size(text))
    except ValueError as exc:
        raise ConfigError(f"--memory-limit '{text}': {exc}", "for example --memory-limit 2GiB or "
                          "--memory-limit target") from None


def host_available_memory() -> int:
    """Memory this process could still get: the host's, capped by a cgroup (container) limit."""
    from pathlib import Path

    import psutil

    from mlfit.measure.host import cgroup_memory_limit

    available = int(psutil.virtual_memory().available)
    limit = cgroup_memory_limit()
    if limit is not None:
        try:
            used = int(Path("/sys/fs/cgroup/memory.current").read_text())
        except (OSError, ValueError):
            used = 0
        available = min(available, max(0, limit - used))
    return available


def default_memory_limit() -> int:
    """The worker's ceiling when none is given: most of what the host has free right now."""
    return int(host_available_memory() * DEFAULT_HOST_SHARE)


def validate_model(ref: ModelRef, custom_op_libraries: Sequence[str]) -> tuple[int, list[str]]:
    """Parent-side ONNX refusals before any runtime reads the file (code-running formats are
    refused by :func:`mlfit.formats.registry.check_model`); returns the model's static size (parameter
    bytes for ONNX, size on disk otherwise) and notes for the report."""
    from mlfit.formats.registry import get

    return get(ref.format).static_size(ref.path, custom_op_libraries)


def fit_check(target: Target, model_bytes: int, fmt: str = "onnx") -> Check | None:
    """A FAIL check when the parameters alone exceed the target's available RAM, else None."""
    available = target.hardware.memory.available
    if model_bytes <= available:
        return None
    need = float(model_bytes)
    return Check(metric="memory.parameters", budget=f"<= {format_size(available)} available RAM",
                 limit=available, value=need, lower=need, upper=need, unit="B", verdict=Verdict.FAIL,
                 provenance=Provenance.STATIC,
                 method="parameter bytes read from the model file" if fmt == "onnx" else "model size on disk",
                 margin=(available - need) / available,
                 reason=f"does not fit: the parameters alone need {format_size(model_bytes)}, more than the "
                        f"{format_size(available)} of RAM {target.hardware.name} has available")


def static_target_report(target: Target, check: Check) -> TargetReport:
    """The report for a target decided from static sizes, without a measurement."""
    return TargetReport(target=target.name, hardware=target.hardware.id, hardware_name=target.hardware.name,
                        source=target.source, verdict=Verdict.FAIL, checks=[check],
                        notes=["not measured: the model cannot fit this target's memory"])


def add_fit_check(report: TargetReport, check: Check | None) -> TargetReport:
    if check is None:
        return report
    checks = [*report.checks, check]
    return report.model_copy(update={"checks": checks, "verdict": worst([c.verdict for c in checks])})


def refuse_if_too_big(model_bytes: int, memory_limit: int | None) -> None:
    """Raise ModelError when loading the model would exceed this host's free memory or the limit."""
    free = host_available_memory()
    if model_bytes > free:
        raise ModelError(f"the model's parameters need {format_size(model_bytes)}, more than this host's "
                         f"free memory ({format_size(free)}); not loaded",
                         "measure it on a bigger machine; static checks still apply with --target")
    if memory_limit is not None and model_bytes > memory_limit:
        raise ModelError(f"the model's parameters need {format_size(model_bytes)}, over the memory limit of "
                         f"{format_size(memory_limit)}; not loaded", "raise --memory-limit to measure anyway")
