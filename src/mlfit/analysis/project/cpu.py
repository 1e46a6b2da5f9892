"""CPU targets (method "per-node roofline scaling"): onnxruntime's node profile gives each
node's time on this host at one or more thread counts. Each node's time at the target's
thread count is taken as measured, or extrapolated (:mod:`.threads`). Each node is then classed
compute- or memory-bound by its arithmetic intensity against the target's ridge point and scaled
by the compute ratio (host calibrated GEMM/conv per core vs the target's sustained per core)
or the bandwidth ratio (host triad vs the target's STREAM figure), and the executor's
per-call time by the clock ratio. The ratio of projected to profiled total carries every
measured percentile (and its order-statistic bounds) to the target (:mod:`.bands`).

Without a node profile (another runtime) the whole model is scaled between the compute and
bandwidth ratios, with a wide band. Where the device model fitted on published measurements
applies, it replaces the host ratios (the host's stays in the details as a cross-check).
Bands widen for a different instruction set, an unknown sustained efficiency, thread
counts beyond those measured here, and a different runtime version. Pure: no I/O.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from mlfit.analysis.costs import op_cost
from mlfit.analysis.project.bands import (
    explain_wide_band,
    host_sources,
    latency_bands,
    load_note,
    uncontended_bands,
)
from mlfit.analysis.project.device import device_model_nodes, fitted_cpu_factor
from mlfit.analysis.project.estimators import (
    HOST,
    Combined,
    Floors,
    HostNode,
    combine,
    roofline_floor,
    weaker_than_host,
)
from mlfit.analysis.project.memory import memory_band
from mlfit.analysis.project.threads import host_total_at, node_time_at
from mlfit.analysis.project.types import TOP_N, Band, Projection, isa_family, model_precision
from mlfit.analysis.uncontended import (
    dispersion,
    host_load,
    reference_scale,
    sample_p50,
    scaled_calibration,
    single_thread_cost,
)
from mlfit.catalog.loader import Target
from mlfit.catalog.schema import Percentile
from mlfit.records import Calibration, NodeProfile, ProfiledNode, ThreadProfile
from mlfit.result import HostInfo, Measurement

# Sustained fraction of the dense fp32 peak that onnxruntime's kernels reach on a CPU whose
# sustained figure is not in its hardware file. Same ISA family: the host's own measured
# efficiency, give or take. Another ISA (x86 -> ARM): MLAS's NEON kernels are not its AVX
# ones, so a fixed central guess with a wide band (best, centre, worst).
_EFF_SAME_ISA = (1.15, 1.0, 0.8)  # multipliers on the host's efficiency
_EFF_OTHER_ISA = (0.85, 0.65, 0.45)
_MEASURED_BAND = (0.93, 1.08)  # target's sustained figure measured by `mlfit calibrate` on it
_CACHE_RESIDENT_BYTES = 1 << 20  # a node moving less than this stays in cache on any target
_RUNTIME_VERSION_BAND = (0.95, 1.1)


@dataclass(frozen=True)
class _Ratios:
    compute: Band  # host time -> target time multipliers for compute-bound nodes
    conv: Band
    memory: Band
    clock: Band
    ridge: float  # target FLOP per byte where compute and bandwidth limits meet


def _cpu_ratios(
    target: Target, cal: Calibration, host_arch: str, threads: int, notes: list[str]
) -> _Ratios:
    cpu, mem = target.hardware.cpu, target.hardware.memory
    same_isa = isa_family(host_arch) == isa_family(cpu.arch.value)
    gemm_1 = float(cal.gemm_flops["1"])
    conv_1 = float(cal.conv_flops.get("1", gemm_1))
    host_peak = cal.peak_fp32_per_core
    host_eff = min(1.0, gemm_1 / host_peak) if host_peak else 0.8
    target_peak_core = cpu.peak_fp32 / cpu.cores
    sustained = getattr(cpu, "sustained_fp32", None)
    if sustained:
        per_core = sustained / cpu.cores
        lo_f, hi_f = _MEASURED_BAND
        core = (per_core, per_core * hi_f, per_core * lo_f)  # speeds: centre, fastest, slowest
        notes.append(f"{target.hardware.name}: sustained fp32 from its hardware file ({cpu.source})")
    elif same_isa:
        best, _, worst = _EFF_SAME_ISA
        eff = min(0.95, host_eff)
        core = (
            target_peak_core * eff,
            target_peak_core * min(1.0, eff * best),
            target_peak_core * eff * worst,
        )
        notes.append(
            f"sustained fp32 on {target.hardware.name} assumed at this host's measured efficiency "
            f"({eff:.0%} of peak); its hardware file gives only the peak"
        )
    else:
        best, centre, worst = _EFF_OTHER_ISA
        core = (target_peak_core * centre, target_peak_core * best, target_peak_core * worst)
        notes.append(
            f"different instruction set: host {host_arch}, target {cpu.arch.value}: band widened "
            f"(a runtime's kernels differ per ISA; sustained fp32 assumed {worst:.0%}-{best:.0%} "
            f"of the target's peak, {centre:.0%} central)"
        )
    # A faster target core means a smaller time multiplier: lower (optimistic) uses the fastest.
    compute = Band(gemm_1 / core[0], gemm_1 / core[1], gemm_1 / core[2])
    conv = Band(conv_1 / core[0], conv_1 / core[1], conv_1 / core[2])
    bw_counts = {int(k): float(v) for k, v in cal.bandwidth.items()}
    host_bw = (
        max(v for t, v in bw_counts.items() if t <= max(1, threads))
        if any(t <= max(1, threads) for t in bw_counts)
        else max(bw_counts.values())
    )
    r_m = host_bw / mem.bandwidth
    mhz = cal.frequency_mhz or 0.0
    clock_ratio = (mhz * 1e6 / cpu.frequency) if mhz else compute.value
    # A streaming node is bound by DRAM bandwidth, but never faster than the clock allows.
    memory = Band(max(r_m, clock_ratio), r_m, max(r_m, clock_ratio) * 1.5)
    clock = Band(clock_ratio, clock_ratio * 0.8, max(clock_ratio * 1.5, clock_ratio))
    target_compute = core[0] * max(1, min(threads, cpu.cores))
    return _Ratios(compute, conv, memory, clock, ridge=target_compute / mem.bandwidth)


def _moved_bytes(facts: ProfiledNode, macs: int) -> int:
    """Bytes a node reads and writes. onnxruntime prepacks MatMul/Gemm weights and then no
    longer lists them as inputs: add them back (K x N fp32 from the MACs and the output rows)."""
    moved = facts.activation_bytes + facts.param_bytes + facts.output_bytes
    op = facts.op
    if ("MatMul" in op or "Gemm" in op) and macs and len(facts.inputs) < 2 + ("Gemm" in op):
        out = facts.outputs[0] if facts.outputs else []
        rows = math.prod(out[:-1]) if len(out) >= 2 else 1
        moved += 4 * macs // max(1, rows)
    return moved


class _HostFactor(NamedTuple):
    """Host time -> target time, as the host's own figures give it, before the device model."""

    factor: Band
    method: str
    nodes: list[HostNode]  # each profiled node, its target times in µs (empty: whole-model scaling)


