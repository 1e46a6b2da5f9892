"""A per-device time model fitted on published measurements from real devices.

The model's structure comes from this host's static analysis of the model (which ops, their
shapes): dense FLOPs (Conv with group 1, ConvTranspose, MatMul, Gemm), depthwise/grouped Conv
FLOPs, bytes moved by every other op (elementwise, pooling, softmax, ...) and the number of
kernels. The device side comes from its hardware file (peak per core, bandwidth, ISA) and a few
fitted constants:

    CPU:  t = e^b * [ (F_dense + k_dw * F_dw) / (P_core * S(threads)) + B_other / BW ] + K * d
    GPU:  t = e^b * [ (F_dense + k_dw * F_dw) / P_path + B_other / BW ] + K * launch / batch

* ``k_dw``: how many dense FLOPs one depthwise FLOP costs (depthwise convolutions reach a small
  fraction of the peak: few FLOPs per byte, no register blocking over input channels);
* ``S(t) = t / (1 + sigma_d * (t - 1))``: thread scaling; the device's contention ``sigma_d`` is the
  reference Pi 4's ``sigma`` times (its per-core FLOP/byte balance over the Pi 4's) ** ``sigma_exp``
  (cores that each want a larger share of a thinner memory system scale worse);
* ``b``: the sum of log-offsets of the columns the configuration has: the runtime's kernels
  (``xnnpack-fp32`` for TFLite/XNNPACK, ``ncnn-fp32``, ...), the core against the reference
  Cortex-A72 at equal peak (``core:Cortex-A76``, ``core:x86-avx512``, ...), int8 with or without
  dot-product instructions per runtime (``xnnpack-int8-no-dotprod``: the Pi 4's A72 has no SDOT;
  Cortex-A76/A78 and AVX-512 VNNI do), a runtime that computes an fp32 model in fp16 on a core with
  fp16 arithmetic (``ncnn-fp16-arith``: ncnn on ARMv8.2 cores such as the Pi 5's A76 and the Orin's
  A78AE, by default), the 32-bit OS mode, the GPU path (``gpu-int8``: tensor cores at the int8 peak);
* ``d``, ``launch``: per-op dispatch on a CPU (scaled by clock) and kernel launch on a GPU (only
  the dense kernels for a runtime that fuses pointwise ops, TensorRT).

A band: the validation residuals' quantile, widened in quadrature for every column without a row
(its prior is used), for a device without a row of its own (a widening set from
leave-one-device-out residuals), for a MatMul-dominated model (the table holds conv nets), and for a
source the fit never saw, by how many independent sources back the configuration's least-backed
column (none, one, two or more: ``source_widenings``) and how far those sources disagree.

Fitted by ``fit`` (numpy least squares in log space over a grid of ``k_dw``, ``sigma`` and
``sigma_exp``, each weakly pulled towards its stated prior) on the rows of
``benchmarks/device_truth.yaml``; the constants live in ``_devicefit.py``, written by
``benchmarks/bench_devices.py --write-params`` (the widenings from ``devicevalidate``'s
leave-one-source-out). A column no row of the table exercises keeps its stated prior (or the mean of
the measured runtimes' or cores'), and the band says so. Pure: no I/O.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from mlfit.analysis.costs import VIEW_OPS

# Priors for what no row of the truth table isolates (stated, not fitted). Column names:
#   "<runtime>-fp32"          the runtime's kernels on the reference core (Cortex-A72), over its peak
#   "<runtime>-int8-dotprod"  int8 against fp32 on a core with int8 dot products (SDOT / VNNI)
#   "<runtime>-int8-no-dotprod"  ... on a core without them (Pi 4's Cortex-A72)
#   "<runtime>-fp16-arith"    a runtime that runs an fp32 model in fp16 on a core with fp16 arithmetic
#                             (ncnn on ARMv8.2): against its own fp32 kernels, so the core column
#                             keeps teaching fp32 (what ONNX Runtime and XNNPACK compute)
#   "core:<name>"             a core's speed against the reference core at equal peak per core
#   "armv7-mode", "gpu-<precision>", "source:<group>"
PRIORS: dict[str, float] = {
    # XNNPACK-class NEON fp32 kernels sustain ~60% of a Cortex-A7x's peak on large 1x1 convolutions
    "fp32": math.log(1 / 0.6),
    # int8 without SDOT: widening multiplies (SMULL/SMLAL): ~1.7x over fp32 at best
    "int8-no-dotprod": math.log(0.6),
    # int8 with SDOT: 16 int8 MACs per 128-bit instruction against 4 fp32 FMAs; depthwise and
    # elementwise layers do not use it, so ~2x end to end rather than 4x
    "int8-dotprod": math.log(0.5),
    # fp16 arithmetic (FMLA .8H): twice the fp32 lanes per instruction and half the bytes moved;
    # depthwise layers, pooling and dispatch gain less, so ~0.6x the time end to end (a stated prior)
    "fp16-arith": math.log(0.6),
    "armv7-mode": 0.0,
    # GPU efficiencies as the roofline's centre: 50% of the path's peak
    "gpu-fp32": math.log(1 / 0.5),
    "gpu-fp16": math.log(1 / 0.5),
    "gpu-int8": math.log(1 / 0.5),
}
REFERENCE_CORE = "Cortex-A72"
# Runtimes that compute an fp32 model in fp16 by default where the core has fp16 arithmetic
# (ncnn: opt.use_fp16_arithmetic / use_fp16_storage default on for ARMv8.2 cores with asimdhp).
FP16_BY_DEFAULT = frozenset({"ncnn"})
FP16_ISA = frozenset({"fp16", "fphp", "asimdhp"})
RUNTIME_FAMILY = {"tflite": "xnnpack", "xnnpack": "xnnpack", "onnxruntime": "onnxruntime", "ncnn": "ncnn",
                  "tensorrt": "tensorrt", "tensorflow": "tensorflow"}


def prior(column: str) -> float:
    if column.startswith(("core:", "source:", "device:")):
        return 0.0
    for suffix in ("int8-no-dotprod", "int8-dotprod", "fp16-arith", "fp32"):
        if column.endswith(suffix):
            return PRIORS[suffix]
    return PRIORS.get(column, 0.0)


DEFAULTS: dict[str, float] = {
    "k_dw": 8.0,
    "sigma": 0.25,
    # how a device's thread contention grows with its per-core machine balance (stated prior: the
    # square root; the fit moves it where rows at several thread counts on several devices say)
    "sigma_exp": 0.5,
    "dispatch_s_at_1ghz": 4e-6,  # XNNPACK/TFLite per-operator cost at 1 GHz (prior)
    "launch_s": 10e-6,  # CUDA kernel launch + executor per kernel (the roofline's centre)
}
# Widening, as a log half-width, for a column the table has no row for, and for a device that
# has no row of its own (the table's devices say nothing about its memory system or thermals).
UNFITTED_COLUMN = math.log(1.5)
UNSEEN_DEVICE = math.log(1.3)
# The least a calibrated widening for a column or a device without a row may be: never as well
# known as one with rows, whatever the leave-one-out residuals say.
WIDENING_FLOOR = math.log(1.2)
# The per-core machine balance (peak FLOP/s of one core over the memory bandwidth) of the reference
# board, the Raspberry Pi 4 at 1.5 GHz (12 GFLOP/s, 4.5 GB/s): ``sigma`` is its thread contention.
REFERENCE_BALANCE = 12e9 / 4.5e9
UNSEEN_SOURCE_KEY = "a source the fit never saw (another build, version and board)"
# The same, where at least two independent sources back every column of the configuration (their
# agreement is evidence the column holds beyond one build): its own, calibrated, narrower widening,
# and beside it the spread between those sources where they disagree.
MULTI_SOURCE_KEY = "a source the fit never saw; sources behind every column:"
SPREAD_KEY = "the sources behind a column disagree:"
UNFITTED_KEY = "no truth-table row for"

_DENSE = ("Conv", "ConvTranspose", "MatMul", "Gemm", "FusedConv", "FusedGemm", "FusedMatMul", "QLinearConv",
          "QLinearMatMul", "ConvInteger", "MatMulInteger")


@dataclass(frozen=True)
class Structure:
    """What of a model decides its time on a device, from the static node list (batch 1)."""

    dense_flops: float
    depthwise_flops: float
    other_bytes: float
    kernels: int
    dense_kernels: int = 0  # convolutions and matrix products: the kernels left once pointwise ops are fused
    matmul_flops: float = 0.0  # the part of dense_flops in MatMul/Gemm (transformers, MLPs)
    # bytes the dense ops read and write (weights included): a batch-1 Gemm or a small convolution is
    # bound by them. Not a term of the published-table fit (its rows are large convolutional nets);
    # a device adapted from its own rows learns its weight (mlfit.analysis.deviceadapt)
    dense_bytes: float = 0.0
    # the part of other_bytes and kernels in clamp-like activations fused into the product before them
    # (``fused`` nodes; hard-swish and SE gates run unfused in ONNX Runtime). The published fit keeps them
    # inside (dropping them: 29% -> 36% held-out error, RESULTS item 9); a device's own rows fit them apart
    fused_bytes: float = 0.0
    fused_kernels: int = 0

    @classmethod
    def from_static(cls, static: dict[str, Any]) -> Structure:
        dense = dw = other = matmul = dense_bytes = fused = 0.0
        kernels = dense_kernels = fused_kernels = 0
        for n in static.get("nodes") or []:
            op = str(n["op"]).split("::")[-1]
            if op in VIEW_OPS:
                continue
            if n.get("fused"):
                fused += float(n["bytes_read"]) + float(n["bytes_written"])
                fused_kernels += 1
            # recurrent time steps and loop bodies run their kernels one after another
            kernels += int(n.get("steps", 1) or 1)
            if op in _DENSE:
                dense_kernels += 1
                dense_bytes += float(n.get("bytes_read", 0)) + float(n.get("bytes_written", 0))
                if int(n.get("group", 1) or 1) > 1:
                    dw += float(n["flops"])
                else:
                    dense += float(n["flops"])
                    if "MatMul" in op or "Gemm" in op:
                        matmul += float(n["flops"])
            else:
                # matrix products under another name (LSTM, Attention, Einsum, linear models, loop bodies)
                # are dense work; whatever else the node does streams its bytes
                matrix = float(n.get("matrix_flops", 0) or 0)
                if matrix:
                    dense_kernels += 1
                    dense += matrix
                    matmul += matrix
                other += float(n["bytes_read"]) + float(n["bytes_written"])
        return cls(dense, dw, other, kernels, dense_kernels, matmul, dense_bytes, fused, fused_kernels)


def core_of(model: str, arch: str, isa: Sequence[str]) -> str:
    """The core a hardware file's CPU is built from: its Arm core name, or the x86 vector width."""
    import re

    found = re.search(r"Cortex-A\d+[A-Z]*", model)
    if found:
        return found.group(0)
    if arch == "x86":
        return "x86-avx512" if "avx512f" in {s.lower() for s in isa} else "x86-avx2"
    return model


