"""From a host measurement to every target's report: projection and checks (the "evaluate"
stage of :mod:`mlfit.run`). It starts no process: the calibration and the GPU runs it reads were
measured in the measure stage (:class:`mlfit.run.venues.ThisHost`)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from mlfit.analysis import deviceadapt
from mlfit.analysis.project import Projection, project
from mlfit.catalog.loader import Target, is_gpu_target
from mlfit.checks.engine import evaluate
from mlfit.records import Calibration, NodeProfile
from mlfit.result import HostInfo, Measurement, ModelInfo, TargetReport


def gpu_key(target: Target) -> str:
    """GPU runs are shared by targets with the same execution provider and batch."""
    return f"{target.profile.execution_provider}:{target.profile.batch_size}"


def _measured_projection(target: Target, m: Measurement, host: HostInfo) -> Projection:
    from mlfit.analysis.project import Band
    from mlfit.catalog.schema import Percentile

    gpu = ", ".join(host.gpus)
    acc = next((a for a in target.hardware.accelerators if a.kind == "gpu"), None)
    same = acc is not None and any(acc.name.split()[-1] in g or g in acc.name for g in host.gpus)
    notes = [
        f"measured on this host's GPU ({gpu}) with {m.execution_provider}"
        + ("" if same else f"; the target's GPU is {acc.name if acc else 'another'}: figures are this GPU's")
    ]
    latency = {p: Band(v, v, v) for p in Percentile if (v := getattr(m.latency, p.value)) is not None}
    tp = m.throughput
    rate = (
        tp.batched_per_s
        if tp.batched_per_s and tp.batch_size == target.profile.batch_size
        else tp.single_stream_per_s
    )
    cold = m.cold_start.counted(target.profile.budgets.cold_start_parts)
    return Projection(
        target=target.name,
        method=f"measured on this host's GPU ({gpu})",
        latency=latency,
        cold_start=Band(cold, cold, cold),
        memory_peak=Band(float(m.memory.peak_bytes), float(m.memory.peak_bytes), float(m.memory.peak_bytes)),
        throughput=Band(rate, rate, rate),
        throughput_basis=f"batch {tp.batch_size}" if tp.batched_per_s else "single stream",
        notes=notes,
        measured=True,
    )


def device_fits(truth: str | None) -> dict[str, Any]:
    """The adapted device fits saved beside the truth store (``--truth``, $MLFIT_TRUTH or the user's
    cache folder); read once per model, used by the projections to their hardware."""
    from pathlib import Path

    from mlfit.truth.fit import active_fits
    from mlfit.truth.store import store_path

    return dict(active_fits(store_path(Path(truth) if truth else None)))


def evaluate_targets(
    targets: Sequence[Target],
    model: ModelInfo,
    measurement: Measurement,
    static: dict[str, Any] | None,
    node_profile: NodeProfile | None,
    host: HostInfo,
    calibration: Calibration | None,
    calibration_note: str,
    gpu: dict[str, Measurement | None],
    truth: str | None = None,
) -> list[TargetReport]:
    """Every target's report from this host's measurement and what was measured beside it (the
    calibration, or why there is none; GPU runs by :func:`gpu_key`, None where
    one failed). ``truth``: the truth store (``--truth``; default $MLFIT_TRUTH or the user's
    cache): its adapted device fits are used for projections to their hardware."""
    fits: dict[str, Any] | None = None
    reports: list[TargetReport] = []
    for target in targets:
        notes: list[str] = []
        key = gpu_key(target)
        if is_gpu_target(target) and key in gpu:
            gpu_m = gpu[key]
            if gpu_m is not None:
                measured = _measured_projection(target, gpu_m, host)
                reports.append(evaluate(target, model, gpu_m, static, measured, node_profile))
                continue
            notes.append("the GPU measurement failed here; projected instead")
        if fits is None:
            fits = device_fits(truth) if calibration is not None else {}
        with deviceadapt.using(fits):
            projection = project(target, measurement, node_profile, static, calibration, host)
        if projection is None and calibration_note:
            notes.append(calibration_note)
        report = evaluate(target, model, measurement, static, projection, node_profile)
        if notes:
            report = report.model_copy(update={"notes": [*notes, *report.notes]})
        reports.append(report)
    return reports
