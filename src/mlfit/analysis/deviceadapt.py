"""The fitted device model adapted to one device from rows measured on that device (issue 25).

The published table (:mod:`mlfit.analysis._devicetable`) teaches what devices like the user's do;
rows measured on the user's own device teach that device, in two steps:

1. the table refitted with the device's rows, each carrying one more column,
   ``device:<hardware id>`` (prior 1.0x): the device's level and, where the table has no row for its
   runtime (``onnxruntime-fp32``), the runtime's column, while the table keeps teaching the op
   classes and precisions;
2. the device's own scales on the seven :data:`TERMS` of its time (dense and depthwise compute, other
   ops' bytes, the dense ops' own bytes, per-op dispatch, and the bytes and dispatch of activations
   fused into the convolution before them) and its own thread contention where its
   rows ran at several thread counts: what its hardware file's peak and bandwidth, its board, its
   build and its runtime version get wrong (on small models a batch-1 Gemm or a small convolution is
   bound by its weights, which the table's large networks never showed).

The adapted constants are used for that device only.

Judged as the user would judge it: each of the device's rows is predicted *before* (the committed
fit, which never saw it) and *after* (a fit on the table plus the device's rows of its *other models*:
leave one model out, so a model measured again each night, or at other thread counts, never vouches
for itself). A row that the others put more than :data:`OUTLIER` off is named and left out.

Repeats of one model in one configuration (a nightly job adds the same models each night) are one
unit, their median time, before any fit: a model measured thirty times weighs what a model measured
once does, and one disturbed run among its repeats moves nothing.

The band of an adapted projection (:func:`own_band`) is the device's own leave-one-model-out
residuals once they come from :data:`MIN_ROWS_FOR_BAND` models, and nothing else of the committed
band: the device is no longer unseen (no unseen-device or unseen-source widening), and those
residuals are the error of exactly this device, this runtime and this build. Its half-width is a
Student-t prediction interval for a new model's log error at ``dm.BAND_QUANTILE`` (85%): of n
held-out units, t(1/2 + q/2, n) times their root mean square. Each held-out residual is already a
prediction error (its model was not in the fit that predicted it) and the centre is not shifted by
them, so their mean square estimates the error variance with n degrees of freedom and a new error
over that root mean square is t-distributed (log errors roughly normal). Unlike the largest of five
(split-conformal's order statistic for n < 6), it uses every residual's size, so one model's
disturbed run moves it by its share, not all of it; on 2,520 held-out predictions of stored runs
both covered 82-83%, the t-interval with a narrower spread of widths (docs/projection.md). Fewer models: the
committed band and its widenings stay.

Pure: no I/O. The active fits for a check are set with :func:`using` by the run (which reads the
fit file) and read by the projection with :func:`active`.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator, Mapping, Sequence
from contextvars import ContextVar
from dataclasses import asdict, dataclass, replace
from typing import Any

from mlfit.analysis import devicemodel as dm

Row = tuple[dm.Structure, dm.Config, float]
OUTLIER = math.log(5.0)  # a row 5x off what the device's other rows predict is inconsistent
MIN_ROWS_FOR_BAND = 3  # distinct models; fewer: no residuals of the device's own to set a band from
BAND_FLOOR = math.log(1.05)  # never narrower: the user's device still drifts (thermals, versions)


def device_column(hardware_id: str) -> str:
    return f"device:{hardware_id}"


def on_device(config: dm.Config) -> dm.Config:
    """The configuration with its device's own column (a row measured on it, or a projection to it)."""
    column = device_column(config.device.id)
    return config if column in config.extra else replace(config, extra=(*config.extra, column))


# ---- plain-data forms (the generated table, the truth store and the fit file hold these) ----


def structure_to_dict(s: dm.Structure) -> dict[str, Any]:
    return asdict(s)


def structure_from_dict(data: Mapping[str, Any]) -> dm.Structure:
    return dm.Structure(float(data["dense_flops"]), float(data["depthwise_flops"]), float(data["other_bytes"]),
                        int(data["kernels"]), int(data.get("dense_kernels", 0)), float(data.get("matmul_flops", 0.0)),
                        float(data.get("dense_bytes", 0.0)), float(data.get("fused_bytes", 0.0)),
                        int(data.get("fused_kernels", 0)))


def device_to_dict(d: dm.Device) -> dict[str, Any]:
    return asdict(d)