@dataclass(frozen=True)
class Device:
    """The figures of a hardware file the model uses."""

    id: str
    kind: str  # "cpu" or "gpu"
    arch: str  # "arm" or "x86"
    peak_core: float  # FLOP/s of one core (CPU) or of the whole GPU path (fp32)
    cores: int
    frequency: float
    bandwidth: float
    dotprod: bool
    peak_fp16: float | None = None
    peak_int8: float | None = None
    core: str = ""
    fp16: bool = False  # the CPU has fp16 arithmetic (ARMv8.2 FP16: asimdhp)

    @classmethod
    def from_hardware(cls, hw: Any, gpu: bool = False) -> Device:
        """Per-core figures are per logical CPU (``cores`` in the file), as the peak is divided."""
        cpu = hw.cpu
        arch = "arm" if cpu.arch.value.startswith(("aarch64", "arm")) else "x86"
        isa = {s.lower() for s in cpu.isa}
        dot = bool(isa & {"dotprod", "asimddp", "avx512_vnni", "avx_vnni"})
        core = core_of(cpu.model, arch, cpu.isa)
        fp16 = arch == "arm" and bool(isa & FP16_ISA)
        if gpu:
            acc = next(a for a in hw.accelerators if a.kind == "gpu")
            return cls(hw.id, "gpu", arch, float(acc.peak_fp32), 1, float(cpu.frequency), float(acc.bandwidth),
                       dot, acc.peak_fp16, acc.peak_int8, acc.name)
        return cls(hw.id, "cpu", arch, float(cpu.peak_fp32) / cpu.cores, cpu.cores, float(cpu.frequency),
                   float(hw.memory.bandwidth), dot, core=core, fp16=fp16)


