"""Targets with container limits, measured *emulated*: the "measure" and "evaluate" stages for a
target whose profile has a ``container:`` section (a Kubernetes manifest, a Compose file or a
profile), see docs/containers.md.

Each distinct (limits, threads, batch) is one worker run inside a cgroup with those limits
(:mod:`mlfit.measure.cgroup`); targets that share one share the run. Its figures are the target's
own, labelled emulated, and nothing is projected. When the runtime's default thread count inside
the container (the CPUs it sees) differs from the quota rounded up, a second, shorter run at the
other count gives the comparison and a recommendation. An OOM kill under the memory limit is a
measured FAIL of ``memory.peak``, not an error.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from mlfit.catalog.loader import Target
from mlfit.catalog.schema import Container
from mlfit.catalog.units import format_duration
from mlfit.inputspec import InputSpec
from mlfit.options import EventFn, MeasureOptions
from mlfit.result import Check, ModelInfo, Provenance, TargetReport, ThreadComparison, Verdict
from mlfit.run.gate import model_info
from mlfit.run.venues import Job

# The comparison run only needs medians and a p99 estimate, not the main run's sample counts.
_COMPARISON_MIN_TIME_S = 1.0


def is_emulated(target: Target) -> bool:
    return target.profile.container is not None


def seen_cores(container: Container) -> int:
    """The CPUs a runtime sees inside the container, and sizes its pool from: the cpuset, else
    this host's (runtimes ignore CFS quotas)."""
    from mlfit.measure.host import affinity

    return container.cpus_allowed() or len(affinity())


def matched_threads(container: Container) -> int:
    """Threads that match the limit: the quota rounded up, capped by the CPUs seen."""
    seen = seen_cores(container)
    return max(1, min(math.ceil(container.cpu), seen)) if container.cpu is not None else seen


@dataclass(frozen=True)
class EmulatedRun:
    """One configuration's worker run under container limits, and the targets it serves."""

    targets: tuple[Target, ...]
    threads: int
    batch: int
    response: Any  # measure.protocol.WorkerResponse
    interrupted: Any = None  # result.ErrorInfo: Ctrl-C or SIGTERM stopped this run (or its comparison run)

    def label(self, runtime: str) -> str:
        """As RunResult.configurations names it: the (runtime, threads, batch) and the limits."""
        from mlfit.checks.container import describe_limits

        limits = describe_limits(self.response.emulation).split(";")[0] if self.response.emulation else "limits"
        return (f"{runtime}, {self.threads} thread{'s' if self.threads != 1 else ''}, batch {self.batch}, "
                f"emulated ({limits})")


def _limits(container: Container) -> Any:
    from mlfit.measure.cgroup import Limits

    return Limits(cpu=container.cpu, memory=int(container.memory) if container.memory else None,
                  cpuset=container.cpuset)


def _groups(targets: Sequence[Target], options: MeasureOptions) -> dict[tuple[Any, ...], list[Target]]:
    grouped: dict[tuple[Any, ...], list[Target]] = {}
    for target in targets:
        container = target.profile.container
        assert container is not None
        threads = options.threads or target.profile.threads
        batch = options.batch_size or target.profile.batch_size
        grouped.setdefault((container.model_dump_json(exclude={"source"}), threads, batch), []).append(target)
    return grouped


def _request(ref: Any, threads: int, batch: int, targets: Sequence[Target], inputs: InputSpec,
             options: MeasureOptions, scratch: str, comparison: bool = False) -> Any:
    from mlfit.measure.loadplan import plan_load
    from mlfit.measure.protocol import MeasureSettings, WorkerRequest
    from mlfit.run.plan import required_samples

    if comparison:  # medians and a p99 estimate are enough; no throughput phase, no load scenario
        settings = MeasureSettings(warmup_iterations=options.warmup, min_time_s=_COMPARISON_MIN_TIME_S,
                                   max_time_s=4 * _COMPARISON_MIN_TIME_S, min_samples=1)
    else:
        settings = MeasureSettings(
            warmup_iterations=options.warmup, min_time_s=options.min_time, max_time_s=options.max_time,
            min_samples=options.min_samples or required_samples(targets), batch_size=batch if batch > 1 else None,
            load=plan_load(list(targets), options.scenario, options.qps, options.find_max_qps,
                           options.batch_sizes, options.callers))
    return WorkerRequest(
        model_path=str(ref.path), runtime=ref.runtime.value, threads=threads, trust_model=options.trust_model,
        trust_types=list(options.trust_types), signature=options.signature, method=options.method,
        custom_op_libraries=list(options.custom_op_libraries), enable_arena=options.enable_arena,
        input_spec=inputs, settings=settings, scratch_dir=scratch)


