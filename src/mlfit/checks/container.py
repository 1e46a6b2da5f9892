"""What a container's limits did to a measurement: the notes and checks of an emulated target.

Pure, like the engine: an :class:`Emulation` record in, text and checks out.
"""

from __future__ import annotations

from mlfit.catalog.loader import Target
from mlfit.catalog.units import format_duration, format_size
from mlfit.report.common import describe_limits, throttle_totals
from mlfit.result import Check, Emulation, ErrorInfo, Provenance, TargetReport, Verdict


def emulation_notes(emulation: Emulation) -> list[str]:
    """Throttling in the timed phases, and the thread-count comparison with its recommendation."""
    notes = [f"emulated: measured on this host inside a cgroup with the container's limits "
             f"({describe_limits(emulation)}); this host's CPU still differs from the cluster's nodes"]
    periods, throttled, seconds = throttle_totals(emulation)
    if periods:
        share = throttled / periods
        effect = (" : the quota ran out in most periods, so latency includes waits for the next 100 ms "
                  "period (this is why p99 can sit far above p50 in a pod)" if share >= 0.5 else "")
        notes.append(f"CFS throttling while timed: {throttled} of {periods} periods throttled ({share:.0%}), "
                     f"{format_duration(seconds)} throttled{effect}")
    compared = emulation.threads_compared
    if compared is not None and compared.recommendation:
        notes.append(compared.recommendation)
    return notes


def oom_report(target: Target, emulation: Emulation, error: ErrorInfo) -> TargetReport:
    """An OOM kill under the container's memory limit is a measured FAIL of memory.peak."""
    limit = float(emulation.memory_bytes or 0)
    # Killed means it reached the limit, whatever the cgroup was charged (a kill on the resident memory,
    # the libraries' pages included, leaves the cgroup's own peak below the limit).
    peak = max(float(emulation.cgroup_peak_bytes or 0), limit)
    check = Check(
        metric="memory.peak", budget=f"<= {format_size(limit)} (container limit)", limit=limit, value=peak,
        lower=peak, upper=peak, unit="B", verdict=Verdict.FAIL, provenance=Provenance.EMULATED,
        method=f"cgroup memory high-water mark under the container's limits ({describe_limits(emulation)})",
        margin=(limit - peak) / limit if limit else None,
        reason=f"OOM-killed in phase '{error.phase}': the worker reached the limit of {format_size(limit)}",
    )
    return TargetReport(target=target.name, hardware=target.hardware.id, hardware_name=target.hardware.name,
                        source=target.source, verdict=Verdict.FAIL, checks=[check],
                        notes=[error.message, *emulation_notes(emulation)[1:]], emulation=emulation)