@dataclass(frozen=True)
class Config:
    """One deployment configuration: where, how many threads, which precision, which kernels."""

    device: Device
    runtime: str = "xnnpack"  # a key of RUNTIME_FAMILY, or any other name (its own family)
    precision: str = "fp32"  # fp32, fp16, int8
    threads: int = 1
    batch: int = 1
    mode: str = ""  # "armv7": a 32-bit OS on a 64-bit core
    source: str = ""  # a nuisance offset for a source whose builds are known to differ
    # The runtime fuses elementwise ops into the convolutions' epilogues (TensorRT): their bytes
    # never reach memory, so only the compute term remains.
    fused_elementwise: bool = False
    # Columns of one device's own, learnt from rows measured on it (mlfit.analysis.deviceadapt):
    # ``device:<hardware id>``; empty for the published table and unadapted projections.
    extra: tuple[str, ...] = ()

    def columns(self) -> list[str]:
        if self.device.kind == "gpu":
            return [f"gpu-{self.precision}"]
        family = RUNTIME_FAMILY.get(self.runtime, self.runtime)
        cols = [f"{family}-fp32"]
        if self.device.core != REFERENCE_CORE:
            cols.append(f"core:{self.device.core}")
        if self.precision == "int8":
            cols.append(f"{family}-int8-dotprod" if self.device.dotprod else f"{family}-int8-no-dotprod")
        elif self.precision == "fp32" and self.device.fp16 and family in FP16_BY_DEFAULT:
            cols.append(f"{family}-fp16-arith")
        if self.mode == "armv7":
            cols.append("armv7-mode")
        if self.source:
            cols.append(f"source:{self.source}")
        return cols + list(self.extra)