@dataclass
class _Sums:
    """The target's per-node sums (µs): optimistic, centre, conservative; each ratio's part of
    them (lower, centre, upper); each node's centre, for the costliest list."""

    lo: float = 0.0
    mid: float = 0.0
    hi: float = 0.0
    kinds: dict[str, list[float]] = field(default_factory=dict)
    per_node: list[tuple[float, str, str]] = field(default_factory=list)
    nodes: list[HostNode] = field(default_factory=list)  # each node's host time and target band (µs)
    compute: float = 0.0  # centre of the compute-bound nodes

    def add(self, t_host: float, r: Band, kind: str) -> None:
        self.lo += t_host * r.lower
        self.mid += t_host * r.value
        self.hi += t_host * r.upper
        part = self.kinds.setdefault(kind, [0.0, 0.0, 0.0])
        part[0] += t_host * r.lower
        part[1] += t_host * r.value
        part[2] += t_host * r.upper


def project_cpu(
    target: Target,
    measurement: Measurement,
    node_profile: NodeProfile | None,
    static: dict[str, Any] | None,
    cal: Calibration,
    host: HostInfo,
    thread_model: str = "gemm",
) -> Projection:
    """Project a CPU target from the host's node profile (or the whole model when there is none).

    ``thread_model`` (one of ``THREAD_MODELS``) scales a node from a single profiled thread count."""
    notes: list[str] = []
    hw = target.hardware
    threads = max(1, min(target.profile.threads, hw.cpu.cores))
    if target.profile.threads > hw.cpu.cores:
        notes.append(
            f"the profile asks for {target.profile.threads} threads on {hw.cpu.cores} cores; "
            f"projected at {threads}"
        )
    scale = reference_scale(measurement, cal)
    design = cal  # this host's design figures (peak, clock), for the physical floors
    if scale is not None:
        cal = scaled_calibration(cal, scale)
        if abs(scale - 1) >= 0.03:
            notes.append(
                f"this host ran at {scale:.0%} of its calibrated speed while the model was measured (the "
                f"calibration's GEMM timed between the model's runs): the host-to-target ratios use that"
            )
    ratios = _cpu_ratios(target, cal, host.arch, threads, notes)
    sources: dict[str, tuple[float, float]] = {}  # each widening, as multipliers on the centre
    details: dict[str, Any] = {
        "target_threads": threads,
        "ratios": {
            "compute": ratios.compute.__dict__,
            "memory": ratios.memory.__dict__,
            "clock": ratios.clock.__dict__,
        },
        "ridge_flop_per_byte": ratios.ridge,
    }
    details["reference_scale"] = scale
    by_threads, uncontended = _profile_basis(node_profile, measurement)
    if by_threads is not None:
        host_factor = _per_node_factor(target, measurement, node_profile or NodeProfile(), by_threads, uncontended, cal,
                                       ratios, threads, thread_model, notes, sources, details)
    else:
        host_factor = _whole_model_factor(measurement, node_profile, ratios, threads, notes, sources)
    return _cpu_projection(target, measurement, static, (cal, design), host, ratios, threads, host_factor,
                           uncontended, notes, sources, details)