def _run(ref: Any, container: Container, request: Any, options: MeasureOptions, on_event: EventFn | None,
         memory_limit: int, limit_source: str) -> Any:
    from mlfit.measure.launcher import Timeouts, run_worker

    timeouts = Timeouts.uniform(options.timeout) if options.timeout else Timeouts()
    return run_worker(request, ref.runtime.value, timeouts, on_event, memory_limit, limit_source,
                      container=_limits(container))


def measure_emulated(ref: Any, targets: Sequence[Target], planned: InputSpec, options: MeasureOptions,
                     on_event: EventFn | None, memory_limit: int, limit_source: str,
                     batch_from_targets: bool = False) -> list[EmulatedRun]:
    """One worker run per distinct (limits, threads, batch) among ``targets``, each in its cgroup.

    ``planned``: the inputs the gate planned (batch and integer ranges filled); with
    ``batch_from_targets`` each run feeds its own targets' batch, as the hosted runs do.

    Ctrl-C or SIGTERM stops here: the runs finished so far are kept, and the interrupted one is the
    last, carrying its error (kind "interrupted") and its partial timings."""
    from mlfit.measure.launcher import scratch_dir

    runs: list[EmulatedRun] = []
    for (_, threads, batch), group in _groups(targets, options).items():
        container = group[0].profile.container
        assert container is not None
        inputs = planned
        if batch_from_targets and planned.batch is not None:
            inputs = planned.model_copy(update={"batch": batch})
        with scratch_dir() as scratch:
            request = _request(ref, threads, batch, group, inputs, options, scratch)
            response = _run(ref, container, request, options, on_event, memory_limit, limit_source)
        stop = response.error if response.error is not None and response.error.kind == "interrupted" else None
        if response.error is None and options.threads is None:
            response, stop = _with_comparison(ref, container, threads, response, inputs, options, on_event,
                                              memory_limit, limit_source)
        runs.append(EmulatedRun(tuple(group), threads, batch, response, stop))
        if stop is not None:
            break
    return runs


def interrupted(runs: Sequence[EmulatedRun]) -> Any:
    """The error of the run Ctrl-C (or SIGTERM) stopped, or None."""
    return next((run.interrupted for run in runs if run.interrupted is not None), None)


def _with_comparison(ref: Any, container: Container, threads: int, response: Any, inputs: InputSpec,
                     options: MeasureOptions, on_event: EventFn | None, memory_limit: int,
                     limit_source: str) -> tuple[Any, Any]:
    """Measure the other of (runtime default, matched to the quota) and record both; returns the
    response and the comparison run's error when Ctrl-C stopped it (the main run is kept)."""
    from mlfit.measure.launcher import scratch_dir

    default, matched = seen_cores(container), matched_threads(container)
    if default == matched or threads not in (default, matched):
        return response, None
    other = matched if threads == default else default
    with scratch_dir() as scratch:
        request = _request(ref, other, 1, [], inputs, options, scratch, comparison=True)
        second = _run(ref, container, request, options, on_event, memory_limit, limit_source)
    if second.error is not None and second.error.kind == "interrupted":
        return response, second.error
    if second.error is not None or second.measurement is None or response.emulation is None:
        return response, None
    runs = {threads: response.measurement, other: second.measurement}
    compared = _comparison(default, matched, runs[default], runs[matched])
    emulation = response.emulation.model_copy(update={"threads_compared": compared})
    return response.model_copy(update={"emulation": emulation}), None


def _comparison(default: int, matched: int, at_default: Any, at_matched: Any) -> ThreadComparison:
    def p99(m: Any) -> float:
        return float(m.latency.p99 if m.latency.p99 is not None else m.latency.max)

    d50, m50 = float(at_default.latency.p50 or at_default.latency.mean), float(
        at_matched.latency.p50 or at_matched.latency.mean)
    d99, m99 = p99(at_default), p99(at_matched)
    if m99 < d99 * 0.9 and m50 <= d50 * 1.1:
        advice = (f"threads: set the runtime's intra-op threads to {matched} (matched to the CPU quota): p99 "
                  f"{format_duration(m99)} instead of {format_duration(d99)} with its default of {default}, "
                  "which spends the quota in bursts and then waits for the next period")
    elif d99 < m99 * 0.9 and d50 <= m50 * 1.1:
        advice = (f"threads: the runtime's default of {default} threads is faster here than {matched} matched to "
                  f"the quota (p99 {format_duration(d99)} vs {format_duration(m99)}); keep the default")
    else:
        advice = (f"threads: {default} (the runtime's default) and {matched} (matched to the quota) perform alike "
                  f"(p99 {format_duration(d99)} vs {format_duration(m99)}); setting {matched} saves the "
                  "quota for other work in the pod")
    return ThreadComparison(
        default_threads=default, matched_threads=matched, default_p50_s=d50, default_p99_s=d99,
        default_throughput=at_default.throughput.single_stream_per_s, matched_p50_s=m50, matched_p99_s=m99,
        matched_throughput=at_matched.throughput.single_stream_per_s, recommendation=advice)