@dataclass(frozen=True)
class Params:
    k_dw: float
    sigma: float
    offsets: dict[str, float]
    dispatch_s_at_1ghz: float = DEFAULTS["dispatch_s_at_1ghz"]
    launch_s: float = DEFAULTS["launch_s"]
    band_log: float = math.log(1.5)  # half-width of the band from validation residuals
    fitted_devices: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()
    # widening for a device with no row of its own, set from leave-one-device-out residuals
    unseen_device_log: float = UNSEEN_DEVICE
    # widening for every projection: the user's build, runtime version and board are a source the
    # fit never saw; set from leave-one-source-out residuals (0: not calibrated)
    unseen_source_log: float = 0.0
    # widening for each column without a row (its prior is used); set with the unseen-source widening
    unfitted_column_log: float = UNFITTED_COLUMN
    # device kinds ("cpu", "gpu") with MatMul-dominated rows in the table (transformers)
    matmul_kinds: tuple[str, ...] = ()
    # a device's contention is sigma * (its per-core balance / the reference's) ** sigma_exp: cores sharing
    # a thinner memory system (Pi 5) scale worse than those with bandwidth to spare (Orin Nano)
    sigma_exp: float = 0.0
    # independent sources with rows in each column (``source:`` columns aside) and, with two or more,
    # how far (log) the farthest sits from the fit's level; empty: unknown (unseen_source_log applies)
    column_sources: dict[str, int] = field(default_factory=dict)
    column_spread: dict[str, float] = field(default_factory=dict)
    # the unseen-source widening where one source backs the least-backed column (0: unseen_source_log,
    # which covers a column no source backs), and where two or more back every column; each set from the
    # leave-one-source-out rows with that backing
    one_source_log: float = 0.0
    multi_source_log: float = 0.0

    def sigma_for(self, device: Device) -> float:
        """The thread contention of ``device`` (the reference board's ``sigma`` scaled by balance)."""
        return device_sigma(device, self.sigma, self.sigma_exp)

    def offset(self, column: str) -> tuple[float, bool]:
        """A column's log-offset and whether the table fitted it."""
        if column in self.offsets:
            return self.offsets[column], True
        for kind in ("-fp32", "-int8-no-dotprod", "-int8-dotprod", "core:"):
            # another runtime's kernels (its fp32, or its int8 gain with or without dot products: the
            # core's instructions set most of that gain), or a core with no row: the mean of those the
            # table measured (the reference Cortex-A72 is the least efficient core measured; newer ones
            # sit closer to their peak, so 1.0 would be a biased guess for an unmeasured core)
            def match(k: str, kind: str = kind) -> bool:
                return k.startswith(kind) if kind == "core:" else k.endswith(kind)

            seen = [v for k, v in self.offsets.items() if match(k)]
            if seen and match(column):
                return sum(seen) / len(seen), False
        return prior(column), False