def _profile_basis(
    node_profile: NodeProfile | None, measurement: Measurement
) -> tuple[dict[str, ThreadProfile] | None, bool]:
    """The node profile's timings by thread count that the per-node projection starts from (None:
    no usable profile), and whether they are the uncontended single-thread figures."""
    by_threads = node_profile.by_threads if node_profile is not None else {}
    uncontended = single_thread_cost(node_profile) is not None
    if uncontended:
        # Contention-proof basis: the single-thread profile's per-node fastest fifth, carried to
        # any thread count by the calibrated thread speed-up (mlfit.analysis.uncontended).
        one = by_threads["1"]
        by_threads = {"1": one.model_copy(update={"node_us": one.node_us_low, "overhead_us": one.overhead_us_low})}
    if by_threads and (str(measurement.threads) in by_threads or uncontended):
        return by_threads, uncontended
    return None, uncontended


def _node_sums(
    node_profile: NodeProfile, by_threads: dict[str, ThreadProfile], counts: list[int], threads: int,
    cal: Calibration, ratios: _Ratios, thread_model: str,
) -> _Sums:
    """Each profiled node at the target's thread count, scaled by the ratio its boundedness picks,
    plus the executor's per-call overhead scaled by the clock ratio."""
    sums = _Sums()
    for name, facts in node_profile.nodes.items():
        times = {
            t: float(by_threads[str(t)].node_us[name])
            for t in counts
            if name in by_threads[str(t)].node_us
        }
        if not times:
            continue
        flops, macs, _ = op_cost(facts.op, facts.inputs, facts.outputs)
        moved = _moved_bytes(facts, macs)
        compute_bound = moved == 0 or flops / moved >= ratios.ridge
        t_host = node_time_at(times, threads, cal, flops, facts.op, thread_model)
        if compute_bound:
            r = ratios.conv if "Conv" in facts.op else ratios.compute
        else:  # cache-resident small nodes run at the core's vector speed, streaming ones at DRAM's
            r = ratios.compute if moved < _CACHE_RESIDENT_BYTES else ratios.memory
        sums.add(t_host, r, "memory bandwidth" if r is ratios.memory else "compute")
        if compute_bound:
            sums.compute += t_host * r.value
        sums.per_node.append((t_host * r.value, name, facts.op))
        sums.nodes.append(HostNode(name, facts.op, t_host, t_host * r.lower, t_host * r.value, t_host * r.upper))
    overhead = {t: float(by_threads[str(t)].overhead_us) for t in counts}
    o_host = overhead.get(threads, overhead[min(counts, key=lambda t: abs(t - threads))])
    sums.add(max(0.0, o_host), ratios.clock, "executor clock")
    return sums


