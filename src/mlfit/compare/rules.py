"""What a compare judges and how: its options, the rule that names a change (regression, improvement,
unchanged, inconclusive), and when two runs are not comparable at all."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from mlfit.errors import ConfigError
from mlfit.result import (
    ChangeStatus,
    MetricChange,
    RunResult,
)

DEFAULT_MIN_EFFECT = 0.05


DEFAULT_CONFIDENCE = 0.95


DEFAULT_RESAMPLES = 2000


# Assumed run-to-run spread (standard deviation) of a latency figure between two runs of the same
# model on the same machine: one run per side cannot show it, and ignoring it turns a busy
# neighbour into a "regression". ~3% was seen on a shared 2-core VM; set 0 on a quiet machine.
DEFAULT_RUN_NOISE = 0.02


# Memory readings move by allocator and page granularity: smaller differences are not changes.
MEMORY_FLOOR = float(2**20)


class Method(str, Enum):
    """How a latency change is tested for significance."""

    BOOTSTRAP = "bootstrap"
    MANN_WHITNEY = "mannwhitney"


@dataclass(frozen=True)
class CompareOptions:
    """Settings of one compare (``mlfit compare`` flags: --min-effect, --confidence, --method, --run-noise,
    --strict; ``resamples`` and ``seed`` keep the bootstrap reproducible)."""

    min_effect: float = DEFAULT_MIN_EFFECT
    confidence: float = DEFAULT_CONFIDENCE
    method: Method = Method.BOOTSTRAP
    resamples: int = DEFAULT_RESAMPLES
    run_noise: float = DEFAULT_RUN_NOISE
    seed: int = 0
    strict: bool = False

    def __post_init__(self) -> None:
        if not 0 <= self.min_effect < 10:
            raise ConfigError(
                f"minimum effect {self.min_effect:g} is out of range", "give a fraction such as 0.05"
            )
        if not 0.5 <= self.confidence < 1:
            raise ConfigError(f"confidence {self.confidence:g} is out of range", "give a level such as 0.95")
        if not 0 <= self.run_noise < 1:
            raise ConfigError(f"run noise {self.run_noise:g} is out of range", "give a fraction such as 0.02")
        if self.resamples < 100:
            raise ConfigError(f"{self.resamples} resamples are too few for an interval", "use at least 100")




# Figures whose run-to-run spread on a busy machine dwarfs the model's: a noisy run cannot show a change.
_TAIL = {"latency.p90", "latency.p95", "latency.p99", "latency.mean", "throughput.single_stream"}


# Which direction is better for each sampled figure.
_BETTER = {"throughput.single_stream": "higher"}


_UNITS = {"throughput.single_stream": "/s"}


def _status(worse: float, lo: float, hi: float, significant: bool, effect: float) -> ChangeStatus:
    """Classify a change given in the worse direction (positive = worse) with its interval [lo, hi]."""
    if significant and lo > effect:
        return ChangeStatus.REGRESSION
    if significant and hi < -effect:
        return ChangeStatus.IMPROVEMENT
    return ChangeStatus.INCONCLUSIVE if abs(worse) > effect else ChangeStatus.UNCHANGED


def _pct(x: float) -> str:
    return f"{x * 100:+.1f}%"


def _shapes(result: RunResult) -> str:
    return ", ".join(f"{t.name}={'x'.join(str(d) for d in t.shape)}" for t in result.model.inputs_used)


def _notes(base: RunResult, new: RunResult) -> list[str]:
    notes: list[str] = []
    if base.model.sha256 != new.model.sha256:
        notes.append(f"different model files (sha256 {base.model.sha256[:12]} -> {new.model.sha256[:12]})")
    if _shapes(base) != _shapes(new):
        notes.append(f"input shapes differ: {_shapes(base) or '?'} -> {_shapes(new) or '?'}")
    bm, nm = base.measurement, new.measurement
    if bm is not None and nm is not None and (bm.runtime, bm.runtime_version) != (nm.runtime, nm.runtime_version):
        notes.append(
            f"runtimes differ: {bm.runtime} {bm.runtime_version} -> {nm.runtime} {nm.runtime_version}"
        )
    return notes


def _config(result: RunResult) -> dict[str, str]:
    m = result.measurement
    if m is None:
        return {}
    return {"runtime": m.runtime, "thread count": str(m.threads), "execution provider": m.execution_provider,
            "batch": str(m.throughput.batch_size or 1)}


def not_comparable(base: RunResult, new: RunResult) -> list[str]:
    """Why two runs of a model cannot be compared, or nothing when they can.

    What is not the model must match: the deployment configuration the model was measured in
    (runtime, threads, execution provider, batch), and, for the same file, the inputs it was
    fed. A different file may take different inputs (a model retrained at another resolution is
    the change a compare is for). Different machines are not refused here: see
    :func:`compare_reports`."""
    reasons: list[str] = []
    if base.model.sha256 == new.model.sha256 and _shapes(base) != _shapes(new):
        reasons.append(f"the same model file was measured on different inputs ({_shapes(base) or '?'} -> "
                       f"{_shapes(new) or '?'})")
    bc, nc = _config(base), _config(new)
    for key in bc:
        if key in nc and bc[key] != nc[key]:
            reasons.append(f"{key} differs ({bc[key]} -> {nc[key]})")
    return reasons


def _same_setup(base: RunResult, new: RunResult) -> bool:
    """The same file, inputs, configuration and runtime version: only the host can differ."""
    bm, nm = base.measurement, new.measurement
    return (base.model.sha256 == new.model.sha256 and _shapes(base) == _shapes(new) and not not_comparable(base, new)
            and bm is not None and nm is not None and bm.runtime_version == nm.runtime_version)


def _judged_by_cost(changes: list[MetricChange], cost: MetricChange | None, same: bool) -> list[MetricChange]:
    """Wall figures move with host load: a wall-time regression or improvement stands only when the
    contention-proof cost moved the same way. Two runs of the same setup (file, inputs,
    configuration, runtime version) never regress: what differs between them is the host."""
    directed = (ChangeStatus.REGRESSION, ChangeStatus.IMPROVEMENT)
    out: list[MetricChange] = []
    for c in changes:
        if c.status in directed and same:
            c = c.model_copy(update={"status": ChangeStatus.INCONCLUSIVE, "reason": (
                f"{_pct(c.change or 0.0)}, but both runs measured the same file with the same inputs, "
                "configuration and runtime: the difference is the host's, not the model's")})
        elif (c.status in directed and cost is not None and c.metric.startswith(("latency.", "throughput.single"))
              and cost.status is not c.status):
            c = c.model_copy(update={"status": ChangeStatus.INCONCLUSIVE, "reason": (
                f"{_pct(c.change or 0.0)} in wall time, but the uncontended cost did not move the same way "
                f"({cost.reason}): the host's load, not the model")})
        out.append(c)
    return out
