"""From a factor to percentile bands, and the notes that say where a band's width comes from."""

from __future__ import annotations

from typing import Any

from mlfit.analysis.project.types import WIDE_BAND, Band
from mlfit.analysis.uncontended import BUSY_WIDENING, HostLoad, tail_spread
from mlfit.catalog.loader import Target
from mlfit.catalog.schema import Percentile
from mlfit.measure.bounds import percentile_bounds
from mlfit.result import Measurement


def explain_wide_band(
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


def uncontended_bands(
    m: Measurement, factor: Band, base: float, load: HostLoad | None, median_from_host: bool = True
) -> dict[Percentile, Band]:
    """Each percentile from the model's uncontended cost: ``base`` (the host's uncontended median at
    the measured threads) times the uncontended spread of that percentile (optimistic, centre and
    conservative: ``tail_spread``), carried by the factor. Host load never moves the centre; it
    widens the band by as much as the estimate itself was seen to move between a quiet and a fully
    loaded host (``BUSY_WIDENING``). ``median_from_host`` False: the median is a device model's own
    figure (fitted on published rows, or adapted to the device's own): this host's estimate cancels
    out of it (``factor`` is that figure over ``base``), so this host's load, which moves only that
    estimate, widens no percentile. The tails still take their shape from this host's samples, but
    that shape has its own band, from no tail at all to the larger of the largest quiet spread and
    the measured one, which already holds whatever the load did to it: widening it again for the
    load counted the load twice (and put an adapted device's p95 optimistic end below its p50's)."""
    spread = tail_spread(m)
    busy = load.busy if load is not None else 0.0
    lo_w, hi_w = BUSY_WIDENING
    out: dict[Percentile, Band] = {}
    for p in Percentile:
        if getattr(m.latency, p.value) is None and m.latency.n < 2:
            continue
        lo_s, mid_s, hi_s = spread[p]
        b = busy if median_from_host else 0.0
        out[p] = Band(base * mid_s * factor.value, base * lo_s * factor.lower * (1 - lo_w * b),
                      base * hi_s * factor.upper * (1 + hi_w * b))
    return out


def load_note(
    load: HostLoad | None, base: float, m: Measurement, sources: dict[str, tuple[float, float]],
    notes: list[str], details: dict[str, Any], median_from_host: bool = True,
) -> None:
    """State how busy the host was and what that did to the band (nothing, for a device model's
    median: see :func:`uncontended_bands`)."""
    details["uncontended_p50_host_s"] = base
    if load is None:
        return
    details["host_load"] = {"cpu_share": load.cpu_share, "busy": load.busy, "switches_per_s": load.switches_per_s,
                            "runnable": load.runnable, "steal": load.steal, "slowdown": load.slowdown}
    lo_w, hi_w = BUSY_WIDENING
    wall = m.latency.p50 or m.latency.mean
    if not median_from_host:
        effect = ("; the band is not widened for it: the device model's median does not come from this "
                  "host's timings, and the tails' shape keeps its own band")
    elif load.busy >= 0.05:
        effect = f"; the band is widened x{1 - lo_w * load.busy:.2f}-x{1 + hi_w * load.busy:.2f} for it"
    else:
        effect = ""
    notes.append(
        f"host load while measuring: {load.describe()}; projections start from the model's uncontended "
        f"cost on this host ({base * 1e3:.3g} ms per call at {m.threads} thread(s); measured (host) wall p50 "
        f"{wall * 1e3:.3g} ms)" + effect
    )


def latency_bands(m: Measurement, factor: Band, robust_p50: float | None = None) -> dict[Percentile, Band]:
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


def host_sources(
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