def _thread_band(
    measurement: Measurement, by_threads: dict[str, ThreadProfile], counts: list[int], threads: int, uncontended: bool,
    thread_model: str, notes: list[str], sources: dict[str, tuple[float, float]],
) -> tuple[float, float]:
    """How much the thread count's extrapolation widens the band (multipliers), with its note."""
    band_lo, band_hi = 1.0, 1.0
    if len(counts) >= 2 and threads > max(counts):
        doublings = math.log2(threads / max(counts))
        band_lo *= 0.92
        band_hi *= 1 + 0.2 * doublings
        notes.append(
            f"{threads} threads extrapolated from {', '.join(map(str, counts))} measured here "
            f"(Amdahl fit per node); band widened"
        )
        sums = {t: float(by_threads[str(t)].nodes_us) for t in counts}
        if measurement.unstable and sums[max(counts)] >= sums[min(counts)]:
            # Not widened further: the optimistic bound already starts from the fastest run.
            notes.append(
                f"this host was busy: its nodes ran no faster at {max(counts)} threads than at "
                f"{min(counts)}, so the fit expects no gain from more threads and the centre is "
                f"likely pessimistic"
            )
        sources["threads"] = (band_lo, band_hi)
    elif (threads != measurement.threads) if uncontended else (
        threads < min(counts) or (threads not in counts and len(counts) < 2)
    ):
        # one profiled thread count: the FLOP-weighted thread speed-up is a model, not a fit
        band_lo *= 0.75
        band_hi *= 1.2
        notes.append(
            f"{threads} thread(s) scaled from {', '.join(map(str, counts))} measured here "
            + (
                "with each node class's calibrated thread speed-up (convolution, GEMM or bandwidth)"
                if thread_model == "per-class"
                else "with the calibrated GEMM thread speed-up"
            )
            + " weighted by each node's FLOPs"
        )
        sources["threads"] = (band_lo, band_hi)
    return band_lo, band_hi


def _per_node_factor(
    target: Target, measurement: Measurement, node_profile: NodeProfile, by_threads: dict[str, ThreadProfile],
    uncontended: bool, cal: Calibration, ratios: _Ratios, threads: int, thread_model: str,
    notes: list[str], sources: dict[str, tuple[float, float]], details: dict[str, Any],
) -> _HostFactor:
    """The factor from the node profile: the target's per-node sum over the host's profiled run."""
    counts = sorted(int(k) for k in by_threads)
    if uncontended:
        host_total = host_total_at(node_profile, by_threads["1"], measurement.threads, cal, thread_model)
    else:
        base = by_threads[str(measurement.threads)]
        # Same basis as the projected sum: per-node medians plus the executor's median overhead.
        host_total = float(base.nodes_us) + max(0.0, float(base.overhead_us))
    sums = _node_sums(node_profile, by_threads, counts, threads, cal, ratios, thread_model)
    # How wide the target's hardware alone makes the band (compute/bandwidth/clock ratios), and
    # each ratio's part: the band if only that ratio's bounds were applied.
    sources["target hardware"] = (sums.lo / sums.mid, sums.hi / sums.mid) if sums.mid else (1.0, 1.0)
    if sums.mid:
        details["target_hardware_parts"] = {
            k: [round(1 + (lo - mid) / sums.mid, 3), round(1 + (hi - mid) / sums.mid, 3)]
            for k, (lo, mid, hi) in sums.kinds.items()
            if mid > 0
        }
    band_lo, band_hi = _thread_band(measurement, by_threads, counts, threads, uncontended, thread_model,
                                    notes, sources)
    factor = Band(sums.mid / host_total, sums.lo * band_lo / host_total, sums.hi * band_hi / host_total)
    total_mid = sums.mid or 1.0
    details.update(
        {
            "host_profiled_run_us": host_total,
            "profiled_threads": counts,
            "compute_bound_share": sums.compute / total_mid,
        }
    )
    method = (
        "per-node scaling of onnxruntime's single-thread node profile (each node's uncontended "
        "fastest fifth) " if uncontended else
        f"per-node scaling of onnxruntime's node profile at {measurement.threads} thread(s) "
    ) + (
        f"(compute- or memory-bound against the target's ridge "
        f"{ratios.ridge:.1f} FLOP/B) to {target.hardware.name}, {threads} thread(s)"
    )
    return _HostFactor(factor, method, sums.nodes)