def device_from_dict(data: Mapping[str, Any]) -> dm.Device:
    return dm.Device(**{k: data[k] for k in dm.Device.__dataclass_fields__ if k in data})


def config_to_dict(c: dm.Config) -> dict[str, Any]:
    out = asdict(c)
    out["extra"] = list(c.extra)
    return out


def config_from_dict(data: Mapping[str, Any]) -> dm.Config:
    fields = {k: data[k] for k in dm.Config.__dataclass_fields__ if k in data and k != "device"}
    fields["extra"] = tuple(fields.get("extra", ()))
    return dm.Config(device_from_dict(data["device"]), **fields)


def same_device(a: dm.Device, b: dm.Device) -> bool:
    """The same hardware id with the same figures (a hardware file edited since the fit is not)."""
    return device_to_dict(a) == device_to_dict(b)


# ---- adapting -------------------------------------------------------------------------------

# The terms of a device's own time, each the committed model's (offsets e^b included) before its
# scale: dense FLOPs, depthwise FLOPs (x k_dw) over the peak at the threads; other ops' bytes and
# the dense ops' own bytes (weights: a batch-1 Gemm, a small convolution) over the bandwidth; the
# per-op dispatch; and, apart from the other ops' bytes and the dispatch, those of the clamp-like
# activations the static walk marks fused into the product before them (``Structure.fused_bytes``,
# ``fused_kernels``). The published-table fit counts those like any op; a runtime that fuses them
# (ONNX Runtime's FusedConv, XNNPACK) spends neither a pass over memory nor a dispatch on them, while
# a MobileNetV3's hard-swish and squeeze-and-excite gates run as kernels of their own: a device's
# rows of both kinds of network tell the two apart. Unadapted, the scales are 1, 1, 1, 0, 1, 1, 1:
# the published-table model exactly.
TERMS = ("dense compute", "depthwise compute", "other ops' bytes", "dense ops' bytes", "per-op dispatch",
         "fused activations' bytes", "fused activations' dispatch")
UNADAPTED = (1.0, 1.0, 1.0, 0.0, 1.0, 1.0, 1.0)
# Ridge pull of each scale towards 1 (relative least squares): a handful of rows cannot split seven
# terms alone; the pull keeps the split the table's where the rows do not tell them apart.
RIDGE = 0.05
SIGMA_GRID = tuple(round(0.04 * i, 2) for i in range(0, 16))


def terms(s: dm.Structure, c: dm.Config, p: dm.Params, sigma: float | None = None) -> list[float]:
    """The terms of :data:`TERMS` in seconds for ``c`` (on its device, with its columns)."""
    d = c.device
    offset = math.exp(sum(p.offset(col)[0] for col in c.columns()))
    threads = max(1, min(c.threads, d.cores))
    peak = d.peak_core * dm.thread_speedup(threads, p.sigma if sigma is None else sigma)
    elem = (1 if c.precision == "int8" else (2 if c.precision == "fp16" else 4)) / 4
    fixed = dm.fixed_seconds(s, c, p)
    unfused_fixed = dm.fixed_seconds(replace(s, kernels=max(0, s.kernels - s.fused_kernels)), c, p)
    fused_bytes = min(s.fused_bytes, s.other_bytes)
    return [offset * s.dense_flops / peak, offset * p.k_dw * s.depthwise_flops / peak,
            offset * (s.other_bytes - fused_bytes) * elem / d.bandwidth, offset * s.dense_bytes * elem / d.bandwidth,
            unfused_fixed, offset * fused_bytes * elem / d.bandwidth, fixed - unfused_fixed]


@dataclass(frozen=True)
class DeviceTerms:
    """One device's scales on :data:`TERMS` (and its own thread contention, where rows allow)."""

    scales: tuple[float, ...] = UNADAPTED
    sigma: float | None = None  # None: the table's

    def seconds(self, s: dm.Structure, c: dm.Config, p: dm.Params) -> float:
        return sum(x * t for x, t in zip(self.scales, terms(s, c, p, self.sigma), strict=True))


