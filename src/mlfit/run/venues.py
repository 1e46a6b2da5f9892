"""Where a measurement happens: the measure stage of :mod:`mlfit.run` as one protocol.

A :class:`Venue` measures a job (``measure``: every process the run starts, worker runs, the GPU
run and the host calibration included) and then judges the targets from what it measured
(``reports``: no process, only projection and checks). Its provenance says how its figures are
labelled. The venues:

- :class:`ThisHost`: measured here, projected to each target's hardware (a GPU target with a CUDA
  GPU here is measured on it);
- :class:`TargetHardware`: this machine is the targets' hardware (a cluster worker embodying
  them): figures measured on the target, nothing projected;
- :class:`mlfit.run.emulate.Containers`: under each target's container limits (a cgroup).
"""

from __future__ import annotations

import importlib.metadata
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Protocol, TypeVar

from mlfit._version import __version__
from mlfit.catalog.loader import Target, is_gpu_target
from mlfit.errors import MlfitError
from mlfit.inputspec import InputSpec
from mlfit.modelref import ModelRef
from mlfit.options import EventFn, MeasureOptions
from mlfit.records import Calibration
from mlfit.result import ErrorInfo, HostInfo, Measurement, ModelInfo, Provenance, TargetReport
from mlfit.run.configs import Configuration
from mlfit.run.evaluate import evaluate_targets, gpu_key
from mlfit.run.gate import Gate, model_info
from mlfit.run.plan import PlannedRun, plan_measurement

if TYPE_CHECKING:
    from mlfit.measure.launcher import Timeouts
    from mlfit.measure.protocol import WorkerRequest, WorkerResponse


@dataclass(frozen=True)
class Job:
    """What a venue measures: the model (its private copy), the targets it serves, the gate's
    findings and the user's options."""

    ref: ModelRef
    targets: Sequence[Target]
    inputs: InputSpec
    options: MeasureOptions
    on_event: EventFn | None
    gate: Gate
    created: str

    def serving(self, targets: Sequence[Target]) -> Job:
        """This job for some of its targets (their fit checks kept in step)."""
        fits = dict(zip([t.name for t in self.targets], self.gate.fits, strict=True))
        gate = replace(self.gate, fits=tuple(fits[t.name] for t in targets))
        return replace(self, targets=targets, gate=gate)


M = TypeVar("M")


class Venue(Protocol[M]):
    """Where a job is measured, and how its figures are labelled."""

    @property
    def provenance(self) -> Provenance:
        """How its figures are labelled in the reports."""
        ...

    def measure(self, job: Job) -> M:
        """Every process the job needs; Ctrl-C becomes an error in the answer, never an exception."""
        ...

    def reports(self, job: Job, measured: M) -> list[TargetReport]:
        """Each target's report from what was measured; starts no process."""
        ...


@dataclass(frozen=True)
class ConfigMeasured:
    """One configuration's worker run: the request sent and the answer."""

    config: Configuration
    request: WorkerRequest
    response: WorkerResponse


@dataclass(frozen=True)
class Measured:
    """Every configuration's run (the first is the primary), with the host facts, and what the
    projection needs that was measured beside them: the host calibration and GPU runs."""

    runs: tuple[ConfigMeasured, ...]
    host: HostInfo
    error: ErrorInfo | None  # the first run's error, or the first failed configuration's (named)
    calibration: Calibration | None = None
    calibration_note: str = ""  # why there is no calibration, when one was needed
    gpu: dict[str, Measurement | None] = field(default_factory=dict)  # by gpu_key; None: the GPU run failed

    @property
    def stopped(self) -> bool:
        """Nothing to judge (the primary run failed) or Ctrl-C: the run ends with the measurement."""
        interrupted = self.error is not None and self.error.kind == "interrupted"
        return self.runs[0].response.error is not None or interrupted


def timeouts_for(options: MeasureOptions) -> Timeouts:
    from mlfit.measure.launcher import Timeouts

    return Timeouts.uniform(options.timeout) if options.timeout else Timeouts()


