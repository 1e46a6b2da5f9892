"""Fit checks decided from static sizes before a worker is spawned.

A model whose parameters alone exceed a target's memory does not fit there, whatever a
measurement would say; a model larger than this host's free memory would swap or be
killed if loaded. Both are known from the file without running anything, so they are
decided here (Provenance.STATIC) and the model is not loaded when nothing is gained.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from mlfit.catalog.units import format_size
from mlfit.errors import ModelError
from mlfit.result import Check, Provenance, TargetReport, Verdict, worst

if TYPE_CHECKING:
    from mlfit.catalog.loader import Target


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
    from mlfit.measure.host import host_available_memory

    free = host_available_memory()
    if model_bytes > free:
        raise ModelError(f"the model's parameters need {format_size(model_bytes)}, more than this host's "
                         f"free memory ({format_size(free)}); not loaded",
                         "measure it on a bigger machine; static checks still apply with --target")
    if memory_limit is not None and model_bytes > memory_limit:
        raise ModelError(f"the model's parameters need {format_size(model_bytes)}, over the memory limit of "
                         f"{format_size(memory_limit)}; not loaded", "raise --memory-limit to measure anyway")
