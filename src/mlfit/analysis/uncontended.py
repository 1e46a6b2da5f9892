"""The model's uncontended cost: what a call costs when nothing else wants the CPU.

A shared host (a CI runner, a 2-core VM next to other jobs) lengthens the wall time of a
call whenever another process holds a core; it does not change the work the call does.
Measured on a 2-core VM with the example model and two ``yes`` processes on both cores
(benchmarks/bench_load_verdicts.py; numbers in docs/contention.md):

- the timed loop's wall p50 moved 1.3-4x and its p95 3-5x between quiet and loaded;
- single-thread CPU time per call moved 5-15% (what is left is real: a neighbour's cache and
  memory traffic slow the core itself);
- the per-node times of onnxruntime's single-thread profile, fastest fifth of each node
  (``node_us_low``), summed, moved 3-14%: a node is short next to a scheduler time slice, so
  its fast runs are the uninterrupted ones. At 2 threads the same sums moved 30-50%: one
  descheduled thread stalls every parallel node, so multi-thread figures are not used as the
  model's cost; thread scaling comes from the calibration instead.

So the projection starts from the single-thread per-node low figures (see
``mlfit.analysis.project``), the spread of the percentiles from the fast half of the timed
loop, and the host-to-target ratio from a calibration scaled by a reference kernel timed in
the same worker (:func:`reference_scale`). The host's wall figures stay what they are:
measured on this host, busy or not. Pure: no I/O.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from mlfit.catalog.schema import Percentile
from mlfit.records import Calibration, NodeProfile
from mlfit.result import Measurement

# Standard normal quantiles: the spread of the upper percentiles is read from the lower half.
_Z = {0.1: 1.2816, Percentile.P50: 0.0, Percentile.P90: 1.2816, Percentile.P95: 1.6449, Percentile.P99: 2.3263}
# How far the uncontended estimate itself moved between a quiet and a fully loaded host (the
# per-node low sums and CPU times above: up to ~15%): the band widens by up to this much.
BUSY_WIDENING = (0.15, 0.2)  # lower bound down by 15%, upper up by 20%, at busy = 1
_SCALE_LIMITS = (0.25, 2.0)


@dataclass(frozen=True)
class HostLoad:
    """How busy the host was during the timed loop."""

    cpu_share: float  # CPU time the process got over what its threads could have had
    switches_per_s: float
    runnable: int | None
    cores: int
    steal: float | None
    slowdown: float | None  # wall p50 over the uncontended p50, when known

    @property
    def busy(self) -> float:
        """0 (nothing else ran) to 1 (every core had another runnable task): the larger of the
        runnable tasks beyond this one per core and the share of wall time lost to contention
        (1 - uncontended / wall p50). The CPU share alone is not used: a runtime whose idle pool
        threads sleep instead of spinning gets a low share on a quiet host."""
        signals = []
        if self.runnable is not None:
            signals.append((self.runnable - 1) / max(1, self.cores))
        if self.slowdown is not None and self.slowdown > 0:
            signals.append(1 - 1 / self.slowdown)
        if not signals:
            signals.append(1 - self.cpu_share)
        return max(0.0, min(1.0, max(signals)))

    def describe(self) -> str:
        parts = [f"the model's threads got {self.cpu_share:.0%} of the CPU they asked for",
                 f"{self.switches_per_s:.0f} involuntary context switches/s"]
        if self.runnable is not None:
            parts.append(f"{self.runnable} runnable tasks on {self.cores} cores")
        if self.steal:
            parts.append(f"steal {self.steal:.0%}")
        if self.slowdown is not None:
            parts.append(f"wall p50 {self.slowdown:.2f}x the uncontended cost")
        return ", ".join(parts)


def host_load(m: Measurement, cores: int, uncontended_p50: float | None = None) -> HostLoad | None:
    """The measure phase's contention signals, or None for a result without them (schema 1)."""
    phase = m.contention.phase("measure") if m.contention is not None else None
    if phase is None:
        return None
    runnable = max(x for x in (phase.runnable_before, phase.runnable_after) if x is not None) \
        if phase.runnable_before is not None or phase.runnable_after is not None else None
    wall_p50 = m.latency.p50 or m.latency.mean
    slowdown = wall_p50 / uncontended_p50 if uncontended_p50 and wall_p50 else None
    return HostLoad(cpu_share=min(1.0, phase.cpu_share), switches_per_s=phase.switches_per_s,
                    runnable=runnable, cores=cores, steal=phase.steal_fraction, slowdown=slowdown)