def matmul_dominated(s: Structure) -> bool:
    return s.matmul_flops > 0.5 * (s.dense_flops + s.depthwise_flops)


def balance_ratio(device: Device) -> float:
    """The device's per-core FLOP/byte balance over the reference board's (1 for a GPU)."""
    if device.kind != "cpu" or device.bandwidth <= 0:
        return 1.0
    return (device.peak_core / device.bandwidth) / REFERENCE_BALANCE


def device_sigma(device: Device, sigma: float, sigma_exp: float) -> float:
    return sigma * balance_ratio(device) ** sigma_exp


def thread_speedup(threads: int, sigma: float) -> float:
    t = max(1, threads)
    return t / (1 + sigma * (t - 1))


def base_seconds(s: Structure, c: Config, k_dw: float, sigma: float, sigma_exp: float = 0.0) -> float:
    """The part of the time the offsets multiply: compute at the path's peak plus streamed bytes.
    ``sigma`` is the reference board's contention, scaled to the device by ``sigma_exp``."""
    d = c.device
    work = s.dense_flops + k_dw * s.depthwise_flops
    elem = 1 if c.precision == "int8" else (2 if c.precision == "fp16" else 4)
    moved = s.other_bytes * elem / 4
    if c.fused_elementwise:
        moved = 0.0
    if d.kind == "gpu":
        peak = {"int8": d.peak_int8, "fp16": d.peak_fp16}.get(c.precision) or d.peak_core
        return work / float(peak) + moved / d.bandwidth
    threads = max(1, min(c.threads, d.cores))
    return work / (d.peak_core * thread_speedup(threads, device_sigma(d, sigma, sigma_exp))) + moved / d.bandwidth


def fixed_seconds(s: Structure, c: Config, p: Params) -> float:
    """Per-op dispatch (CPU, by clock) or kernel launches spread over the batch (GPU)."""
    kernels = s.dense_kernels if c.fused_elementwise and s.dense_kernels else s.kernels
    if c.device.kind == "gpu":
        return kernels * p.launch_s / max(1, c.batch)
    return kernels * p.dispatch_s_at_1ghz * (1e9 / c.device.frequency)


@dataclass(frozen=True)
class Prediction:
    """Seconds per inference (per sample for a batch): centre and band, with each widening named."""

    value: float
    lower: float
    upper: float
    widenings: dict[str, float] = field(default_factory=dict)  # name -> log half-width
    unfitted: tuple[str, ...] = ()
    sources_behind: int = 0  # the fewest independent sources behind any column (0: not known, or a prior)


def predict(s: Structure, c: Config, p: Params) -> Prediction:
    offset = 0.0
    unfitted: list[str] = []
    for col in c.columns():
        value, fitted = p.offset(col)
        offset += value
        if not fitted and not col.startswith("source:"):
            unfitted.append(col)
    centre = math.exp(offset) * base_seconds(s, c, p.k_dw, p.sigma, p.sigma_exp) + fixed_seconds(s, c, p)
    widen = {"validation residuals": p.band_log}
    for col in unfitted:
        widen[f"{UNFITTED_KEY} '{col}' (prior)"] = p.unfitted_column_log
    if p.fitted_devices and c.device.id not in p.fitted_devices:
        widen[f"no truth-table row for device {c.device.id}"] = p.unseen_device_log
    if p.unseen_source_log > 0:
        widen.update(source_widenings(c, p))
    if matmul_dominated(s) and c.device.kind not in p.matmul_kinds:
        # the table's rows for this kind of device are convolutional networks: a MatMul-bound model is outside them
        widen["no truth-table row for a MatMul-dominated model (transformer, MLP)"] = UNFITTED_COLUMN
    half = math.sqrt(sum(h * h for h in widen.values()))  # independent sources add in quadrature
    return Prediction(centre, centre * math.exp(-half), centre * math.exp(half), widen, tuple(unfitted),
                      backing(c, p) if p.column_sources else 0)


