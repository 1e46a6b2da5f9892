"""What a container's limits did to a measurement: the notes and checks of an emulated target.

Pure, like the engine: an :class:`Emulation` record in, text and checks out.
"""

from __future__ import annotations

from mlfit.catalog.loader import Target
from mlfit.catalog.units import format_duration, format_size
from mlfit.result import Check, Emulation, ErrorInfo, Provenance, TargetReport, Verdict

# The phases whose throttling matters for the latency figures.
_TIMED_PHASES = ("measure", "throughput", "scenario")


def describe_limits(emulation: Emulation) -> str:
    parts = []
    if emulation.cpu is not None:
        parts.append(f"cpu {emulation.cpu:g}")
    if emulation.memory_bytes is not None:
        parts.append(f"memory {format_size(emulation.memory_bytes)}")
    if emulation.cpuset:
        parts.append(f"cpuset {emulation.cpuset}")
    return f"{', '.join(parts) or 'no limits'}; {emulation.threads} thread(s); {emulation.method}"


def emulation_notes(emulation: Emulation) -> list[str]:
    """Throttling in the timed phases, and the thread-count comparison with its recommendation."""
    notes = [f"emulated: measured on this host inside a cgroup with the container's limits "
             f"({describe_limits(emulation)}); this host's CPU still differs from the cluster's nodes"]
    timed = [emulation.throttling[p] for p in _TIMED_PHASES if p in emulation.throttling]
    periods = sum(t.periods for t in timed)
    throttled = sum(t.throttled_periods for t in timed)
    if periods:
        seconds = sum(t.throttled_s for t in timed)
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
    peak = float(emulation.cgroup_peak_bytes or limit)
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