def _quantile(sorted_values: list[float], q: float) -> float:
    return sorted_values[max(0, math.ceil(q * len(sorted_values)) - 1)]


def least_disturbed(m: Measurement, ordered: bool = False) -> list[float]:
    """Per call, seconds: the wall time, or the CPU time when less (one thread: the time the call
    ran; more threads: the calling thread's share was interrupted less than the wall shows).
    Sorted, or in the order the calls ran with ``ordered``."""
    wall = m.latency.samples_ns
    cpu = m.latency.cpu_samples_ns
    if cpu and len(cpu) == len(wall):
        values = [min(w, c) / 1e9 if c > 0 else w / 1e9 for w, c in zip(wall, cpu, strict=True)]
    else:
        values = [w / 1e9 for w in wall]
    return values if ordered else sorted(values)


def _sigma(values: list[float]) -> float:
    """Log-normal spread from the lower half: the median over the 10th percentile."""
    ordered = sorted(values)
    p50, p10 = _quantile(ordered, 0.5), _quantile(ordered, 0.1)
    return math.log(p50 / p10) / _Z[0.1] if p10 > 0 else 0.0


WINDOW = 32  # samples per sub-window of the timed loop


def dispersion(m: Measurement) -> dict[Percentile, float]:
    """Each percentile over the median of the uncontended distribution.

    From the quietest sub-windows of the timed loop: the samples in order, cut into windows of
    about 32 calls; in each, the spread of the least disturbed times (the median over the 10th
    percentile, taken as log-normal); the quietest window's spread. Contention comes and goes, so
    some stretch of the loop is quieter than the rest; the whole loop's spread is mostly the
    neighbours'. Never above the spread actually observed, never below 1. Measured on the 2-core VM
    with the example, 130 calls, seven runs quiet and loaded (docs/contention.md): the whole loop's
    p95 spread ranged 1.15-2.6, the quietest window's 1.05-1.39 (the mean of the two quietest
    1.13-1.49: the second window was often already disturbed). The minimum of a few noisy
    estimates leans low, a slightly optimistic tail; the band's conservative end keeps the rest."""
    values = least_disturbed(m, ordered=True)
    if len(values) < 5:
        return {p: 1.0 for p in Percentile}
    count = max(1, min(8, len(values) // WINDOW))
    sigmas = sorted(_sigma(values[i * len(values) // count:(i + 1) * len(values) // count]) for i in range(count))
    sigma = sigmas[0]
    wall = sorted(s / 1e9 for s in m.latency.samples_ns)
    w50 = _quantile(wall, 0.5)
    out: dict[Percentile, float] = {}
    for p in Percentile:
        observed = _quantile(wall, p.quantile) / w50 if w50 > 0 else 1.0
        out[p] = max(1.0, min(observed, math.exp(sigma * _Z[p])))
    return out


# The p95 spread (p95 over p50) seen on quiet stretches of this 2-core host: 1.05-1.39 for the
# example (quietest windows, seven runs), 1.14-1.48 for MobileNetV2-224 and ResNet-50 at one and two
# threads. The centre keeps a measured spread inside the quiet range, so that a loop that had no
# undisturbed stretch cannot move it by more than that range; the band covers no tail at all up to
# the largest quiet spread, or the measured one when larger (a model with a real tail keeps it).
P95_SPREAD = (1.0, 1.1, 1.35, 1.5)  # band low, centre clamp low, centre clamp high, band high


def tail_spread(m: Measurement) -> dict[Percentile, tuple[float, float, float]]:
    """Per percentile: (optimistic, centre, conservative) spread over the uncontended median.

    The centre is the quietest window's spread (:func:`dispersion`) kept within the range seen on
    quiet runs; the optimistic end assumes no tail, the conservative one the largest quiet spread
    or the measured one, whichever is larger. Other percentiles scale as a log-normal's do (by
    their normal quantile over p95's)."""
    measured = dispersion(m)
    low, c_low, c_high, high = P95_SPREAD
    out: dict[Percentile, tuple[float, float, float]] = {}
    for p in Percentile:
        power = _Z[p] / _Z[Percentile.P95]
        centre = min(max(measured[p], c_low**power), c_high**power)
        out[p] = (low**power, centre, max(measured[p], high**power))
    return out


def sample_p50(m: Measurement) -> float:
    """The uncontended median from the samples alone (no node profile): with one thread the CPU
    time of a call is the call uninterrupted; with more, the 20th percentile of the least
    disturbed times (contention only lengthens calls), a slightly optimistic figure."""
    values = least_disturbed(m)
    cpu_ok = bool(m.latency.cpu_samples_ns) and m.threads == 1
    return _quantile(values, 0.5 if cpu_ok else 0.2)


def single_thread_cost(node_profile: NodeProfile | None) -> float | None:
    """Seconds per call at one thread from the node profile's per-node fast figures (kernels plus
    the executor's fast overhead), or None without a single-thread profile of that kind."""
    one = node_profile.at(1) if node_profile is not None else None
    if one is None or one.nodes_us_low is None:
        return None
    return (float(one.nodes_us_low) + max(0.0, float(one.overhead_us_low))) / 1e6


def reference_scale(m: Measurement, cal: Calibration | None) -> float | None:
    """The host's speed while the model ran over its speed when calibrated: the reference kernel
    (the calibration's own single-thread GEMM, timed between the model's runs, CPU time) over the
    cached calibration's figure. None without both."""
    ref = m.contention.reference if m.contention is not None else None
    if ref is None or cal is None:
        return None
    cached = cal.gemm_flops.get("1")
    if not cached or ref.flops_per_s <= 0:
        return None
    lo, hi = _SCALE_LIMITS
    return max(lo, min(hi, ref.flops_per_s / float(cached)))


def scaled_calibration(cal: Calibration, scale: float) -> Calibration:
    """The calibration as this host ran while the model was measured: every rate times ``scale``,
    the per-call overhead over it."""
    out: dict[str, Any] = {}
    for key in ("gemm_flops", "conv_flops", "bandwidth"):
        out[key] = {k: float(v) * scale for k, v in getattr(cal, key).items()}
    # The peak and the clock scale too, so the host's efficiency (rate over peak) stays what it
    # was calibrated at: a busy neighbour slows this host, it does not change its design.
    for key in ("copy_bandwidth_1t", "peak_fp32_per_core", "frequency_mhz"):
        if getattr(cal, key):
            out[key] = float(getattr(cal, key)) * scale
    if cal.call_overhead_s:
        out["call_overhead_s"] = float(cal.call_overhead_s) / scale
    return cal.model_copy(update=out)


@dataclass(frozen=True)
class CostFigure:
    """A run's contention-proof cost per call, with its within-run noise, for ``mlfit compare``."""

    seconds: float
    noise: float  # relative: how far the same figure from the even and the odd runs differed
    basis: str
    reference_flops_per_s: float | None  # the host's speed while measuring (reference kernel)


def _split_noise(a: float, b: float) -> float:
    return abs(a - b) / (a + b) if a > 0 and b > 0 else 0.0


def cost_figure(m: Measurement | None, node_profile: NodeProfile | None) -> CostFigure | None:
    """The uncontended cost of one run: the single-thread node profile's fast fifth when there is
    one, else the sample-based uncontended median; None for a run without them (schema 1)."""
    if m is None:
        return None
    ref = m.contention.reference.flops_per_s if m.contention and m.contention.reference else None
    one = node_profile.at(1) if node_profile is not None else None
    cost = single_thread_cost(node_profile)
    if cost is not None and one is not None:
        halves = [float(x) for x in one.nodes_us_low_halves]
        noise = _split_noise(*halves) if len(halves) == 2 else 0.0
        return CostFigure(cost, noise, "onnxruntime node profile, 1 thread, fastest fifth per node", ref)
    if m.contention is None or len(m.latency.samples_ns) < 10:
        return None
    even, odd = (m.model_copy(update={"latency": m.latency.model_copy(update={
        "samples_ns": m.latency.samples_ns[i::2],
        "cpu_samples_ns": m.latency.cpu_samples_ns[i::2] if m.latency.cpu_samples_ns else []})}) for i in (0, 1))
    basis = "CPU time per call" if m.threads == 1 and m.latency.cpu_samples_ns else \
        "20th percentile of the least disturbed calls"
    return CostFigure(sample_p50(m), _split_noise(sample_p50(even), sample_p50(odd)), basis, ref)