def backing(c: Config, p: Params) -> int:
    """The fewest independent sources behind any fitted column of ``c`` (0: a column keeps its prior)."""
    cols = [col for col in c.columns() if not col.startswith(("source:", "device:"))]
    return min((p.column_sources.get(col, 0) for col in cols), default=0)


def source_widenings(c: Config, p: Params) -> dict[str, float]:
    """The widening for a source the fit never saw: the calibrated one for a configuration some column
    of which only one source backs (or none: its prior), the narrower multi-source one where two or
    more back every column, plus the disagreement of those sources (how far the farthest of them sits
    from the centre: a new build is taken to be no farther off than the farthest known one)."""
    n = backing(c, p) if p.column_sources else 0
    if n == 1 and p.one_source_log > 0:
        return {UNSEEN_SOURCE_KEY: p.one_source_log}
    if n < 2:
        return {UNSEEN_SOURCE_KEY: p.unseen_source_log}
    # not calibrated yet (while it is being calibrated): as wide as the single-source one
    multi = p.multi_source_log if p.multi_source_log > 0 else p.unseen_source_log
    out = {f"{MULTI_SOURCE_KEY} {n} or more": min(multi, p.one_source_log or p.unseen_source_log)}
    spreads = {col: p.column_spread.get(col, 0.0) for col in c.columns()}
    col, spread = max(spreads.items(), key=lambda kv: kv[1])
    if spread > 0:
        out[f"{SPREAD_KEY} {col}, one x{math.exp(spread):.2f} off the centre"] = spread
    return out


def node_seconds(static: dict[str, Any], c: Config, p: Params) -> list[tuple[str, str, float]]:
    """Each static node's part of :func:`predict`'s centre (name, op, seconds): the same formula on a
    one-node structure (the model is linear in its counts, so the parts add up to the centre)."""
    offset = sum(p.offset(col)[0] for col in c.columns())
    out = []
    for n in static.get("nodes") or []:
        s = Structure.from_static({"nodes": [n]})
        seconds = math.exp(offset) * base_seconds(s, c, p.k_dw, p.sigma, p.sigma_exp) + fixed_seconds(s, c, p)
        out.append((str(n.get("name", "")), str(n["op"]), seconds))
    return out


# ---- fitting -------------------------------------------------------------------------------

K_DW_GRID = tuple(round(2 ** (i / 4), 4) for i in range(0, 29))  # 1 .. 128
SIGMA_GRID = tuple(round(0.02 * i, 2) for i in range(0, 31))  # 0 .. 0.6


SIGMA_EXP_GRID = tuple(0.125 * i for i in range(0, 7))  # 0 .. 0.75
# A weak pull of the three grid constants towards their stated priors (DEFAULTS), in units of the
# sum of squared log residuals: 0.001 per doubling of k_dw, per 0.1 of sigma, per 0.25 of sigma_exp.
# Where rows decide a constant it changes nothing; where they cannot (the rows of one model cannot
# tell a depthwise FLOP's cost from the runtime's offset; rows at several thread counts on one
# device cannot place sigma_exp) it keeps the physical prior instead of an arbitrary grid edge.
GRID_PULL = 0.001


