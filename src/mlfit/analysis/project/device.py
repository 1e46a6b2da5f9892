"""The CPU factor from the device model fitted on published device measurements
(:mod:`mlfit.analysis.devicemodel`): where it applies it replaces the host's ratios."""

from __future__ import annotations

import math
from typing import Any

from mlfit.analysis.project.types import Band, isa_family, model_precision
from mlfit.catalog.loader import Target
from mlfit.result import Measurement


def fitted_cpu_factor(
    target: Target,
    m: Measurement,
    static: dict[str, Any] | None,
    threads: int,
    details: dict[str, Any],
    host: float,
    host_arch: str,
) -> tuple[Band, str, list[str], dict[str, tuple[float, float]]] | None:
    """The target's time from the device model fitted on published measurements
    (``mlfit.analysis.devicemodel``), as a factor on ``host``, the host figure the percentile bands
    start from (so the projected median is the device model's figure); None without
    static node facts or a committed fit. The host's per-node ratio stays in the details as a
    cross-check."""
    from mlfit.analysis import devicemodel as dm

    params = dm.fitted()
    if params is None or not static or not static.get("nodes"):
        return None
    if not host or host <= 0:
        return None
    hw = target.hardware
    precision = model_precision(static)
    config = dm.Config(dm.Device.from_hardware(hw), m.runtime, precision, threads, target.profile.batch_size)
    structure = dm.Structure.from_static(static)
    adapted_notes, adapted = _adapted(structure, config, params)
    if adapted is not None:
        params, config = adapted[0], adapted[1]
        pred = adapted[3]
    else:
        pred = dm.predict(structure, config, params)
    details["device_model"] = {
        "seconds": pred.value, "lower": pred.lower, "upper": pred.upper, "columns": config.columns(),
        "unfitted": list(pred.unfitted), "precision": precision, "threads": threads,
        "widenings_log": {k: round(v, 4) for k, v in pred.widenings.items()},
    }
    if adapted is not None:
        details["device_model"]["adapted"] = adapted[2]
    unseen = any(name.startswith("no truth-table row for device") for name in pred.widenings)
    if unseen and hw.cpu.sustained_fp32:
        # A device the fit never saw, whose hardware file carries its own measured sustained fp32
        # (`mlfit calibrate --emit-hardware` on it): that measurement beats a prior. The host ratios
        # project from it; the device model stays in the details as the cross-check.
        details["device_model"]["not_used"] = "no truth-table row for this device; its measured sustained fp32 used"
        return None
    sources = {name: (math.exp(-h), math.exp(h)) for name, h in pred.widenings.items()}
    notes = [
        *adapted_notes,
        f"fitted device model: {pred.value * 1e3:.3g} ms per inference on {hw.name} ({m.runtime}, {precision}, "
        f"{threads} thread(s)) from this model's op classes (dense/depthwise FLOPs, streamed bytes, kernels) and "
        f"constants fitted on published measurements of real devices (benchmarks/device_truth.yaml); the "
        f"host's measured percentiles give the tail's shape",
        "band widenings combine in quadrature: "
        + "; ".join(f"{k} x{math.exp(h):.2f}" for k, h in pred.widenings.items()),
    ]
    if isa_family(host_arch) != isa_family(hw.cpu.arch.value):
        notes.append(
            f"this host is {host_arch}, the target {hw.cpu.arch.value}: the device model projects from the "
            f"model's structure and the target's fitted constants, not by scaling this host's kernels, so the "
            f"instruction-set difference does not widen the band"
        )
    method = (
        ("device model adapted to rows measured on this device, " if adapted is not None else "")
        + f"device model fitted on published device measurements ({', '.join(config.columns())}), "
        f"{threads} thread(s) on {hw.name}; host percentiles scaled to it"
    )
    return Band(pred.value / host, pred.lower / host, pred.upper / host), method, notes, sources


def device_model_nodes(target: Target, m: Measurement, static: dict[str, Any] | None,
                       threads: int) -> list[tuple[str, str, float]]:
    """Each static node's part of the device model's figure (name, op, seconds); empty without a fit."""
    from mlfit.analysis import devicemodel as dm

    params = dm.fitted()
    if params is None or not static or not static.get("nodes"):
        return []
    hw = target.hardware
    config = dm.Config(dm.Device.from_hardware(hw), m.runtime, model_precision(static), threads,
                       target.profile.batch_size)
    return dm.node_seconds(static, config, params)


def _adapted(structure: Any, config: Any, params: Any) -> tuple[list[str], tuple[Any, Any, dict[str, Any], Any] | None]:
    """The device's own adapted fit (``mlfit truth fit``), when the check was given one for this
    hardware and its figures are the hardware file's: the notes, and (params, config, details)."""
    from mlfit.analysis import deviceadapt as da
    from mlfit.analysis import devicemodel as dm

    fit = da.active(config.device.id)
    if fit is None:
        return [], None
    if not da.same_device(fit.device, config.device):
        return [f"an adapted device fit exists for {config.device.id}, but its hardware figures differ from the "
                f"hardware file's now (edited since the fit): not used; run `mlfit truth fit --hardware "
                f"{config.device.id}` again"], None
    before = dm.predict(structure, config, params).value
    adapted_config = da.on_device(config)
    pred = da.predict(structure, config, fit.params, fit.device_terms, fit.rows, fit.band)
    details = {"rows": fit.rows, "summary": fit.summary, "seconds_unadapted": before,
               "terms": da.terms_to_dict(fit.device_terms)}
    notes = [fit.summary] + ([fit.stale] if fit.stale else [])
    return notes, (fit.params, adapted_config, details, pred)
