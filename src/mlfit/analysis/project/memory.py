"""The process's peak memory on the target, from the host's measured peak and the model's floor."""

from __future__ import annotations

from typing import Any

from mlfit.analysis.project.types import Band, isa_family
from mlfit.result import Measurement


def memory_band(
    m: Measurement, static: dict[str, Any] | None, host_arch: str, target_arch: str, extra: Band | None
) -> Band:
    """Process peak on the target: the host's measured peak, widened for another architecture;
    never below runtime baseline + parameters + peak activations."""
    centre = float(m.memory.peak_bytes)
    same = isa_family(host_arch) == isa_family(target_arch)
    lo_f, hi_f = (0.9, 1.15) if same else (0.8, 1.35)
    floor = float(m.memory.runtime_baseline_bytes)
    if static:
        floor += float(sum(static.get("parameter_bytes", {}).values())) + float(
            static.get("activation_peak_bytes") or 0
        )
    band = Band(centre, max(min(centre, floor), centre * lo_f), centre * hi_f)
    if extra is not None:
        band = Band(band.value + extra.value, band.lower + extra.lower, band.upper + extra.upper)
    return band