def fit(rows: Sequence[tuple[Structure, Config, float]], base: Params | None = None,
        sources: Sequence[str] | None = None) -> Params:
    """Least squares in log space: the offsets solved linearly for every point of a grid over
    ``k_dw``, ``sigma`` and ``sigma_exp`` (vectorised: the design matrix does not depend on the
    grid), the point with the smallest sum of squared log residuals kept. A small ridge pull towards
    each column's prior keeps the solve determined when two columns always appear together.
    ``sources``: each row's source, to count the sources behind each column (else ``base``'s kept)."""
    import numpy as np

    base = base or Params(DEFAULTS["k_dw"], DEFAULTS["sigma"], {})
    has_cpu = any(c.device.kind == "cpu" for _, c, _ in rows)
    has_threads = len({c.threads for _, c, _ in rows if c.device.kind == "cpu"}) > 1
    sigmas = np.array(SIGMA_GRID if has_threads else (base.sigma,))
    exps = np.array(SIGMA_EXP_GRID if has_threads else (base.sigma_exp,))
    kdws = np.array(K_DW_GRID if has_cpu else (base.k_dw,))
    # a column only rows of a source with its own level (``source:``, a build known to differ) measured
    # is not identified by them (their level is that source's): it stays unfitted, like one with no row
    free = {col for _, c, _ in rows if not c.source for col in c.columns()}
    cols = sorted({col for _, c, _ in rows for col in c.columns() if col in free or col.startswith("source:")})
    n, m = len(rows), len(cols)
    a = np.zeros((n, m))
    dense, dw, threads, moved, target, balance = (np.zeros(n) for _ in range(6))
    gpu = np.zeros(n, dtype=bool)
    for i, (s, c, t) in enumerate(rows):
        for col in c.columns():
            if col in cols:
                a[i, cols.index(col)] = 1.0
        # the compute and memory parts at k_dw = 0 and 1 and sigma = 0 give every grid point linearly
        zero = base_seconds(s, c, 0.0, 0.0)
        moved[i] = base_seconds(Structure(0.0, 0.0, s.other_bytes, s.kernels, s.dense_kernels), c, 0.0, 0.0)
        dense[i] = zero - moved[i]
        dw[i] = base_seconds(s, c, 1.0, 0.0) - zero
        gpu[i] = c.device.kind == "gpu"
        threads[i] = 1 if gpu[i] else max(1, min(c.threads, c.device.cores))
        balance[i] = balance_ratio(c.device)
        target[i] = max(t - fixed_seconds(s, c, base), t * 0.05)
    ridge = 0.05
    a2 = np.vstack([a, ridge * np.eye(m)])
    pinv = np.linalg.pinv(a2)
    pulls = ridge * np.array([prior(col) for col in cols])

    def solve(grid: list[tuple[float, float, float]]) -> tuple[tuple[float, float, float], Any]:
        """The grid point with the least loss, and its offsets."""
        ks, sgs, es = (np.array([g[j] for g in grid]) for j in range(3))
        # S(t) = t / (1 + sigma_d (t - 1)); at sigma = 0 the base used t threads: rescale by
        # (1 + sigma_d (t - 1)), sigma_d = sigma * balance ** sigma_exp
        slow = 1 + (threads - 1)[:, None] * sgs[None, :] * balance[:, None] ** es[None, :]
        slow[gpu, :] = 1.0
        compute = (dense[:, None] + dw[:, None] * ks[None, :]) * slow
        y = np.log(target)[:, None] - np.log(compute + moved[:, None])
        sol = pinv @ np.vstack([y, np.repeat(pulls[:, None], len(grid), axis=1)])
        resid = y - a @ sol
        pull = ((np.log2(ks / DEFAULTS["k_dw"])) ** 2 + ((sgs - DEFAULTS["sigma"]) / 0.1) ** 2
                + ((es - DEFAULTS["sigma_exp"]) / 0.25) ** 2)
        loss = (resid * resid).sum(axis=0) + GRID_PULL * pull
        best = int(np.argmin(loss))
        return grid[best], sol[:, best]

    # coarse to fine (the loss is smooth in all three): a sparse grid, then the full grid around its best point
    strides = (4, 3, 2)
    axes = (kdws, sigmas, exps)
    (k, sg, e), _ = solve([(float(k), float(sg), float(e)) for k in kdws[::4] for sg in sigmas[::3] for e in exps[::2]])

    def near(axis: int, v: float) -> list[float]:
        values, reach = axes[axis], strides[axis] - 1
        i = int(np.argmin(np.abs(values - v)))
        return [float(x) for x in values[max(0, i - reach):i + reach + 1]]

    (k, sg, e), best_sol = solve([(kk, ss, ee) for kk in near(0, k) for ss in near(1, sg) for ee in near(2, e)])
    offsets = {col: float(v) for col, v in zip(cols, best_sol, strict=True)}
    devices = tuple(sorted({c.device.id for _, c, _ in rows}))
    matmul = tuple(sorted({c.device.kind for s, c, _ in rows if matmul_dominated(s)}))
    out = replace(base, k_dw=k, sigma=sg, sigma_exp=e, offsets=offsets, fitted_devices=devices,
                  matmul_kinds=matmul)
    if sources is not None:
        counts, spread = source_backing(rows, sources, out)
        out = replace(out, column_sources=counts, column_spread=spread)
    return out


