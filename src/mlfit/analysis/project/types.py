"""What a projection is: a band per figure, the projection of one target, and the small shared
facts the CPU and GPU paths both read (instruction-set family, the model's precision)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from mlfit.catalog.schema import Percentile
from mlfit.records import ProjectionSummary

TOP_N = 5


WIDE_BAND = 3.0  # a projected band wider than this (upper over lower) is explained in the result


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
    # which estimator the figures come from (CPU): "device model", "host-scaled" or both (they disagree)
    estimator: str = ""

    def summary(self) -> ProjectionSummary:
        """The typed record the result file keeps (validated from the figures gathered here)."""
        return ProjectionSummary.model_validate({
            "method": self.method,
            "estimator": self.estimator,
            "latency": {p.value: {"value": b.value, "lower": b.lower, "upper": b.upper}
                        for p, b in self.latency.items()},
            "notes": self.notes,
            "top_nodes": self.top_nodes,
            "top_ops": self.top_ops,
            "details": self.details,
            "measured": self.measured,
        })


def isa_family(arch: str) -> str:
    return (
        "x86"
        if arch in ("x86_64", "AMD64", "i686")
        else "arm"
        if arch.startswith(("aarch64", "arm"))
        else arch
    )


def model_precision(static: dict[str, Any]) -> str:
    """fp32, fp16 or int8: the dtype that holds most of the parameter bytes."""
    by = static.get("parameter_bytes") or {}
    eight = float(by.get("int8", 0)) + float(by.get("uint8", 0))
    half = float(by.get("float16", 0))
    full = float(by.get("float32", 0))
    return "int8" if eight > max(half, full) else ("fp16" if half > full else "fp32")