def _whole_model_factor(
    measurement: Measurement, node_profile: NodeProfile | None, ratios: _Ratios, threads: int,
    notes: list[str], sources: dict[str, tuple[float, float]],
) -> _HostFactor:
    """No node profile (another runtime): the whole model between the memory and compute ratios."""
    t_h = measurement.threads
    # The target's thread scaling, not this host's: the device model's fitted contention
    # constant, so more target threads never project slower (a busy host's calibrated GEMM
    # may show no 2-thread gain, and a TFLite run has no node profile to correct it).
    from mlfit.analysis import devicemodel as dm

    fit = dm.fitted()
    sigma = fit.sigma if fit is not None else dm.DEFAULTS["sigma"]
    thread_scale = dm.thread_speedup(t_h, sigma) / dm.thread_speedup(threads, sigma)
    lo = min(ratios.compute.lower, ratios.memory.lower) * thread_scale
    hi = max(ratios.compute.upper, ratios.memory.upper) * thread_scale * 1.15
    factor = Band(ratios.compute.value * thread_scale, lo, hi)
    sources["target hardware, whole model"] = (factor.lower / factor.value, factor.upper / factor.value)
    method = (
        f"whole-model scaling from {measurement.runtime} at {t_h} thread(s) by the calibrated compute "
        f"and bandwidth ratios (no node profile: wide band)"
    )
    failure = node_profile.error if node_profile is not None else None
    if failure:
        notes.append(f"onnxruntime's node profile failed ({failure}); whole-model projection")
    return _HostFactor(factor, method, [])


