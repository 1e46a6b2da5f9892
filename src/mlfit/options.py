"""How to measure: the options every entry point (API, CLI, many models, cluster tasks) passes down.

Low in the layers (beside ``inputspec``) so the steps of a run (convert, fit checks, cluster tasks)
can name them without importing the orchestration (:mod:`mlfit.run`) that calls them."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from mlfit.catalog.schema import Runtime

EventFn = Callable[[dict[str, object]], None]


@dataclass(frozen=True)
class MeasureOptions:
    """How to measure; every field has a CLI flag of the same name."""

    threads: int | None = None  # default: the targets' threads, capped at usable cores
    warmup: int = 10
    min_time: float = 1.0
    max_time: float = 30.0
    min_samples: int | None = None  # default: what the targets' percentiles need (MLPerf minimums)
    timeout: float | None = None  # per phase; default: launcher.DEFAULT_TIMEOUTS
    memory_limit: int | None = None
    runtime: Runtime | None = None
    trust_model: bool = False
    trust_types: tuple[str, ...] = ()
    signature: str = "serving_default"
    method: str = "predict"
    custom_op_libraries: tuple[str, ...] = ()
    enable_arena: bool = True
    batch_size: int | None = None
    convert: bool = False  # measure a converted artefact when a target lacks the model's runtime
    extra: dict[str, Any] = field(default_factory=dict)
    # Load scenarios (measure/scenarios.py): server at rates, offline, rate search, batch sweep.
    scenario: str = "single-stream"
    qps: tuple[float, ...] = ()
    find_max_qps: bool = False
    batch_sizes: tuple[int, ...] = ()
    callers: int = 4
    # The truth store whose adapted device fits the projections use (docs/projection.md); None:
    # $MLFIT_TRUTH or the user's cache folder.
    truth: str | None = None


# Batched throughput is measured at this batch for scikit-learn models when no target asks
# for a batch: single-row latency alone misjudges them (docs/formats.md).
SKLEARN_THROUGHPUT_BATCH = 256

# Error kinds of a worker the parent had to stop, or that died: the result is incomplete.
STOPPED_KINDS = frozenset({"timeout", "memory", "crash", "interrupted", "resource"})