def _solve(features: Sequence[Sequence[float]], seconds: Sequence[float]) -> tuple[float, ...]:
    """Non-negative relative least squares with a ridge pull towards 1 (a negative scale is set to
    0 and the others solved again)."""
    import numpy as np

    a = np.array(features) / np.array(seconds)[:, None]
    free = list(range(a.shape[1]))
    x = np.zeros(a.shape[1])
    while free:
        aa = np.vstack([a[:, free], math.sqrt(RIDGE) * np.eye(len(free))])
        rhs = np.concatenate([np.ones(len(seconds)), math.sqrt(RIDGE) * np.ones(len(free))])  # dropped: 0
        sol = np.linalg.lstsq(aa, rhs, rcond=None)[0]
        if (sol >= 0).all():
            x[free] = sol
            break
        drop = free[int(np.argmin(sol))]
        x[drop] = 0.0
        free.remove(drop)
    return tuple(float(v) for v in x)


# The fused activations' two terms get scales of their own when every leave-one-model-out fold has
# rows of this many models (the device one more: ``shares_fused``); with fewer, they share the other
# ops' bytes and dispatch scales (the split of the table's model). Rows of three models are split by
# a leave-one-model-out fit on two, which cannot tell an activation fused into its convolution from
# any other op: on the published table (item 9) the own scales there widened the adapted band from
# 1.53x to 1.73x (median) and caught no more error.
FUSED_MIN_MODELS = 4
_SHARED = (0, 1, 2, 3, 4, 2, 4)  # each term's scale when the fused terms share the others'


def shares_fused(rows: Sequence[Row]) -> bool:
    """Whether a device with these rows fits the fused terms with the other ops' scales: decided once
    for its final fit and each leave-one-model-out fold alike (a fold, one model short, must fit the
    same terms, or the band would judge a simpler fit than the one projected)."""
    return _models(rows) - 1 < FUSED_MIN_MODELS


def fit_terms(rows: Sequence[Row], p: dm.Params, shared: bool | None = None) -> DeviceTerms:
    """The device's scales from its rows (their configs on the device); its own ``sigma`` when its
    rows ran at more than one thread count (the one with the smallest squared relative error).
    ``shared``: the fused terms take the other ops' scales (None: decided from these rows)."""
    sigmas: Sequence[float | None] = SIGMA_GRID if len({c.threads for _, c, _ in rows}) > 1 else (None,)
    shared = _models(rows) < FUSED_MIN_MODELS if shared is None else shared
    best: tuple[float, DeviceTerms] | None = None
    for sigma in sigmas:
        feats = [terms(s, on_device(c), p, sigma) for s, c, _ in rows]
        if shared:
            merged = [[sum(f for f, j in zip(fs, _SHARED, strict=True) if j == i) for i in range(5)] for fs in feats]
            solved = _solve(merged, [t for *_, t in rows])
            scales = tuple(solved[j] for j in _SHARED)
        else:
            scales = _solve(feats, [t for *_, t in rows])
        err = sum((sum(x * f for x, f in zip(scales, fs, strict=True)) / t - 1) ** 2
                  for fs, (*_, t) in zip(feats, rows, strict=True))
        if best is None or err < best[0]:
            best = (err, DeviceTerms(scales, sigma))
    assert best is not None
    return best[1]


@dataclass(frozen=True)
class Adaptation:
    """One device's adapted constants and how they were judged."""

    hardware: str
    device: dm.Device
    params: dm.Params  # the table refitted with the device's rows (band: the device's own)
    device_terms: DeviceTerms
    used: tuple[str, ...]  # row ids
    excluded: tuple[tuple[str, str], ...] = ()  # (row id, why)
    before: tuple[float, ...] = ()  # |relative error| of each used row, committed fit
    after: tuple[float, ...] = ()  # ... leave-one-model-out with the device's other models' rows
    band: OwnBand | None = None  # None: too few models for a band of the device's own

    @property
    def median_before(self) -> float:
        return _median(self.before)

    @property
    def median_after(self) -> float:
        return _median(self.after)

    def summary(self, user_stated: int = 0) -> str:
        stated = f", {user_stated} of them user-stated" if user_stated else ""
        return (f"device model adapted with {len(self.used)} rows measured on {self.hardware}{stated} "
                f"(median error before {self.median_before:.0%}, after {self.median_after:.0%})")


def _median(values: Sequence[float]) -> float:
    ordered = sorted(values)
    if not ordered:
        return 0.0
    mid = len(ordered) // 2
    return ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2


def units(rows: Sequence[Row]) -> list[Row]:
    """The rows with repeats of one model in one configuration made one, their median time (the
    order of first appearance kept)."""
    times: dict[tuple[dm.Structure, dm.Config], list[float]] = {}
    for s, c, t in rows:
        times.setdefault((s, on_device(c)), []).append(t)
    return [(s, c, _median(ts)) for (s, c), ts in times.items()]