def _cpu_projection(
    target: Target, measurement: Measurement, static: dict[str, Any] | None, cals: tuple[Calibration, Calibration],
    host: HostInfo, ratios: _Ratios, threads: int, host_factor: _HostFactor, uncontended: bool,
    notes: list[str], sources: dict[str, tuple[float, float]], details: dict[str, Any],
) -> Projection:
    """From the host factor to the projection: the device model where it applies, the runtime
    version's widening, then every percentile's band from the host figure they start from. ``cals``:
    the calibration as this host ran while measuring, and as calibrated (its design figures)."""
    cal, design = cals
    factor, method = host_factor.factor, host_factor.method
    robust = details.get("host_profiled_run_us")
    robust_p50 = robust / 1e6 + float(cal.call_overhead_s or 0.0) if robust else None
    if uncontended or measurement.contention is not None:  # the host figure the bands below start from
        host_base = robust_p50 if uncontended and robust_p50 else sample_p50(measurement)
    else:
        wall = measurement.latency.p50 or measurement.latency.mean
        host_base = min(wall, robust_p50) if robust_p50 else wall
    fitted = fitted_cpu_factor(target, measurement, static, threads, details, host_base, host.arch)
    combined = _combine(target, measurement, static, design, threads, host_factor, fitted, host_base, details)
    if combined.estimator != HOST and fitted is not None:
        # the model fitted on published device measurements is the basis; the host ratios cross-check it
        details["factor_host_ratio"] = factor.__dict__
        _, method, notes, sources = fitted
    factor = Band(combined.seconds.value / host_base, combined.seconds.lower / host_base,
                  combined.seconds.upper / host_base)
    method = f"{combined.label}: {method}"
    notes.extend(combined.notes)
    sources.update(combined.sources)
    details["estimators"] = combined.record
    factor = _runtime_version_widening(target, measurement, factor, notes, sources)
    details["factor"] = factor.__dict__
    if uncontended or measurement.contention is not None:
        base = host_base
        load = host_load(measurement, host.cores_usable, base)
        # a device model's median (published rows' or the device's own) is its own figure: this host's
        # load does not move it
        latency = uncontended_bands(measurement, factor, base, load, median_from_host=combined.median_from_host)
        load_note(load, base, measurement, sources, notes, details, median_from_host=combined.median_from_host)
        mean_host = base * dispersion(measurement)[Percentile.P50]
        mean = Band(mean_host * factor.value, latency[Percentile.P50].lower, latency[Percentile.P50].upper)
    else:  # a schema-1 measurement: no CPU times, no contention signals
        latency = latency_bands(measurement, factor, robust_p50)
        shift = (
            min(1.0, robust_p50 / measurement.latency.mean) if robust_p50 and measurement.latency.mean else 1.0
        )
        mean = Band(
            measurement.latency.mean * shift * factor.value,
            measurement.latency.mean * factor.lower,
            measurement.latency.mean * factor.upper,
        )
    latency = {p: combined.floored(b) for p, b in latency.items()}
    host_sources(measurement, factor, latency, target, sources, notes, details)
    explain_wide_band(latency, target, sources, notes)
    details["band_sources"] = {k: [round(lo, 3), round(hi, 3)] for k, (lo, hi) in sources.items()}
    throughput, basis = _cpu_throughput(target, measurement, factor, mean)
    top_nodes, top_ops = _one_breakdown(combined.per_node, latency, details)
    return Projection(
        target=target.name,
        method=method,
        latency=latency,
        cold_start=_cpu_cold_start(measurement, ratios, factor, target.profile.budgets.cold_start_parts),
        memory_peak=memory_band(measurement, static, host.arch, target.hardware.cpu.arch.value, extra=None),
        throughput=throughput,
        throughput_basis=basis,
        notes=notes,
        top_nodes=top_nodes,
        top_ops=top_ops,
        details=details,
        estimator=combined.estimator,
    )


def _combine(
    target: Target, m: Measurement, static: dict[str, Any] | None, cal: Calibration, threads: int,
    host_factor: _HostFactor, fitted: Any, host_base: float, details: dict[str, Any],
) -> Combined:
    """The device model and the host-scaled estimate (seconds per inference) reconciled, with the
    physical floors (:mod:`.estimators`). ``cal``: this host's calibrated (design) figures."""
    hw = target.hardware
    fastest = float(m.latency.min or 0.0)
    # onnxruntime's profiler costs time of its own per node: where the profiled nodes add up to more
    # than this host's fastest whole call, the host-scaled estimate starts from the fastest call
    real = min(host_base, fastest) if fastest > 0 else host_base
    host_s = Band(host_factor.factor.value * real, host_factor.factor.lower * real, host_factor.factor.upper * real)
    host_total = float(details.get("host_profiled_run_us") or 0.0)
    to_s = real / host_total if host_total > 0 else 0.0
    host_nodes = [HostNode(n.name, n.op, n.host_us, n.lower * to_s, n.value * to_s, n.upper * to_s)
                  for n in host_factor.nodes] if to_s else []
    device: Band | None = None
    device_nodes: list[tuple[str, str, float]] = []
    if fitted is not None:
        f = fitted[0]
        device = Band(f.value * host_base, f.lower * host_base, f.upper * host_base)
        device_nodes = device_model_nodes(target, m, static, threads)
    precision = model_precision(static) if static else "fp32"
    roof = roofline_floor(static, precision, hw.cpu.peak_fp32 / hw.cpu.cores, threads, hw.memory.bandwidth)
    host_threads = max(1, m.threads)
    host_bw = max((float(v) for v in cal.bandwidth.values()), default=0.0)
    why = weaker_than_host(
        hw.cpu.peak_fp32 / hw.cpu.cores * threads, hw.memory.bandwidth, float(hw.cpu.frequency),
        (cal.peak_fp32_per_core or 0.0) * host_threads, host_bw, (cal.frequency_mhz or 0.0) * 1e6)
    # this host's own uncontended cost: the contention-proof figure, or the fastest call where that is
    # less (contention only lengthens a call; the profiler's own cost only lengthens a profiled node)
    floors = Floors(roof, real if why else 0.0, real, why)
    adapted = (details.get("device_model") or {}).get("adapted") if fitted is not None else None
    device_rows = int(adapted.get("rows") or 0) if isinstance(adapted, dict) else 0
    return combine(static, device, device_nodes, host_s, host_nodes, floors, device_rows)