def _worker_runs(job: Job, plan: Sequence[PlannedRun]) -> Measured:
    """One worker run (a subprocess) per configuration, in order; a crash, timeout or Ctrl-C
    becomes an error, not an exception, and stops the runs that remain."""
    from mlfit.measure.host import host_info
    from mlfit.measure.launcher import run_worker, scratch_dir
    from mlfit.measure.protocol import WorkerRequest

    ref, options, gate = job.ref, job.options, job.gate
    timeouts = timeouts_for(options)
    runs: list[ConfigMeasured] = []
    error: ErrorInfo | None = None
    for planned in plan:
        if len(plan) > 1 and job.on_event is not None:
            job.on_event({"event": "configuration", "text": planned.config.label})
        with scratch_dir() as scratch:
            settings = planned.settings
            if gate.pending is not None and not gate.pending.done():  # the worker waits before timing
                from mlfit.run.overlap import HOLD_FILE

                settings = settings.model_copy(update={"hold_path": str(Path(scratch) / HOLD_FILE)})
                gate.pending.release_when_done(Path(scratch) / HOLD_FILE)
            request = WorkerRequest(
                model_path=str(ref.path), runtime=ref.runtime.value, threads=planned.config.threads,
                trust_model=options.trust_model, trust_types=list(options.trust_types),
                signature=options.signature, method=options.method,
                custom_op_libraries=list(options.custom_op_libraries), enable_arena=options.enable_arena,
                input_spec=planned.inputs, settings=settings, scratch_dir=scratch,
            )
            response = run_worker(request, ref.runtime.value, timeouts, job.on_event, gate.memory_limit,
                                  gate.limit_source)
        if response.measurement is not None and response.timeline is not None:
            measurement = response.measurement
            response = response.model_copy(update={"measurement": measurement.model_copy(
                update={"memory_timeline": response.timeline})})
        runs.append(ConfigMeasured(config=planned.config, request=request, response=response))
        if response.error is not None:
            error = response.error
            if runs[0] is not runs[-1]:  # a later configuration failed: say which
                error = error.model_copy(update={"message": f"{planned.config.label} "
                                                            f"({', '.join(planned.config.targets)}): {error.message}"})
            break
    host = host_info({"mlfit": __version__})
    first = runs[0].response.measurement
    if first is not None:
        host = host.model_copy(update={"versions": {**host.versions, ref.runtime.value: first.runtime_version}})
    return Measured(runs=tuple(runs), host=host, error=error)


def _plan(job: Job, judged_here: bool) -> list[PlannedRun]:
    gate, options = job.gate, job.options
    batch_from_targets = job.inputs.batch is None and options.batch_size is None
    return plan_measurement(job.ref, job.targets, options, judged_here=judged_here, inputs=gate.inputs,
                            batch_from_targets=batch_from_targets, batch_free=gate.batch_free is not False,
                            roofline=bool(gate.static and gate.static.get("nodes")),
                            node_profile=not gate.too_large)


def _own(job: Job, run: ConfigMeasured) -> list[Target]:
    return [t for t in job.targets if t.name in run.config.targets]


def _judged(job: Job, by_name: dict[str, TargetReport]) -> list[TargetReport]:
    """The reports in target order, each with its fit check and the gate's notes. Targets whose
    configuration was not measured (an earlier run failed) get no report; the result carries that
    error."""
    from mlfit.checks.fit import add_fit_check

    judged = [(t, fit) for t, fit in zip(job.targets, job.gate.fits, strict=True) if t.name in by_name]
    reports = [add_fit_check(by_name[t.name], fit) for t, fit in judged]
    if job.gate.notes:
        reports = [r.model_copy(update={"notes": [*job.gate.notes, *r.notes]}) for r in reports]
    return reports


# A venue's evaluator: one measured configuration's own targets judged from its measurement.
Judge = Callable[[list[Target], ModelInfo, Measurement], list[TargetReport]]


def _reports(job: Job, measured: Measured, judge: Judge) -> list[TargetReport]:
    """Each measured configuration's targets judged by the venue's ``judge``, labelled with the
    configuration, against the model block of the primary run; in target order (:func:`_judged`)."""
    if measured.stopped:
        return []
    primary = measured.runs[0].response
    model = model_info(job.ref, primary.inputs, primary.inputs_used, primary.outputs, job.gate.facts)
    by_name: dict[str, TargetReport] = {}
    for run in measured.runs:
        if run.response.measurement is None:
            continue
        for report in judge(_own(job, run), model, run.response.measurement):
            by_name[report.target] = report.model_copy(update={"configuration": run.config.label})
    return _judged(job, by_name)


# ---------------------------------------------------------------- this host, projected to the targets