def source_backing(rows: Sequence[tuple[Structure, Config, float]], sources: Sequence[str],
                   p: Params) -> tuple[dict[str, int], dict[str, float]]:
    """For each column, how many sources have rows in it, and for a column with two or more, how far
    the farthest of them sits from the fit's level: each source's mean log residual over its rows in the
    column, against the fit without any ``source:`` nuisance offset (which would hide exactly this
    disagreement; the projection's centre is that fit's level, not the sources' middle)."""
    members: dict[str, dict[str, list[float]]] = {}
    for (s, c, t), src in zip(rows, sources, strict=True):
        r = log_residual(t, predict(s, replace(c, source=""), p).value)
        for col in c.columns():
            if not col.startswith(("source:", "device:")):
                members.setdefault(col, {}).setdefault(src, []).append(r)
    counts = {col: len(by) for col, by in members.items()}
    spread = {}
    for col, by in members.items():
        if len(by) >= 2:
            spread[col] = max(abs(sum(v) / len(v)) for v in by.values())
    return counts, spread


def log_residual(observed: float, predicted: float) -> float:
    return math.log(observed / predicted)


def quantile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return 0.0
    pos = q * (len(ordered) - 1)
    lo, hi = math.floor(pos), math.ceil(pos)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)


# The band covers this quantile of the absolute log residuals of rows the fit did not see.
BAND_QUANTILE = 0.85


def params_from_dict(data: dict[str, Any]) -> Params:
    return Params(
        float(data["k_dw"]), float(data["sigma"]), {str(k): float(v) for k, v in data["offsets"].items()},
        float(data.get("dispatch_s_at_1ghz", DEFAULTS["dispatch_s_at_1ghz"])),
        float(data.get("launch_s", DEFAULTS["launch_s"])), float(data["band_log"]),
        tuple(data.get("fitted_devices", ())), tuple(data.get("notes", ())),
        float(data.get("unseen_device_log", UNSEEN_DEVICE)), float(data.get("unseen_source_log", 0.0)),
        float(data.get("unfitted_column_log", UNFITTED_COLUMN)), tuple(data.get("matmul_kinds", ())),
        sigma_exp=float(data.get("sigma_exp", 0.0)),
        column_sources={str(k): int(v) for k, v in data.get("column_sources", {}).items()},
        column_spread={str(k): float(v) for k, v in data.get("column_spread", {}).items()},
        one_source_log=float(data.get("one_source_log", 0.0)),
        multi_source_log=float(data.get("multi_source_log", 0.0)),
    )


def params_to_dict(p: Params) -> dict[str, Any]:
    return {
        "k_dw": p.k_dw, "sigma": p.sigma, "offsets": dict(sorted(p.offsets.items())),
        "dispatch_s_at_1ghz": p.dispatch_s_at_1ghz, "launch_s": p.launch_s, "band_log": p.band_log,
        "fitted_devices": list(p.fitted_devices), "notes": list(p.notes),
        "unseen_device_log": p.unseen_device_log, "unseen_source_log": p.unseen_source_log,
        "unfitted_column_log": p.unfitted_column_log, "matmul_kinds": list(p.matmul_kinds),
        "sigma_exp": p.sigma_exp, "column_sources": dict(sorted(p.column_sources.items())),
        "column_spread": dict(sorted(p.column_spread.items())), "multi_source_log": p.multi_source_log,
        "one_source_log": p.one_source_log,
    }


def fitted() -> Params | None:
    """The committed fit (``_devicefit.py``), or None before one was written."""
    try:
        from mlfit.analysis._devicefit import PARAMS
    except ImportError:
        return None
    return params_from_dict(PARAMS)