def refit(table: Sequence[Row], rows: Sequence[Row], base: dm.Params,
          shared: bool | None = None) -> tuple[dm.Params, DeviceTerms]:
    """The table refitted with the device's rows (their device column, repeats made one unit), then
    the device's own scales (``shared``: as :func:`fit_terms`)."""
    own = units(rows)
    params = dm.fit([*table, *own], base)
    return params, fit_terms(own, params, shared)


def leave_one_model_out(table: Sequence[Row], rows: Sequence[Row], base: dm.Params) -> list[float]:
    """Each row's log residual predicted by a refit on the table plus the device's rows of the other
    models (every row of its model held out with it: its other thread counts and its repeats, which
    would otherwise predict it from its own measurement). 0 for every row when only one model has rows."""
    out = [0.0] * len(rows)
    shared = shares_fused(rows)
    for model in dict.fromkeys(s for s, _, _ in rows):
        others = [r for r in rows if r[0] != model]
        if not others:
            return [0.0] * len(rows)
        params, local = refit(table, others, base, shared)
        for i, (s, c, t) in enumerate(rows):
            if s == model:
                out[i] = dm.log_residual(t, local.seconds(s, on_device(c), params))
    return out


def student_t(q: float, df: int) -> float:
    """t such that P(|T| <= t) = ``q`` for Student's t with ``df`` degrees of freedom (bisection on
    the closed form for integer df, Abramowitz & Stegun 26.7.3-4)."""
    def within(t: float) -> float:
        theta = math.atan(t / math.sqrt(df))
        c2, total = math.cos(theta) ** 2, 0.0
        term, power = (math.cos(theta), 1) if df % 2 else (1.0, 0)
        while power <= df - 2:
            total += term
            term *= c2 * (power + 1) / (power + 2)
            power += 2
        if df % 2:
            return 2 / math.pi * (theta + math.sin(theta) * total)
        return math.sin(theta) * total

    lo, hi = 0.0, 1.0
    while within(hi) < q:
        hi *= 2
    for _ in range(100):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if within(mid) < q else (lo, mid)
    return (lo + hi) / 2


@dataclass(frozen=True)
class OwnBand:
    """An adapted device's band from its own residuals: the log half-width, the n held-out units it
    comes from, their root mean square and the t factor over it."""

    half: float
    n: int
    rms: float = 0.0
    t: float = 0.0

    @property
    def coverage(self) -> float:
        return dm.BAND_QUANTILE

    def describe(self) -> str:
        return (f"{self.coverage:.0%} Student-t interval from the device's {self.n} leave-one-model-out "
                f"residuals (root mean square x{math.exp(self.rms):.2f}, t = {self.t:.2f})")


def own_band(residuals: Sequence[float], rows: Sequence[Row]) -> OwnBand:
    """The band's log half-width from the device's leave-one-model-out ``residuals`` (one per row):
    t(1/2 + q/2, n) times the root mean square of the n units' residuals (a unit's repeats: their
    median), q = ``dm.BAND_QUANTILE`` (see the module's docstring); never below :data:`BAND_FLOOR`."""
    by_unit: dict[tuple[dm.Structure, dm.Config], list[float]] = {}
    for r, (s, c, _) in zip(residuals, rows, strict=True):
        by_unit.setdefault((s, on_device(c)), []).append(r)
    values = [_median(v) for v in by_unit.values()]
    n = len(values)
    rms = math.sqrt(sum(v * v for v in values) / n)
    t = student_t(dm.BAND_QUANTILE, n)
    return OwnBand(max(BAND_FLOOR, t * rms), n, rms, t)


