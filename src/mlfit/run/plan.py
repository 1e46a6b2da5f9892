"""The plan stage of :mod:`mlfit.run`: what each worker run measures."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from mlfit.catalog.loader import Target
from mlfit.catalog.schema import MIN_SAMPLES, Percentile, Runtime
from mlfit.inputspec import InputSpec
from mlfit.modelref import ModelRef
from mlfit.options import MeasureOptions
from mlfit.run.configs import Configuration, plan_configurations

if TYPE_CHECKING:
    from mlfit.measure.protocol import MeasureSettings


def required_samples(targets: Sequence[Target]) -> int:
    needed = [MIN_SAMPLES[p] for t in targets for p in t.profile.budgets.latency]
    return max(needed, default=MIN_SAMPLES[Percentile.P99])


def profile_threads(targets: Sequence[Target], options: MeasureOptions) -> list[int]:
    """Thread counts for node profiling: one thread, unless ``options.extra["profile_threads"]``
    asks for more (the projection-accuracy benchmark compares with the 2-thread fit).

    The projection starts from the single-thread profile's uncontended per-node figures and carries
    them to any thread count by the calibrated thread speed-up (mlfit.analysis.uncontended); a
    profile at the configurations' own thread counts only fed the older per-node thread fit, which a
    profile with single-thread fast figures never reaches, so it cost the check a second profiled
    session (0.2-0.3 s) and changed no verdict (issue 22)."""
    if not targets:
        return []
    wanted = options.extra.get("profile_threads")
    if wanted is not None:
        return sorted({int(t) for t in wanted})
    return [1]


# A run whose targets do not use this host's latency samples (GPU targets projected by the
# roofline) times single inferences only this long: its memory phases and cold start are what count.
HOST_FREE_MIN_TIME_S = 0.25


@dataclass(frozen=True)
class PlannedRun:
    """One worker run: a deployment configuration and what the worker measures for it."""

    config: Configuration
    settings: MeasureSettings
    inputs: InputSpec


def plan_measurement(ref: ModelRef, targets: Sequence[Target], options: MeasureOptions, *,
                     judged_here: bool = False, inputs: InputSpec | None = None, batch_from_targets: bool = False,
                     batch_free: bool = True, roofline: bool = False, node_profile: bool = True) -> list[PlannedRun]:
    """One run per deployment configuration (:mod:`mlfit.run.configs`); the first is the primary.

    Node profiling (for projection) runs once, in the primary run, at every thread count the
    configurations and targets use. Load scenarios run in each configuration for its own targets
    where this host is the targets' hardware (their figures are judged); elsewhere once, in the
    primary run, as host figures shown beside the verdicts and never judged against a budget.
    ``judged_here``: this machine is the targets' hardware (their figures are judged, nothing is
    projected). When the model's free batch dim is filled from the targets (no --batch, --dim or
    ``InputSpec.batch``), each run feeds its own configuration's batch. A configuration whose
    targets are all GPU targets projected by the roofline (``roofline``: the static graph is known)
    does not use this host's latency samples, only its memory phases and cold start: its timed
    loop is kept short (at most ``HOST_FREE_MIN_TIME_S``, one sample is enough).
    """
    from mlfit.catalog.loader import is_gpu_target
    from mlfit.measure.host import usable_cores
    from mlfit.measure.loadplan import plan_load
    from mlfit.measure.protocol import MeasureSettings
    from mlfit.measure.scenarios import ScenarioSettings

    cores = usable_cores()
    configs = plan_configurations(targets, ref.runtime, options, cores, batch_free)
    counts = [] if judged_here else profile_threads(targets, options)
    by_name = {t.name: t for t in targets}
    runs: list[PlannedRun] = []
    for i, config in enumerate(configs):
        own = [by_name[name] for name in config.targets]
        if judged_here or i == 0:
            load = plan_load(own if judged_here else targets, options.scenario, options.qps, options.find_max_qps,
                             options.batch_sizes, options.callers)
        else:
            load = ScenarioSettings()
        profile = node_profile and i == 0 and bool(counts) and ref.runtime is Runtime.ONNXRUNTIME
        host_free = roofline and not judged_here and bool(own) and all(is_gpu_target(t) for t in own)
        settings = MeasureSettings(
            warmup_iterations=options.warmup, max_time_s=options.max_time,
            min_time_s=min(options.min_time, HOST_FREE_MIN_TIME_S) if host_free else options.min_time,
            min_samples=options.min_samples or (1 if host_free else required_samples(own)),
            batch_size=config.batch if config.batch > 1 else None, load=load,
            profile_nodes=profile, profile_threads=counts if profile else [],
        )
        spec = inputs or InputSpec()
        if batch_from_targets and batch_free and own and spec.batch is not None:
            spec = spec.model_copy(update={"batch": own[0].profile.batch_size})
        runs.append(PlannedRun(config=config, settings=settings, inputs=spec))
    return runs