def _one_breakdown(
    per_node: list[tuple[str, str, float]], latency: dict[Percentile, Band], details: dict[str, Any]
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The costliest nodes and op types of the one projection, and every op type's time in the
    details (``per_op``): scaled so that they add up to the projected median, the centre every
    reporter shows."""
    centre = latency[Percentile.P50].value if Percentile.P50 in latency else 0.0
    total = sum(t for _, _, t in per_node)
    if total <= 0 or centre <= 0:
        return [], []
    scale = centre / total
    nodes = sorted(((t * scale, name, op) for name, op, t in per_node), reverse=True)
    agg: dict[str, float] = {}
    for t, _, op in nodes:
        agg[op] = agg.get(op, 0.0) + t
    per_op: list[dict[str, Any]] = [{"op": op, "seconds": t, "share": t / centre}
                                    for op, t in sorted(agg.items(), key=lambda kv: -kv[1])]
    details["per_op"] = per_op
    top_nodes = [{"name": n, "op": op, "seconds": t, "share": t / centre} for t, n, op in nodes[:TOP_N]]
    return top_nodes, [o for o in per_op[:TOP_N] if float(o["share"]) >= 0.005]


def _runtime_version_widening(
    target: Target, measurement: Measurement, factor: Band, notes: list[str],
    sources: dict[str, tuple[float, float]],
) -> Band:
    """Another onnxruntime version on the target: its kernels may differ; the band widens."""
    version = target.profile.runtime_version
    host_version = measurement.runtime_version
    if (
        version
        and host_version
        and not host_version.startswith(version)
        and measurement.runtime == "onnxruntime"
    ):
        factor = Band(
            factor.value, factor.lower * _RUNTIME_VERSION_BAND[0], factor.upper * _RUNTIME_VERSION_BAND[1]
        )
        notes.append(f"the target runs onnxruntime {version}, this host {host_version}: band widened")
        sources["runtime version"] = _RUNTIME_VERSION_BAND
    return factor


def _cpu_throughput(target: Target, m: Measurement, factor: Band, mean: Band) -> tuple[Band | None, str]:
    tp = m.throughput
    batch = target.profile.batch_size
    if tp.batched_per_s and tp.batch_size == batch and batch > 1:
        base = tp.batched_per_s
        return Band(base / factor.value, base / factor.upper, base / factor.lower), f"batch {batch}"
    if mean.value <= 0:
        return None, ""
    basis = "single stream (batch dim not free)" if batch > 1 else "single stream"
    return Band(1 / mean.value, 1 / mean.upper, 1 / mean.lower), basis


def _cpu_cold_start(m: Measurement, ratios: _Ratios, factor: Band, parts: Sequence[str]) -> Band:
    cold = m.cold_start.parts()
    # Process start, the runtime's import and session creation are single-threaded work: the clock
    # ratio; the first run: the factor. Only the parts the profile's budget counts (all by default).
    load = sum(v for k, v in cold.items() if k != "first_inference" and k in parts)
    first = cold["first_inference"] if "first_inference" in parts else 0.0
    return Band(
        load * ratios.clock.value + first * factor.value,
        load * ratios.clock.lower + first * factor.lower,
        load * ratios.clock.upper + first * factor.upper,
    )