def evaluate_emulated(run: EmulatedRun, model: ModelInfo, static: dict[str, Any] | None) -> list[TargetReport]:
    """Each target of ``run`` judged by the figures measured under its limits."""
    from mlfit.checks.container import oom_report
    from mlfit.checks.engine import evaluate

    response = run.response
    reports = []
    for target in run.targets:
        if response.error is not None and response.error.kind == "oom" and response.emulation is not None:
            reports.append(oom_report(target, response.emulation, response.error))
        elif response.error is not None:
            reports.append(_error_report(target, response.error))
        else:
            measurement = wall_rate_throughput(response.measurement)
            reports.append(evaluate(target, model, measurement, static, emulation=response.emulation))
    return reports


def wall_rate_throughput(measurement: Any) -> Any:
    """Single-stream throughput as inferences per wall second of the timed loop. Under a CFS quota
    the waits for the next period fall inside and between calls alike, so 1/mean latency would
    overstate what the container serves (by ~15% at 500m here); the wall rate counts every wait."""
    phase = measurement.contention.phase("measure") if measurement.contention is not None else None
    if phase is None or phase.wall_s <= 0 or measurement.latency.n < 2:
        return measurement
    rate = measurement.latency.n / phase.wall_s
    throughput = measurement.throughput.model_copy(update={"single_stream_per_s": rate})
    return measurement.model_copy(update={"throughput": throughput})


def _error_report(target: Target, error: Any) -> TargetReport:
    check = Check(metric="measurement", budget="-", verdict=Verdict.ERROR, provenance=Provenance.EMULATED,
                  method="measured under the container's limits", reason=error.message)
    return TargetReport(target=target.name, hardware=target.hardware.id, hardware_name=target.hardware.name,
                        source=target.source, verdict=Verdict.ERROR, checks=[check],
                        notes=[error.message + (f" ({error.hint})" if error.hint else "")])


@dataclass(frozen=True)
class Containers:
    """Each target under its container's limits (a cgroup per distinct limits, threads and batch):
    its figures are its own, labelled emulated, nothing projected."""

    provenance: Provenance = Provenance.EMULATED

    def measure(self, job: Job) -> list[EmulatedRun]:
        options, gate = job.options, job.gate
        batch_from_targets = job.inputs.batch is None and options.batch_size is None and gate.batch_free is not False
        return measure_emulated(job.ref, job.targets, gate.inputs, options, job.on_event, gate.memory_limit,
                                gate.limit_source, batch_from_targets)

    def reports(self, job: Job, measured: list[EmulatedRun]) -> list[TargetReport]:
        first = primary(measured)
        model = model_info(job.ref, first.inputs, first.inputs_used, first.outputs, job.gate.facts)
        return [report for run in measured for report in evaluate_emulated(run, model, job.gate.static)]


def primary(runs: Sequence[EmulatedRun]) -> Any:
    """The first run with a measurement (else the first): its inputs name the model's."""
    return next((r.response for r in runs if r.response.measurement is not None), runs[0].response)


_MEMORY_METRICS = ("memory.peak",)


def on_node(projected: TargetReport, emulated: TargetReport) -> TargetReport:
    """A container on named hardware: latency, cold start and throughput as projected to that
    hardware, memory (and an OOM kill) as measured under the container's limits."""
    from mlfit.result import worst

    memory = [c for c in emulated.checks if c.metric in _MEMORY_METRICS]
    checks = [c for c in projected.checks if c.metric not in _MEMORY_METRICS] + memory
    notes = [*projected.notes, *emulated.notes,
             "CPU figures are projected to the node's hardware without the CFS quota's waits; the throttling "
             "note above says how much the quota cost on this host"]
    verdict = worst([c.verdict for c in checks]) if checks else Verdict.PASS
    return projected.model_copy(update={"checks": checks, "notes": notes, "verdict": verdict,
                                        "emulation": emulated.emulation})
