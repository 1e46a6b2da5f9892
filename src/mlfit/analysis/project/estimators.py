"""Two estimators that must agree, and the floors no projection may go below (issue 21).

The **device model** (fitted on published device measurements, from the model's static structure)
is stable under host load but sees only the ops the static cost model can read; the **host-scaled**
estimate (this host's uncontended per-node time times the per-class host-to-target ratios) sees
every op the host ran. Here they are combined into the one figure a projection reports:

* ops without a static cost take their host-scaled time, with their own widening, and the share of
  the host's time the device model could not see is stated;
* when the two disagree beyond their bands, the band spans both and the reason names the ops behind
  the disagreement: a verdict only the optimistic estimator would give cannot PASS (PASS needs the
  conservative end, which now comes from the pessimistic one);
* physical floors: never below the roofline lower bound of the counted work on the target's peak
  compute and bandwidth, and never below this host's own uncontended cost for a target weaker than
  this host in peak compute, bandwidth and clock;
* the per-node times of the one projection, scaled to its centre (what every reporter shows).

Pure: no I/O.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from mlfit.analysis.project.types import Band

DEVICE = "device model"
HOST = "host-scaled"
# the floor that is this host's own cost (``record["floored"]``): a centre raised to it is this host's figure
HOST_FLOOR = "this host's uncontended cost"
BOTH = "device model + host-scaled"
# Ops without a static cost take their host-scaled time, widened by this (a named widening: the
# per-class ratio is a guess for an op whose class nothing measured)
UNSEEN_WIDENING = 1.5
# Weights larger than this cannot stay in any of these targets' caches between calls: the roofline
# floor streams them once per inference
_STREAMED_PARAMS = 8 << 20
# A precision's dense peak against fp32 (the most any CPU path gains: SDOT/VNNI int8, FP16 lanes)
_PRECISION_PEAK = {"int8": 4.0, "fp16": 2.0, "fp32": 1.0}


@dataclass(frozen=True)
class HostNode:
    """One profiled node as the host-scaled estimate carries it: its time here (µs) and on the
    target (seconds: optimistic, centre, conservative)."""

    name: str
    op: str
    host_us: float
    lower: float
    value: float
    upper: float


@dataclass(frozen=True)
class Floors:
    """The least the target can take per inference (seconds), and why; 0 when unknown."""

    roofline: float = 0.0
    host: float = 0.0  # this host's uncontended cost, for a target weaker than this host
    host_fastest: float = 0.0  # this host's fastest call: the floor of the optimistic bound
    host_reason: str = ""


@dataclass
class Combined:
    seconds: Band
    estimator: str  # DEVICE, HOST or BOTH
    label: str  # the method's compact prefix, e.g. "device model + host-scaled, x8.1 apart"
    per_node: list[tuple[str, str, float]]  # name, op, seconds: adds up to seconds.value
    notes: list[str] = field(default_factory=list)
    sources: dict[str, tuple[float, float]] = field(default_factory=dict)
    record: dict[str, Any] = field(default_factory=dict)
    floor: float = 0.0  # no figure per inference, centre or optimistic bound, may go below this

    @property
    def median_from_host(self) -> bool:
        """Whether this host's timings enter the centre: not for the device model's own figure (no op
        timed only here added to it, not raised to this host's cost), so this host's load cannot move it."""
        return not (self.estimator == DEVICE and not (self.record.get("unseen") or {}).get("nodes")
                    and self.record.get("floored") != HOST_FLOOR)

    def floored(self, band: Band) -> Band:
        """A projected percentile held at the physical floor (its tail only adds to it)."""
        if band.lower >= self.floor:
            return band
        return Band(max(band.value, self.floor), self.floor, max(band.upper, self.floor))


def base_op(op: str) -> str:
    """An op's class name across onnxruntime's fusions and domains (FusedConv and Conv alike)."""
    name = op.split("::")[-1]
    for prefix in ("NhwcFused", "Fused", "Nhwc"):
        if name.startswith(prefix) and len(name) > len(prefix):
            return name[len(prefix):]
    return name


def _unseen(static: dict[str, Any] | None, nodes: list[HostNode]) -> tuple[list[HostNode], list[str]]:
    """The profiled nodes the static cost model could not read: by name, else by op class."""
    unknown = [n for n in (static or {}).get("nodes") or [] if not n.get("cost_known", True)]
    names = {str(n["name"]) for n in unknown}
    ops = {base_op(str(n["op"])) for n in unknown}
    hit = [n for n in nodes if n.name in names or base_op(n.op) in ops]
    return hit, sorted(ops)


def _per_op(per_node: list[tuple[str, str, float]]) -> dict[str, float]:
    out: dict[str, float] = {}
    for _, op, seconds in per_node:
        out[base_op(op)] = out.get(base_op(op), 0.0) + seconds
    return out


def _behind(host: list[HostNode], device: list[tuple[str, str, float]], host_total: float) -> list[str]:
    """The op classes behind a disagreement: those carrying at least 5% of the host-scaled time whose
    host-scaled and device-model times differ most (an op the device model has no time for first)."""
    h = _per_op([(n.name, n.op, n.value) for n in host])
    d = _per_op(device)
    scored = []
    for op, t in h.items():
        if host_total <= 0 or t / host_total < 0.05:
            continue
        other = d.get(op, 0.0)
        gap = math.inf if other <= 0 else abs(math.log(t / other))
        scored.append((gap, t, op, other))
    scored.sort(reverse=True)
    return [f"{op} (host-scaled {t * 1e3:.3g} ms, device model " + (f"{o * 1e3:.3g} ms)" if o > 0 else "none)")
            for gap, t, op, o in scored[:3] if gap > math.log(2)]


def combine(
    static: dict[str, Any] | None, device: Band | None, device_nodes: list[tuple[str, str, float]],
    host: Band, host_nodes: list[HostNode], floors: Floors, device_rows: int = 0,
) -> Combined:
    """The one projected figure per inference (seconds) from the two estimators and the floors.
    ``device_rows``: rows measured on the target itself that the device model was adapted to
    (``mlfit truth fit``); they outrank the hardware file's figures the host-scaled estimate rests on."""
    notes: list[str] = []
    sources: dict[str, tuple[float, float]] = {}
    record: dict[str, Any] = {"host_scaled": _fig(host)}
    known = [n for n in (static or {}).get("nodes") or [] if n.get("cost_known", True)]
    if device is not None and static and not known:
        notes.append("no op of this model has a static cost model: the device model sees nothing of it, so the "
                     "projection is this host's uncontended per-node time scaled to the target (host-scaled)")
        device = None
    unseen, unseen_ops = _unseen(static, host_nodes) if device is not None else ([], [])
    host_us = sum(n.host_us for n in host_nodes)
    if device is not None and unseen:
        share = sum(n.host_us for n in unseen) / host_us if host_us else 0.0
        u = Band(sum(n.value for n in unseen), sum(n.lower for n in unseen) / UNSEEN_WIDENING,
                 sum(n.upper for n in unseen) * UNSEEN_WIDENING)
        record["unseen"] = {"ops": unseen_ops, "nodes": len(unseen), "host_share": share, **_fig(u)}
        notes.append(f"ops without a static cost model ({', '.join(unseen_ops)}: {len(unseen)} node(s), {share:.0%} "
                     f"of this host's time, which the device model could not see) take their host-measured "
                     f"uncontended time scaled to the target, widened x{UNSEEN_WIDENING:g}")
        both = Band(device.value + u.value, device.lower + u.lower, device.upper + u.upper)
        # the widening these ops add, as multipliers on the centre, over the device model's own band
        sources["ops without a static cost (host-scaled)"] = (
            (both.lower / both.value) / (device.lower / device.value),
            (both.upper / both.value) / (device.upper / device.value))
        device_nodes = [*device_nodes, *((n.name, n.op, n.value) for n in unseen)]
        device = both
    elif device is not None:
        record["unseen"] = {"ops": [], "nodes": 0, "host_share": 0.0}
    if device is None:
        seconds, estimator, label = host, HOST, HOST
        per_node = [(n.name, n.op, n.value) for n in host_nodes]
    else:
        record["device_model"] = _fig(device)
        apart = max(device.value, host.value) / max(min(device.value, host.value), 1e-30)
        record["ratio"] = host.value / device.value if device.value > 0 else None
        per_node = device_nodes
        if device.lower <= host.upper and host.lower <= device.upper:
            seconds, estimator, label = device, DEVICE, DEVICE
            record["agree"] = True
            notes.append(f"cross-check: the host-scaled estimate ({host.value * 1e3:.3g} ms) agrees with the device "
                         f"model ({device.value * 1e3:.3g} ms) within their bands")
        elif device_rows:
            # Measured on the device itself: the host-scaled ratio comes from the hardware file's peak
            # figures, which those rows have just checked; the disagreement is told, not split.
            seconds, estimator, label = device, DEVICE, DEVICE
            record["agree"] = False
            record["overruled_by_device_rows"] = device_rows
            notes.append(f"the host-scaled estimate ({host.value * 1e3:.3g} ms, from the hardware file's figures) "
                         f"disagrees x{apart:.1f} with the device model adapted to {device_rows} rows measured on "
                         f"this device; those measurements decide the projection")
        else:
            record["agree"] = False
            ops = _behind(host_nodes, device_nodes, host.value)
            record["ops"] = ops
            centre = math.sqrt(device.value * host.value)  # neither is known to be right: the middle, in log
            seconds = Band(centre, min(device.lower, host.lower), max(device.upper, host.upper))
            estimator, label = BOTH, f"{BOTH}, x{apart:.1f} apart"
            faster = "device model" if device.value < host.value else "host-scaled estimate"
            notes.append(
                f"the two estimators disagree x{apart:.1f} beyond their bands (device model "
                f"{device.value * 1e3:.3g} ms "
                f"[{device.lower * 1e3:.3g}-{device.upper * 1e3:.3g}], host-scaled {host.value * 1e3:.3g} ms "
                f"[{host.lower * 1e3:.3g}-{host.upper * 1e3:.3g}]): the band spans both, so a verdict only the "
                f"{faster} would give is INCONCLUSIVE" + (f"; ops behind it: {', '.join(ops)}" if ops else ""))
            sources["estimators disagree"] = (seconds.lower / centre, seconds.upper / centre)
    seconds = _floored(seconds, floors, notes, record)
    record["estimator"] = estimator
    total = sum(t for _, _, t in per_node)
    scale = seconds.value / total if total > 0 else 0.0
    per_node = [(name, op, t * scale) for name, op, t in per_node]
    floor = max(floors.roofline, floors.host_fastest if floors.host else 0.0)
    return Combined(seconds, estimator, label, per_node, notes, sources, record, floor)


def _floored(seconds: Band, floors: Floors, notes: list[str], record: dict[str, Any]) -> Band:
    """No figure below the roofline of the counted work; none below this host's own cost for a
    target weaker than this host in every respect."""
    record["floors"] = {"roofline_s": floors.roofline, "host_s": floors.host, "host_reason": floors.host_reason}
    centre_floor = max(floors.roofline, floors.host)
    lower_floor = max(floors.roofline, floors.host_fastest if floors.host else 0.0)
    if seconds.value >= centre_floor and seconds.lower >= lower_floor:
        return seconds
    which = HOST_FLOOR if floors.host >= floors.roofline else "the roofline of the counted work"
    notes.append(
        f"raised to the physical floor: {which} ({centre_floor * 1e3:.3g} ms"
        + (f"; {floors.host_reason}" if floors.host >= floors.roofline and floors.host_reason else "")
        + f"); the estimate was {seconds.value * 1e3:.3g} ms [{seconds.lower * 1e3:.3g}-{seconds.upper * 1e3:.3g}]")
    record["floored"] = which
    value = max(seconds.value, centre_floor)
    return Band(value, max(seconds.lower, lower_floor), max(seconds.upper, value))


def _fig(b: Band) -> dict[str, float]:
    return {"value": b.value, "lower": b.lower, "upper": b.upper}


def roofline_floor(static: dict[str, Any] | None, precision: str, peak_core: float, threads: int,
                   bandwidth: float) -> float:
    """The counted work at the target's peak: FLOPs over the peak of the threads used (at the most a
    precision can gain), weights too large to stay in cache streamed once at the memory bandwidth."""
    if not static or peak_core <= 0:
        return 0.0
    flops = float(static.get("flops") or 0)
    compute = flops / (peak_core * max(1, threads) * _PRECISION_PEAK.get(precision, 1.0))
    params = float(sum((static.get("parameter_bytes") or {}).values()))
    streamed = params / bandwidth if params > _STREAMED_PARAMS and bandwidth > 0 else 0.0
    return max(compute, streamed)


def weaker_than_host(target_peak: float, target_bw: float, target_hz: float, host_peak: float | None,
                     host_bw: float | None, host_hz: float | None) -> str:
    """Why the target is weaker than this host in peak compute (at the threads each uses), bandwidth
    and clock, or "" when it is not (or this host's figures are unknown)."""
    if not host_peak or not host_bw or not host_hz:
        return ""
    if target_peak <= host_peak and target_bw <= host_bw and target_hz <= host_hz:
        return (f"the target is weaker than this host in peak compute ({target_peak / 1e9:.0f} vs "
                f"{host_peak / 1e9:.0f} GFLOP/s at the threads used), bandwidth ({target_bw / 1e9:.0f} vs "
                f"{host_bw / 1e9:.0f} GB/s) and clock ({target_hz / 1e9:.2f} vs {host_hz / 1e9:.2f} GHz)")
    return ""
