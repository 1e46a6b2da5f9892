"""Carry host measurements to a target's hardware, with a lower and an upper bound.

One module per concern: :mod:`.types` (Band, Projection), :mod:`.cpu` (the CPU projection),
:mod:`.threads` (a node's time at another thread count), :mod:`.bands` (percentile bands and
the notes on their width), :mod:`.gpu` (the GPU roofline), :mod:`.memory` (peak memory).
:func:`project` picks the path for a target. Pure: no I/O.
"""

from __future__ import annotations

from typing import Any

from mlfit.analysis.project.cpu import project_cpu
from mlfit.analysis.project.gpu import gpu_path_peak, gpu_roofline, project_gpu
from mlfit.analysis.project.threads import THREAD_MODELS, parallel_weight, thread_speedup
from mlfit.analysis.project.types import TOP_N, WIDE_BAND, Band, Projection, model_precision
from mlfit.catalog.loader import Target, is_gpu_target
from mlfit.records import Calibration, NodeProfile
from mlfit.result import HostInfo, Measurement

__all__ = [
    "THREAD_MODELS", "TOP_N", "WIDE_BAND", "Band", "Projection", "gpu_path_peak", "gpu_roofline",
    "model_precision", "parallel_weight", "project", "project_cpu", "project_gpu", "thread_speedup",
]


def project(
    target: Target,
    measurement: Measurement,
    node_profile: NodeProfile | None,
    static: dict[str, Any] | None,
    calibration: Calibration | None,
    host: HostInfo,
) -> Projection | None:
    """The projection for one target, or None when it cannot be made (then host figures stay labelled)."""
    if is_gpu_target(target):
        return project_gpu(target, measurement, static, host)
    if calibration is None:
        return None
    return project_cpu(target, measurement, node_profile, static, calibration, host)