def cuda_available(host: HostInfo) -> bool:
    """A CUDA GPU is visible and onnxruntime-gpu is installed (checked without importing it)."""
    if not host.gpus:
        return False
    try:
        importlib.metadata.version("onnxruntime-gpu")
    except importlib.metadata.PackageNotFoundError:
        return False
    return True


def _measure_on_gpu(target: Target, request: WorkerRequest, job: Job) -> Measurement | None:
    """Measure the model with the target's GPU execution provider on this host's GPU."""
    from mlfit.measure.launcher import run_worker, scratch_dir

    batch = target.profile.batch_size
    settings = request.settings.model_copy(
        update={"batch_size": batch if batch > 1 else None, "profile_nodes": False, "profile_threads": []})
    with scratch_dir() as scratch:
        gpu_request = request.model_copy(update={"execution_provider": target.profile.execution_provider,
                                                 "scratch_dir": scratch, "settings": settings})
        response = run_worker(gpu_request, "onnxruntime-gpu", timeouts_for(job.options), job.on_event,
                              job.options.memory_limit)
    if response.error is not None and response.error.kind == "interrupted":
        raise KeyboardInterrupt  # Ctrl-C during the GPU run stops the whole check, as anywhere else
    if response.measurement is None or not response.measurement.execution_provider.startswith("CUDA"):
        return None
    return response.measurement


def _calibrated(job: Job, measured: Measured) -> Measured:
    """The host calibration (a subprocess, cached) where a CPU target is projected, and a GPU run
    per (provider, batch) where a GPU target meets a CUDA GPU here."""
    calibration: Calibration | None = None
    note = ""
    gpu: dict[str, Measurement | None] = {}
    judged = [(run, t) for run in measured.runs if run.response.measurement is not None for t in _own(job, run)]
    if any(not is_gpu_target(t) for _, t in judged):
        from mlfit.analysis.calibrate import load_or_calibrate

        try:
            data, _ = load_or_calibrate()
            calibration = Calibration.model_validate(data)
        except MlfitError as exc:
            note = f"no projection: {exc.one_line()}"
    if job.ref.runtime.value == "onnxruntime" and cuda_available(measured.host):
        for run, target in judged:
            if is_gpu_target(target) and gpu_key(target) not in gpu:
                gpu[gpu_key(target)] = _measure_on_gpu(target, run.request, job)
    return replace(measured, calibration=calibration, calibration_note=note, gpu=gpu)


@dataclass(frozen=True)
class ThisHost:
    """Measured on this host and projected to each target's hardware."""

    provenance: Provenance = Provenance.PROJECTED

    def measure(self, job: Job) -> Measured:
        measured = _worker_runs(job, _plan(job, judged_here=False))
        if measured.stopped:
            return measured
        try:
            return _calibrated(job, measured)
        except KeyboardInterrupt:  # Ctrl-C while calibrating or on the GPU: keep the host measurement
            message = "interrupted while measuring for the projection; the host measurement is kept"
            error = ErrorInfo(kind="interrupted", phase="projection", exit_code=130, message=message,
                              hint="the report is marked incomplete")
            return replace(measured, error=error)

    def reports(self, job: Job, measured: Measured) -> list[TargetReport]:
        def projected(targets: list[Target], model: ModelInfo, measurement: Measurement) -> list[TargetReport]:
            node_profile = measured.runs[0].response.node_profile  # the primary run's per-node profile
            return evaluate_targets(targets, model, measurement, job.gate.static, node_profile, measured.host,
                                    measured.calibration, measured.calibration_note, measured.gpu, job.options.truth)

        return _reports(job, measured, projected)


@dataclass(frozen=True)
class TargetHardware:
    """This machine is the targets' hardware (a cluster worker embodying them): the figures are
    the targets' own, judged as measured, nothing projected; load scenarios run per configuration."""

    provenance: Provenance = Provenance.MEASURED_ON_TARGET

    def measure(self, job: Job) -> Measured:
        return _worker_runs(job, _plan(job, judged_here=True))

    def reports(self, job: Job, measured: Measured) -> list[TargetReport]:
        from mlfit.checks.engine import evaluate

        def as_measured(targets: list[Target], model: ModelInfo, measurement: Measurement) -> list[TargetReport]:
            return [evaluate(t, model, measurement, job.gate.static, on_target=True) for t in targets]

        return _reports(job, measured, as_measured)