def adapt(table: Sequence[Row], rows: Sequence[Row], ids: Sequence[str], base: dm.Params) -> Adaptation:
    """Refit ``base`` (the committed fit) on ``table`` plus ``rows`` (all measured on one device,
    ``ids`` naming them), leaving out rows the others put :data:`OUTLIER` off (worst first, while
    rows of three or more models remain)."""
    if not rows:
        raise ValueError("no rows to adapt from")
    device = rows[0][1].device
    kept, names = list(rows), list(ids)
    excluded: list[tuple[str, str]] = []
    residuals = leave_one_model_out(table, kept, base)
    while _models(kept) >= MIN_ROWS_FOR_BAND:
        worst = max(range(len(kept)), key=lambda i: abs(residuals[i]))
        if abs(residuals[worst]) <= OUTLIER:
            break
        excluded.append((names[worst], f"{math.exp(abs(residuals[worst])):.1f}x off what the device's other rows "
                                       "predict: inconsistent, not used"))
        del kept[worst], names[worst]
        residuals = leave_one_model_out(table, kept, base)
    before = tuple(abs(dm.predict(s, c, base).value / t - 1) for s, c, t in kept)
    after = tuple(abs(math.exp(-r) - 1) for r in residuals) if _models(kept) >= 2 else before
    params, local = refit(table, kept, base, shares_fused(kept))
    band = own_band(residuals, kept) if _models(kept) >= MIN_ROWS_FOR_BAND else None
    if band is not None:
        # the device's own rows are the source: the unseen-source widening measured what they now show
        params = replace(params, band_log=band.half, unseen_source_log=0.0)
    else:
        params = replace(params, band_log=base.band_log, unseen_source_log=base.unseen_source_log)
    return Adaptation(device.id, device, params, local, tuple(names), tuple(excluded), before, after, band)


def _models(rows: Sequence[Row]) -> int:
    return len({s for s, _, _ in rows})


def predict(s: dm.Structure, c: dm.Config, p: dm.Params, local: DeviceTerms, rows: int,
            band: str = "") -> dm.Prediction:
    """An adapted projection: the device's own terms; its band from its own residuals (``band``
    says how: :meth:`OwnBand.describe`), with the committed widenings only for a configuration its
    rows do not cover (a column without a row). ``band`` "": too few models for a band of its own;
    the committed band and its widenings stay (``p`` carries them)."""
    config = on_device(c)
    centre = local.seconds(s, config, p)
    plain = dm.predict(s, config, p)
    if not band:
        return replace(plain, value=centre, lower=centre * plain.lower / plain.value,
                       upper=centre * plain.upper / plain.value)
    widen = {f"the device's own residuals ({rows} rows): {band}": p.band_log}
    widen.update({k: v for k, v in plain.widenings.items() if k != "validation residuals"})
    half = math.sqrt(sum(h * h for h in widen.values()))
    return dm.Prediction(centre, centre * math.exp(-half), centre * math.exp(half), widen, plain.unfitted)


def terms_to_dict(local: DeviceTerms) -> dict[str, Any]:
    return {"scales": dict(zip(TERMS, local.scales, strict=True)), "sigma": local.sigma}


def terms_from_dict(data: Mapping[str, Any]) -> DeviceTerms:
    scales = data.get("scales") or {}
    return DeviceTerms(tuple(float(scales.get(k, d)) for k, d in zip(TERMS, UNADAPTED, strict=True)),
                       None if data.get("sigma") is None else float(data["sigma"]))


# ---- the fits a projection uses (set by the run that read them) ---------------------------------


@dataclass(frozen=True)
class ActiveFit:
    """An adaptation as a projection uses it: the constants, the device they were fitted for, and
    the sentence the report carries."""

    device: dm.Device
    params: dm.Params
    device_terms: DeviceTerms
    rows: int
    summary: str
    stale: str = ""  # why it may be out of date (the store changed since the fit), or ""
    band: str = ""  # how the band was set from the device's own residuals (OwnBand.describe), or ""


_ACTIVE: ContextVar[Mapping[str, ActiveFit] | None] = ContextVar("mlfit_device_fits", default=None)


@contextlib.contextmanager
def using(fits: Mapping[str, ActiveFit]) -> Iterator[None]:
    """Projections inside the block use ``fits`` (hardware id -> adapted fit)."""
    token = _ACTIVE.set(dict(fits))
    try:
        yield
    finally:
        _ACTIVE.reset(token)


def active(hardware_id: str) -> ActiveFit | None:
    return (_ACTIVE.get() or {}).get(hardware_id)


def table_rows() -> list[Row]:
    """The published table's rows as the committed fit used them (``_devicetable.py``, written with
    ``_devicefit.py`` by ``benchmarks/bench_devices.py --write-params``); empty before one was written."""
    try:
        from mlfit.analysis._devicetable import TABLE
    except ImportError:
        return []
    return [(structure_from_dict(r["structure"]), config_from_dict(r["config"]), float(r["seconds"])) for r in TABLE]
