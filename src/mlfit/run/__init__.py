"""The orchestration: one path through mlfit for one model, many models and cluster tasks.

``mlfit.api`` (the public face), ``mlfit.multi`` and ``mlfit.cluster`` call this package;
nothing below it imports it (import-linter contracts in pyproject.toml). Stages, in order:
safety -> conversion (``--convert``) -> gate (static refusals and verdicts) -> plan
configurations -> measure (worker subprocesses) -> evaluate (project and check per target)
-> assemble (one immutable :class:`~mlfit.result.RunResult`).
"""

from __future__ import annotations

from mlfit.options import SKLEARN_THROUGHPUT_BATCH, STOPPED_KINDS, EventFn, MeasureOptions
from mlfit.run.core import run_model, run_path
from mlfit.run.gate import error_result, model_info, static_facts
from mlfit.run.venues import TargetHardware, ThisHost, Venue

__all__ = [
           "SKLEARN_THROUGHPUT_BATCH",
           "STOPPED_KINDS",
           "EventFn",
           "MeasureOptions",
           "TargetHardware",
           "ThisHost",
           "Venue",
           "error_result",
           "model_info",
           "run_model",
           "run_path",
           "static_facts",
]
