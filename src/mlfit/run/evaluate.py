"""From a host measurement to every target's report: calibration, GPU measurement where a
GPU is here, projection, checks (the "evaluate" stage of :mod:`mlfit.run`). Parent side:
never imports a runtime (the calibration and the GPU measurement run in subprocesses)."""

from __future__ import annotations

import importlib.metadata
from collections.abc import Sequence
from typing import Any

from mlfit.analysis import deviceadapt
from mlfit.analysis.project import Projection, project
from mlfit.catalog.loader import Target, is_gpu_target
from mlfit.checks.engine import evaluate
from mlfit.errors import MlfitError
from mlfit.options import EventFn
from mlfit.records import Calibration, NodeProfile
from mlfit.result import HostInfo, Measurement, ModelInfo, TargetReport


def cuda_available(host: HostInfo) -> bool:
    """A CUDA GPU is visible and onnxruntime-gpu is installed (checked without importing it)."""
    if not host.gpus:
        return False
    try:
        importlib.metadata.version("onnxruntime-gpu")
    except importlib.metadata.PackageNotFoundError:
        return False
    return True


def _measure_on_gpu(
    target: Target, request: Any, timeouts: Any, on_event: EventFn | None, memory_limit: int | None
) -> Measurement | None:
    """Measure the model with the target's GPU execution provider on this host's GPU."""
    from mlfit.measure.launcher import run_worker, scratch_dir
    from mlfit.measure.protocol import MeasureSettings

    batch = target.profile.batch_size
    settings = request.settings.model_copy(
        update={"batch_size": batch if batch > 1 else None, "profile_nodes": False, "profile_threads": []}
    )
    assert isinstance(settings, MeasureSettings)
    with scratch_dir() as scratch:
        gpu_request = request.model_copy(
            update={
                "execution_provider": target.profile.execution_provider,
                "scratch_dir": scratch,
                "settings": settings,
            }
        )
        response = run_worker(gpu_request, "onnxruntime-gpu", timeouts, on_event, memory_limit)
    if response.error is not None and response.error.kind == "interrupted":
        raise KeyboardInterrupt  # Ctrl-C during the GPU run stops the whole check, as anywhere else
    if response.measurement is None or not response.measurement.execution_provider.startswith("CUDA"):
        return None
    return response.measurement


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
    ref: Any,
    targets: Sequence[Target],
    model: ModelInfo,
    measurement: Measurement | None,
    static: dict[str, Any] | None,
    node_profile: NodeProfile | None,
    host: HostInfo,
    request: Any,
    timeouts: Any,
    on_event: EventFn | None,
    memory_limit: int | None,
    truth: str | None = None,
) -> tuple[list[TargetReport], Calibration | None]:
    """Every target's report, and the host calibration used (None when none was needed or possible).
    ``truth``: the truth store (``--truth``; default $MLFIT_TRUTH or the user's cache): its adapted
    device fits are used for projections to their hardware."""
    calibration: Calibration | None = None
    calibration_note = ""
    if measurement is not None and any(not is_gpu_target(t) for t in targets):
        from mlfit.analysis.calibrate import load_or_calibrate

        try:
            data, _ = load_or_calibrate()
            calibration = Calibration.model_validate(data)
        except MlfitError as exc:
            calibration_note = f"no projection: {exc.one_line()}"
    gpu_measurements: dict[str, Measurement | None] = {}
    fits: dict[str, Any] | None = None
    reports: list[TargetReport] = []
    for target in targets:
        projection: Projection | None = None
        notes: list[str] = []
        if measurement is not None:
            if is_gpu_target(target) and cuda_available(host) and ref.runtime.value == "onnxruntime":
                key = f"{target.profile.execution_provider}:{target.profile.batch_size}"
                if key not in gpu_measurements:
                    gpu_measurements[key] = _measure_on_gpu(target, request, timeouts, on_event, memory_limit)
                gpu_m = gpu_measurements[key]
                if gpu_m is not None:
                    projection = _measured_projection(target, gpu_m, host)
                    reports.append(evaluate(target, model, gpu_m, static, projection, node_profile))
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
    return reports, calibration
