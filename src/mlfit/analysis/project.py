"""Carry host measurements to a target's hardware, with a lower and an upper bound.

CPU targets (method "per-node roofline scaling"): onnxruntime's node profile gives each
node's time on this host at one or more thread counts. Each node's time at the target's
thread count is taken as measured, or extrapolated (Amdahl fit over two thread counts, or
the calibrated GEMM/bandwidth thread scaling from one). Each node is then classed compute-
or memory-bound by its arithmetic intensity against the target's ridge point and scaled by
the compute ratio (host calibrated GEMM/conv per core vs the target's sustained per core)
or the bandwidth ratio (host triad vs the target's STREAM figure), and the executor's
per-call time by the clock ratio. The ratio of projected to profiled total carries every
measured percentile (and its order-statistic bounds) to the target.

GPU targets without a GPU here (method "roofline"): every node of the static graph at the
GPU's dense peak and bandwidth, a launch cost per kernel, and the copies of inputs and
outputs over the host link.

Bands widen for a different instruction set, an unknown sustained efficiency, thread
counts beyond those measured here, and a different runtime version. Pure: no I/O.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from mlfit.analysis.calibrate import per_thread
from mlfit.analysis.costs import VIEW_OPS, op_cost
from mlfit.analysis.uncontended import (
    BUSY_WIDENING,
    HostLoad,
    dispersion,
    host_load,
    reference_scale,
    sample_p50,
    scaled_calibration,
    single_thread_cost,
    tail_spread,
)
from mlfit.catalog.loader import Target
from mlfit.catalog.schema import Percentile
from mlfit.measure.bounds import percentile_bounds
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
_GPU = {  # roofline parameters: optimistic, centre, conservative
    "compute_eff": (0.8, 0.5, 0.25),
    "bandwidth_eff": (0.85, 0.7, 0.5),
    "launch_s": (3e-6, 10e-6, 25e-6),
    "run_overhead_s": (15e-6, 40e-6, 120e-6),
    "cuda_init_s": (0.5, 1.5, 5.0),
    "cuda_context_bytes": (200 * 2**20, 400 * 2**20, 1024 * 2**20),
}
TOP_N = 5


@dataclass(frozen=True)
class Band:
    """A projected figure: optimistic ``lower``, centre ``value``, conservative ``upper``
    (for a rate, ``lower`` is the pessimistic one: always ``lower <= value <= upper``)."""

    value: float
    lower: float
    upper: float

    def __post_init__(self) -> None:
        # The bounds always enclose the centre, whatever rounding or clamping did upstream.
        object.__setattr__(self, "lower", min(self.lower, self.value))
        object.__setattr__(self, "upper", max(self.upper, self.value))

    def scaled(self, factor: Band) -> Band:
        return Band(self.value * factor.value, self.lower * factor.lower, self.upper * factor.upper)


@dataclass(frozen=True)
class Projection:
    target: str
    method: str
    latency: dict[Percentile, Band]
    cold_start: Band | None
    memory_peak: Band | None
    throughput: Band | None
    throughput_basis: str
    notes: list[str] = field(default_factory=list)
    top_nodes: list[dict[str, Any]] = field(default_factory=list)  # costliest on the target
    top_ops: list[dict[str, Any]] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)
    measured: bool = False  # True: measured on this host's GPU, not derived
    from_host_timings: bool = True  # False for a roofline: host noise does not reach it

    def summary(self) -> dict[str, Any]:
        """JSON-able description for the result file."""
        return {
            "method": self.method,
            "latency": {p.value: {"value": b.value, "lower": b.lower, "upper": b.upper}
                        for p, b in self.latency.items()},
            "notes": self.notes,
            "top_nodes": self.top_nodes,
            "top_ops": self.top_ops,
            "details": self.details,
            "measured": self.measured,
        }


def _isa_family(arch: str) -> str:
    return (
        "x86"
        if arch in ("x86_64", "AMD64", "i686")
        else "arm"
        if arch.startswith(("aarch64", "arm"))
        else arch
    )


def _amdahl(times: dict[int, float], threads: int) -> float:
    """Time at ``threads`` from the two largest measured counts: t = s + p / threads."""
    (t1, y1), (t2, y2) = sorted(times.items())[-2:]
    p = (y1 - y2) / (1 / t1 - 1 / t2)
    s = y1 - p / t1
    if p <= 0:  # no speed-up measured: the node does not parallelise
        return min(y1, y2)
    if s < 0:
        s, p = 0.0, y2 * t2
    return s + p / threads


@dataclass(frozen=True)
class _Ratios:
    compute: Band  # host time -> target time multipliers for compute-bound nodes
    conv: Band
    memory: Band
    clock: Band
    ridge: float  # target FLOP per byte where compute and bandwidth limits meet


def _cpu_ratios(
    target: Target, cal: dict[str, Any], host_arch: str, threads: int, notes: list[str]
) -> _Ratios:
    cpu, mem = target.hardware.cpu, target.hardware.memory
    same_isa = _isa_family(host_arch) == _isa_family(cpu.arch.value)
    gemm_1 = float(cal["gemm_flops"]["1"])
    conv_1 = float(cal.get("conv_flops", {}).get("1", gemm_1))
    host_peak = cal.get("peak_fp32_per_core")
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
    bw_counts = {int(k): float(v) for k, v in cal["bandwidth"].items()}
    host_bw = (
        max(v for t, v in bw_counts.items() if t <= max(1, threads))
        if any(t <= max(1, threads) for t in bw_counts)
        else max(bw_counts.values())
    )
    r_m = host_bw / mem.bandwidth
    mhz = cal.get("frequency_mhz") or 0.0
    clock_ratio = (mhz * 1e6 / cpu.frequency) if mhz else compute.value
    # A streaming node is bound by DRAM bandwidth, but never faster than the clock allows.
    memory = Band(max(r_m, clock_ratio), r_m, max(r_m, clock_ratio) * 1.5)
    clock = Band(clock_ratio, clock_ratio * 0.8, max(clock_ratio * 1.5, clock_ratio))
    target_compute = core[0] * max(1, min(threads, cpu.cores))
    return _Ratios(compute, conv, memory, clock, ridge=target_compute / mem.bandwidth)


def _moved_bytes(facts: dict[str, Any], macs: int) -> int:
    """Bytes a node reads and writes. onnxruntime prepacks MatMul/Gemm weights and then no
    longer lists them as inputs: add them back (K x N fp32 from the MACs and the output rows)."""
    moved = int(facts["activation_bytes"]) + int(facts["param_bytes"]) + int(facts["output_bytes"])
    op = facts["op"]
    if ("MatMul" in op or "Gemm" in op) and macs and len(facts["inputs"]) < 2 + ("Gemm" in op):
        out = facts["outputs"][0] if facts["outputs"] else []
        rows = math.prod(out[:-1]) if len(out) >= 2 else 1
        moved += 4 * macs // max(1, rows)
    return moved


# How much of the calibrated GEMM thread speed-up a node gets, by its FLOPs: onnxruntime
# splits work by a cost model, so nodes under ~0.5 MFLOP gain nothing and even lose to the
# thread pool's synchronisation (a negative weight), and nodes over ~8 MFLOP scale like a
# large GEMM. A log-linear ramp between; fitted to per-node 1- and 2-thread timings of the
# zoo models (conv nets, MLP, transformer) on an x86 server (see docs/projection.md).
_PARALLEL_RAMP = (5.7, 1.2, -0.3)  # log10(FLOPs) where the weight crosses 0, decades to reach 1, floor


def parallel_weight(flops: float) -> float:
    start, span, floor = _PARALLEL_RAMP
    if flops <= 0:
        return floor
    return max(floor, min(1.0, (math.log10(flops) - start) / span))


# Which calibrated figure's thread speed-up a node's full (large-node) speed-up follows.
# "gemm" (the default): every node follows the 512x512 MatMul. "per-class" (a candidate,
# evaluated side by side by benchmarks/projection_accuracy.py, no constant fitted): Conv
# nodes follow the calibrated 3x3 convolution, MatMul/Gemm the GEMM, every other node the
# triad bandwidth, since those are the figures the calibration measures for each class.
THREAD_MODELS = ("gemm", "per-class")


def _scaling_figure(cal: dict[str, Any], op: str, model: str) -> dict[str, float]:
    if model == "per-class":
        if "Conv" in op and cal.get("conv_flops"):
            return dict(cal["conv_flops"])
        if not ("MatMul" in op or "Gemm" in op):
            return dict(cal["bandwidth"])
    return dict(cal["gemm_flops"])


def thread_speedup(cal: dict[str, Any], threads: int, flops: float, op: str = "", model: str = "gemm") -> float:
    """Speed-up of a node of ``flops`` (op type ``op``) at ``threads`` over one thread on this host."""
    figure = _scaling_figure(cal, op, model)
    full = min(float(threads), per_thread(figure, threads) / per_thread(figure, 1))
    return max(0.5, 1 + (full - 1) * parallel_weight(flops))


def _node_time_at(
    times: dict[int, float], threads: int, cal: dict[str, Any], flops: float, op: str, model: str
) -> float:
    if threads in times:
        return times[threads]
    if len(times) >= 2:
        return _amdahl(times, threads)
    ((t0, y0),) = times.items()
    return y0 * thread_speedup(cal, t0, flops, op, model) / thread_speedup(cal, threads, flops, op, model)


def _host_total_at(
    node_profile: dict[str, Any], one: dict[str, Any], threads: int, cal: dict[str, Any], thread_model: str
) -> float:
    """The host's uncontended run (µs) at ``threads``: each node's single-thread figure carried by the
    calibrated thread speed-up, the same way the target's sum is built, plus the executor's overhead."""
    total = 0.0
    nodes = node_profile.get("nodes") or {}
    for name, t in one["node_us"].items():
        facts = nodes.get(name)
        if facts is None:
            continue
        flops = op_cost(facts["op"], facts["inputs"], facts["outputs"])[0]
        total += _node_time_at({1: float(t)}, threads, cal, flops, facts["op"], thread_model)
    return total + max(0.0, float(one["overhead_us"]))


def project_cpu(
    target: Target,
    measurement: Measurement,
    node_profile: dict[str, Any] | None,
    static: dict[str, Any] | None,
    cal: dict[str, Any],
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
    if scale is not None:
        cal = scaled_calibration(cal, scale)
        if abs(scale - 1) >= 0.03:
            notes.append(
                f"this host ran at {scale:.0%} of its calibrated speed while the model was measured (the "
                f"calibration's GEMM timed between the model's runs): the host-to-target ratios use that"
            )
    ratios = _cpu_ratios(target, cal, host.arch, threads, notes)
    band_lo, band_hi = 1.0, 1.0
    sources: dict[str, tuple[float, float]] = {}  # each widening, as multipliers on the centre
    top_nodes: list[dict[str, Any]] = []
    top_ops: list[dict[str, Any]] = []
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
    by_threads = (node_profile or {}).get("by_threads") or {}
    uncontended = single_thread_cost(node_profile) is not None
    if uncontended:
        # Contention-proof basis: the single-thread profile's per-node fastest fifth, carried to
        # any thread count by the calibrated thread speed-up (mlfit.analysis.uncontended).
        one = by_threads["1"]
        by_threads = {"1": {**one, "node_us": one["node_us_low"], "overhead_us": one["overhead_us_low"]}}
    if by_threads and (str(measurement.threads) in by_threads or uncontended):
        counts = sorted(int(k) for k in by_threads)
        if uncontended:
            host_total = _host_total_at(node_profile or {}, by_threads["1"], measurement.threads, cal, thread_model)
        else:
            base = by_threads[str(measurement.threads)]
            # Same basis as the projected sum: per-node medians plus the executor's median overhead.
            host_total = float(base["nodes_us"]) + max(0.0, float(base["overhead_us"]))
        lo_sum = mid_sum = hi_sum = 0.0
        kinds: dict[str, list[float]] = {}  # by the ratio that scaled it: [lower, centre, upper] sums
        per_node: list[tuple[float, str, str]] = []
        compute_share = 0.0
        for name, facts in node_profile["nodes"].items():  # type: ignore[index]
            times = {
                t: float(by_threads[str(t)]["node_us"][name])
                for t in counts
                if name in by_threads[str(t)]["node_us"]
            }
            if not times:
                continue
            flops, macs, _ = op_cost(facts["op"], facts["inputs"], facts["outputs"])
            moved = _moved_bytes(facts, macs)
            compute_bound = moved == 0 or flops / moved >= ratios.ridge
            t_host = _node_time_at(times, threads, cal, flops, facts["op"], thread_model)
            if compute_bound:
                r = ratios.conv if "Conv" in facts["op"] else ratios.compute
            else:  # cache-resident small nodes run at the core's vector speed, streaming ones at DRAM's
                r = ratios.compute if moved < _CACHE_RESIDENT_BYTES else ratios.memory
            lo_sum += t_host * r.lower
            mid_sum += t_host * r.value
            hi_sum += t_host * r.upper
            kind = kinds.setdefault("memory bandwidth" if r is ratios.memory else "compute", [0.0, 0.0, 0.0])
            kind[0] += t_host * r.lower
            kind[1] += t_host * r.value
            kind[2] += t_host * r.upper
            if compute_bound:
                compute_share += t_host * r.value
            per_node.append((t_host * r.value, name, facts["op"]))
        overhead = {t: float(by_threads[str(t)]["overhead_us"]) for t in counts}
        o_host = overhead.get(threads, overhead[min(counts, key=lambda t: abs(t - threads))])
        o_host = max(0.0, o_host)
        lo_sum += o_host * ratios.clock.lower
        mid_sum += o_host * ratios.clock.value
        hi_sum += o_host * ratios.clock.upper
        kinds["executor clock"] = [o_host * x for x in (ratios.clock.lower, ratios.clock.value, ratios.clock.upper)]
        # How wide the target's hardware alone makes the band (compute/bandwidth/clock ratios), and
        # each ratio's part: the band if only that ratio's bounds were applied.
        sources["target hardware"] = (lo_sum / mid_sum, hi_sum / mid_sum) if mid_sum else (1.0, 1.0)
        if mid_sum:
            details["target_hardware_parts"] = {
                k: [round(1 + (lo - mid) / mid_sum, 3), round(1 + (hi - mid) / mid_sum, 3)]
                for k, (lo, mid, hi) in kinds.items()
                if mid > 0
            }
        if len(counts) >= 2 and threads > max(counts):
            doublings = math.log2(threads / max(counts))
            band_lo *= 0.92
            band_hi *= 1 + 0.2 * doublings
            notes.append(
                f"{threads} threads extrapolated from {', '.join(map(str, counts))} measured here "
                f"(Amdahl fit per node); band widened"
            )
            sums = {t: float(by_threads[str(t)]["nodes_us"]) for t in counts}
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
        factor = Band(mid_sum / host_total, lo_sum * band_lo / host_total, hi_sum * band_hi / host_total)
        per_node.sort(reverse=True)
        total_mid = mid_sum or 1.0
        top_nodes = [
            {"name": n, "op": op, "seconds": t / 1e6, "share": t / total_mid} for t, n, op in per_node[:TOP_N]
        ]
        agg: dict[str, float] = {}
        for t, _, op in per_node:
            agg[op] = agg.get(op, 0.0) + t
        top_ops = [
            {"op": op, "seconds": t / 1e6, "share": t / total_mid}
            for op, t in sorted(agg.items(), key=lambda kv: kv[1], reverse=True)[:TOP_N]
            if t / total_mid >= 0.005
        ]
        details.update(
            {
                "host_profiled_run_us": host_total,
                "profiled_threads": counts,
                "compute_bound_share": compute_share / total_mid,
            }
        )
        method = (
            "per-node scaling of onnxruntime's single-thread node profile (each node's uncontended "
            "fastest fifth) " if uncontended else
            f"per-node scaling of onnxruntime's node profile at {measurement.threads} thread(s) "
        ) + (
            f"(compute- or memory-bound against the target's ridge "
            f"{ratios.ridge:.1f} FLOP/B) to {hw.name}, {threads} thread(s)"
        )
    else:
        # No node profile (another runtime): the whole model between the memory and compute ratios.
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
        failure = (node_profile or {}).get("error")
        if failure:
            notes.append(f"onnxruntime's node profile failed ({failure}); whole-model projection")
    robust = details.get("host_profiled_run_us")
    robust_p50 = robust / 1e6 + float(cal.get("call_overhead_s") or 0.0) if robust else None
    if uncontended or measurement.contention is not None:  # the host figure the bands below start from
        host_base = robust_p50 if uncontended and robust_p50 else sample_p50(measurement)
    else:
        wall = measurement.latency.p50 or measurement.latency.mean
        host_base = min(wall, robust_p50) if robust_p50 else wall
    fitted = _fitted_cpu_factor(target, measurement, static, threads, details, host_base, host.arch)
    if fitted is not None:  # the model fitted on published device measurements replaces the host ratios
        details["factor_host_ratio"] = factor.__dict__  # kept as a cross-check
        factor, method, notes, sources = fitted
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
    details["factor"] = factor.__dict__
    if uncontended or measurement.contention is not None:
        base = host_base
        load = host_load(measurement, host.cores_usable, base)
        latency = _uncontended_bands(measurement, factor, base, load)
        _load_note(load, base, measurement, sources, notes, details)
        mean_host = base * dispersion(measurement)[Percentile.P50]
        mean = Band(mean_host * factor.value, latency[Percentile.P50].lower, latency[Percentile.P50].upper)
    else:  # a schema-1 measurement: no CPU times, no contention signals
        latency = _latency_bands(measurement, factor, robust_p50)
        shift = (
            min(1.0, robust_p50 / measurement.latency.mean) if robust_p50 and measurement.latency.mean else 1.0
        )
        mean = Band(
            measurement.latency.mean * shift * factor.value,
            measurement.latency.mean * factor.lower,
            measurement.latency.mean * factor.upper,
        )
    _host_sources(measurement, factor, latency, target, sources, notes, details)
    _explain_wide_band(latency, target, sources, notes)
    details["band_sources"] = {k: [round(lo, 3), round(hi, 3)] for k, (lo, hi) in sources.items()}
    throughput, basis = _cpu_throughput(target, measurement, factor, mean)
    return Projection(
        target=target.name,
        method=method,
        latency=latency,
        cold_start=_cpu_cold_start(measurement, ratios, factor),
        memory_peak=_memory(measurement, static, host.arch, hw.cpu.arch.value, extra=None),
        throughput=throughput,
        throughput_basis=basis,
        notes=notes,
        top_nodes=top_nodes,
        top_ops=top_ops,
        details=details,
    )


WIDE_BAND = 3.0  # a projected band wider than this (upper over lower) is explained in the result


def _explain_wide_band(
    latency: dict[Percentile, Band], target: Target, sources: dict[str, tuple[float, float]], notes: list[str]
) -> None:
    """A band wider than 3x says little: name its widest parts, so the reader knows what would
    narrow it (a quiet host, a measured hardware file, a truth-table row for the device)."""
    wanted = [p for p in target.profile.budgets.latency if p in latency] or [
        p for p in (Percentile.P50,) if p in latency
    ]
    for p in wanted:
        band = latency[p]
        if band.lower <= 0 or band.upper / band.lower <= WIDE_BAND:
            continue
        parts = sorted(sources.items(), key=lambda kv: kv[1][1] / max(kv[1][0], 1e-9), reverse=True)
        widest = "; ".join(f"{name} x{hi / max(lo, 1e-9):.2f}" for name, (lo, hi) in parts[:3])
        notes.append(
            f"the {p.value} band is {band.upper / band.lower:.1f}x wide (over {WIDE_BAND:g}x, so it decides "
            f"little); its widest parts: {widest}"
        )


def model_precision(static: dict[str, Any]) -> str:
    """fp32, fp16 or int8: the dtype that holds most of the parameter bytes."""
    by = static.get("parameter_bytes") or {}
    eight = float(by.get("int8", 0)) + float(by.get("uint8", 0))
    half = float(by.get("float16", 0))
    full = float(by.get("float32", 0))
    return "int8" if eight > max(half, full) else ("fp16" if half > full else "fp32")


def _fitted_cpu_factor(
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
    pred = dm.predict(dm.Structure.from_static(static), config, params)
    details["device_model"] = {
        "seconds": pred.value, "lower": pred.lower, "upper": pred.upper, "columns": config.columns(),
        "unfitted": list(pred.unfitted), "precision": precision, "threads": threads,
        "widenings_log": {k: round(v, 4) for k, v in pred.widenings.items()},
    }
    unseen = any(name.startswith("no truth-table row for device") for name in pred.widenings)
    if unseen and hw.cpu.sustained_fp32:
        # A device the fit never saw, whose hardware file carries its own measured sustained fp32
        # (`mlfit calibrate --emit-hardware` on it): that measurement beats a prior. The host ratios
        # project from it; the device model stays in the details as the cross-check.
        details["device_model"]["not_used"] = "no truth-table row for this device; its measured sustained fp32 used"
        return None
    sources = {name: (math.exp(-h), math.exp(h)) for name, h in pred.widenings.items()}
    notes = [
        f"fitted device model: {pred.value * 1e3:.3g} ms per inference on {hw.name} ({m.runtime}, {precision}, "
        f"{threads} thread(s)) from this model's op classes (dense/depthwise FLOPs, streamed bytes, kernels) and "
        f"constants fitted on published measurements of real devices (benchmarks/device_truth.yaml); the "
        f"host's measured percentiles give the tail's shape",
        "band widenings combine in quadrature: "
        + "; ".join(f"{k} x{math.exp(h):.2f}" for k, h in pred.widenings.items()),
    ]
    if _isa_family(host_arch) != _isa_family(hw.cpu.arch.value):
        notes.append(
            f"this host is {host_arch}, the target {hw.cpu.arch.value}: the device model projects from the "
            f"model's structure and the target's fitted constants, not by scaling this host's kernels, so the "
            f"instruction-set difference does not widen the band"
        )
    method = (
        f"device model fitted on published device measurements ({', '.join(config.columns())}), "
        f"{threads} thread(s) on {hw.name}; host percentiles scaled to it"
    )
    return Band(pred.value / host, pred.lower / host, pred.upper / host), method, notes, sources


def _uncontended_bands(
    m: Measurement, factor: Band, base: float, load: HostLoad | None
) -> dict[Percentile, Band]:
    """Each percentile from the model's uncontended cost: ``base`` (the host's uncontended median at
    the measured threads) times the uncontended spread of that percentile (optimistic, centre and
    conservative: ``tail_spread``), carried by the factor. Host load never moves the centre; it
    widens the band by as much as the estimate itself was seen to move between a quiet and a fully
    loaded host (``BUSY_WIDENING``)."""
    spread = tail_spread(m)
    busy = load.busy if load is not None else 0.0
    lo_w, hi_w = BUSY_WIDENING
    out: dict[Percentile, Band] = {}
    for p in Percentile:
        if getattr(m.latency, p.value) is None and m.latency.n < 2:
            continue
        lo_s, mid_s, hi_s = spread[p]
        out[p] = Band(base * mid_s * factor.value, base * lo_s * factor.lower * (1 - lo_w * busy),
                      base * hi_s * factor.upper * (1 + hi_w * busy))
    return out


def _load_note(
    load: HostLoad | None, base: float, m: Measurement, sources: dict[str, tuple[float, float]],
    notes: list[str], details: dict[str, Any],
) -> None:
    """State how busy the host was and what that did to the band."""
    details["uncontended_p50_host_s"] = base
    if load is None:
        return
    details["host_load"] = {"cpu_share": load.cpu_share, "busy": load.busy, "switches_per_s": load.switches_per_s,
                            "runnable": load.runnable, "steal": load.steal, "slowdown": load.slowdown}
    lo_w, hi_w = BUSY_WIDENING
    wall = m.latency.p50 or m.latency.mean
    notes.append(
        f"host load while measuring: {load.describe()}; projections start from the model's uncontended "
        f"cost on this host ({base * 1e3:.3g} ms per call at {m.threads} thread(s); measured (host) wall p50 "
        f"{wall * 1e3:.3g} ms)"
        + (f"; the band is widened x{1 - lo_w * load.busy:.2f}-x{1 + hi_w * load.busy:.2f} for it"
           if load.busy >= 0.05 else "")
    )


def _latency_bands(m: Measurement, factor: Band, robust_p50: float | None = None) -> dict[Percentile, Band]:
    """Each measured percentile carried by the factor; its bounds are the order-statistic
    bounds carried by the factor's bounds.

    ``robust_p50`` is the host's typical call from the node profile's per-node medians. When
    the measured median is above it, other processes on this host inflated the timed loop:
    that contention belongs to this host, not the target, so the centre is shifted down to
    the robust figure while the conservative bound keeps the inflated one.
    """
    samples = [s / 1e9 for s in m.latency.samples_ns]
    p50 = m.latency.p50 or m.latency.mean
    shift = 1.0
    if robust_p50 is not None and p50 > 0:
        shift = min(1.0, robust_p50 / p50)
    out: dict[Percentile, Band] = {}
    for p in Percentile:
        value = getattr(m.latency, p.value)
        if value is None:
            continue
        lower, upper = percentile_bounds(samples, p.quantile) if samples else (value, value)
        # A missing order-statistic bound (too few samples for 95%) falls back to the extreme sample.
        lo = (lower if lower is not None else m.latency.min) * shift * factor.lower
        if m.unstable:
            # A noisy host inflates every percentile: the optimistic bound is the quietest run seen.
            lo = min(lo, m.latency.min * factor.lower)
        hi = (upper if upper is not None else m.latency.max) * factor.upper
        centre = value * shift * factor.value
        out[p] = Band(centre, min(lo, centre), max(hi, centre))
    return out


def _host_sources(
    m: Measurement,
    factor: Band,
    latency: dict[Percentile, Band],
    target: Target,
    sources: dict[str, tuple[float, float]],
    notes: list[str],
    details: dict[str, Any],
) -> None:
    """Record how wide the host's own measurement makes each budgeted percentile's band, and
    state every widening in one note, so that a wide band says where its width comes from."""
    wanted = [p for p in target.profile.budgets.latency if p in latency] or [
        p for p in (Percentile.P50,) if p in latency
    ]
    for p in wanted:
        band = latency[p]
        if band.value <= 0 or factor.value <= 0:
            continue
        # The percentile's band over the factor's band: what the host's samples add.
        lo = (band.lower / band.value) / (factor.lower / factor.value)
        hi = (band.upper / band.value) / (factor.upper / factor.value)
        sources[f"host measurement, {p.value}"] = (lo, hi)
    split = details.get("target_hardware_parts") or {}
    inner = "; ".join(f"{k} x{lo:.2f}-x{hi:.2f}" for k, (lo, hi) in split.items())
    parts = [
        f"{name} x{lo:.2f}-x{hi:.2f}" + (f" ({inner})" if name == "target hardware" and inner else "")
        for name, (lo, hi) in sources.items()
    ]
    if parts:
        notes.append("band, as multipliers on the centre: " + "; ".join(parts))
    if m.unstable and m.contention is None:
        seen = [f"{p.value} {v * 1e3:.3g} ms" for p in (Percentile.P95, Percentile.P50)
                if (v := getattr(m.latency, p.value)) is not None]
        notes.append(
            f"the host measurement was noisy ({', '.join([*seen, ''])}fastest run "
            f"{m.latency.min * 1e3:.3g} ms): the optimistic bounds start from the fastest run and the "
            f"conservative ones keep this host's contention; measure on a quiet host for a narrower band"
        )


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


def _cpu_cold_start(m: Measurement, ratios: _Ratios, factor: Band) -> Band:
    load = m.cold_start.load_s
    first = m.cold_start.first_inference_s
    # Session creation is single-threaded graph work: the clock/compute ratio; first run: the factor.
    return Band(
        load * ratios.clock.value + first * factor.value,
        load * ratios.clock.lower + first * factor.lower,
        load * ratios.clock.upper + first * factor.upper,
    )


def _memory(
    m: Measurement, static: dict[str, Any] | None, host_arch: str, target_arch: str, extra: Band | None
) -> Band:
    """Process peak on the target: the host's measured peak, widened for another architecture;
    never below runtime baseline + parameters + peak activations."""
    centre = float(m.memory.peak_bytes)
    same = _isa_family(host_arch) == _isa_family(target_arch)
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


def gpu_path_peak(acc: Any, precision: str) -> tuple[float, str]:
    """The peak a model's dense ops run at: the tensor-core int8 or fp16 peak for an int8 or fp16
    model (when the accelerator's file gives it), else the fp32 one; and the path's name."""
    if precision == "int8" and acc.peak_int8:
        return float(acc.peak_int8), "int8 tensor-core"
    if precision in ("fp16", "int8") and acc.peak_fp16:
        return float(acc.peak_fp16), "fp16 tensor-core"
    return float(acc.peak_fp32), "fp32"


def _gpu_time(nodes: list[dict[str, Any]], batch: int, acc: Any, idx: int, precision: str) -> tuple[float, list]:
    peak = gpu_path_peak(acc, precision)[0] * _GPU["compute_eff"][idx]
    bw = acc.bandwidth * _GPU["bandwidth_eff"][idx]
    launch = _GPU["launch_s"][idx]
    total = 0.0
    per_node = []
    for n in nodes:
        op = n["op"].split("::")[-1]
        if op in VIEW_OPS:
            continue
        flops = n["flops"] * batch
        moved = (n["bytes_read"] + n["bytes_written"] - n["param_bytes"]) * batch + n["param_bytes"]
        t = max(flops / peak, moved / bw) + launch
        total += t
        per_node.append((t, n["name"], n["op"]))
    return total, per_node


def gpu_roofline(static: dict[str, Any], acc: Any, batch: int) -> tuple[Band, list[tuple[float, str, str]]]:
    """Time of one run at ``batch`` on accelerator ``acc``: per-node roofline + launches + copies.
    Returns the band and the centre's per-node times (seconds, name, op), costliest first."""
    nodes = static["nodes"]
    precision = model_precision(static)
    io_bytes = sum(_io_bytes(t) for t in [*static.get("inputs", []), *static.get("outputs", [])])
    times = []
    per_node_mid: list[tuple[float, str, str]] = []
    for idx in range(3):
        compute, per_node = _gpu_time(nodes, batch, acc, idx, precision)
        copy = io_bytes * batch / (acc.host_link_bandwidth * _GPU["bandwidth_eff"][idx])
        times.append(compute + copy + _GPU["run_overhead_s"][idx])
        if idx == 1:
            per_node_mid = sorted(per_node, reverse=True)
    return Band(times[1], times[0], times[2]), per_node_mid


def project_gpu(
    target: Target, measurement: Measurement, static: dict[str, Any] | None, host: HostInfo
) -> Projection | None:
    """Roofline projection onto the target's first GPU from the static node list."""
    acc = next((a for a in target.hardware.accelerators if a.kind == "gpu"), None)
    if acc is None or not static or not static.get("nodes"):
        return None
    nodes = static["nodes"]
    latency_mid, per_node_mid = gpu_roofline(static, acc, 1)
    latency = {
        p: Band(
            latency_mid.value,
            latency_mid.lower,
            latency_mid.upper * (1.1 if p in (Percentile.P99, Percentile.P95) else 1.0),
        )
        for p in Percentile
    }
    batch = target.profile.batch_size
    batch_free = bool(static.get("dynamic_dims")) or batch == 1
    basis = f"batch {batch}" if batch_free and batch > 1 else "single stream"
    b = batch if batch_free else 1
    per_batch, _ = gpu_roofline(static, acc, b)
    path = gpu_path_peak(acc, model_precision(static))[1]
    throughput = Band(b / per_batch.value, b / per_batch.upper, b / per_batch.lower)
    init = _GPU["cuda_init_s"]
    load = measurement.cold_start.load_s
    cold = Band(
        load + init[1] + latency_mid.value * 20,
        load * 0.5 + init[0] + latency_mid.lower,
        load * 1.5 + init[2] + latency_mid.upper * 100,
    )
    ctx = _GPU["cuda_context_bytes"]
    memory = _memory(
        measurement,
        static,
        host.arch,
        target.hardware.cpu.arch.value,
        extra=Band(float(ctx[1]), float(ctx[0]), float(ctx[2])),
    )
    per_node_mid.sort(reverse=True)
    total = sum(t for t, _, _ in per_node_mid) or 1.0
    agg: dict[str, float] = {}
    for t, _, op in per_node_mid:
        agg[op] = agg.get(op, 0.0) + t
    notes = [
        f"no GPU measurement here: a roofline over {len(nodes)} graph nodes at {acc.name}'s "
        f"{path} peak and bandwidth with a per-kernel launch cost and the input/output "
        f"copies over the host link; the band spans the efficiencies cuDNN/cuBLAS reach"
    ]
    return Projection(
        target=target.name,
        method=f"roofline on {acc.name} ({acc.execution_provider}); no GPU on this host",
        latency=latency,
        cold_start=cold,
        memory_peak=memory,
        throughput=throughput,
        throughput_basis=basis,
        notes=notes,
        top_nodes=[
            {"name": n, "op": op, "seconds": t, "share": t / total} for t, n, op in per_node_mid[:TOP_N]
        ],
        top_ops=[
            {"op": op, "seconds": t, "share": t / total}
            for op, t in sorted(agg.items(), key=lambda kv: kv[1], reverse=True)[:TOP_N]
        ],
        details={"parameters": _GPU, "accelerator": acc.name, "batch_for_throughput": b},
        from_host_timings=False,
    )


def _io_bytes(tensor: dict[str, Any]) -> int:
    size = {
        "float32": 4,
        "float16": 2,
        "int64": 8,
        "int32": 4,
        "float64": 8,
        "bool": 1,
        "int8": 1,
        "uint8": 1,
    }.get(tensor.get("dtype", "float32"), 4)
    count = 1
    for d in tensor.get("shape", []):
        count *= d if isinstance(d, int) else 1
    return count * size


def is_gpu_target(target: Target) -> bool:
    return target.profile.execution_provider != "CPUExecutionProvider" and any(
        a.kind == "gpu" for a in target.hardware.accelerators
    )


def project(
    target: Target,
    measurement: Measurement,
    node_profile: dict[str, Any] | None,
    static: dict[str, Any] | None,
    calibration: dict[str, Any] | None,
    host: HostInfo,
) -> Projection | None:
    """The projection for one target, or None when it cannot be made (then host figures stay labelled)."""
    if is_gpu_target(target):
        return project_gpu(target, measurement, static, host)
    if calibration is None:
        return None
    return project_cpu(target, measurement, node_profile, static, calibration, host)
