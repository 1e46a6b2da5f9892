"""One model through every stage: safety -> (conversion) -> gate -> plan -> measure -> evaluate
-> assemble. The single path for one model (``mlfit.api``), many models (``mlfit.multi``) and
cluster tasks (``mlfit.cluster``); nothing below this module imports it.

Each stage is one function of about a screenful. A model that cannot be loaded or measured
gives a :class:`RunResult` carrying the error (never an exception), so many models can be
checked one after another.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from mlfit._version import __version__
from mlfit.catalog.loader import Target
from mlfit.errors import MlfitError, ModelError
from mlfit.formats.registry import get
from mlfit.inputspec import InputSpec
from mlfit.modelref import ModelRef, identify, sha256_of
from mlfit.options import STOPPED_KINDS, EventFn, MeasureOptions
from mlfit.result import ConfigurationRun, RunResult, TargetReport
from mlfit.run.gate import error_result, gate, may_overlap, model_info, now, settle
from mlfit.run.venues import Job, Measured, TargetHardware, ThisHost, Venue

# ---------------------------------------------------------------- entry points


def run_path(path: str | Path, targets: Sequence[Target], inputs: InputSpec, options: MeasureOptions,
             on_event: EventFn | None = None, venue: Venue[Measured] | None = None) -> RunResult:
    """Identify a model file and run it: the step of a many-model or cluster run, so a file that cannot
    be identified or measured becomes an error result and the other models go on."""
    try:
        ref = identify(path, options.runtime)
    except MlfitError as exc:
        return error_result(path, exc, phase="identify")
    try:
        return run_model(ref, targets, inputs, options, on_event, venue)
    except MlfitError as exc:
        return error_result(ref, exc)


def run_model(ref: ModelRef, targets: Sequence[Target], inputs: InputSpec, options: MeasureOptions,
              on_event: EventFn | None = None, venue: Venue[Measured] | None = None) -> RunResult:
    """Check the model is safe to load (or trusted), convert it when asked, then measure and check it.

    ``venue``: where it is measured (:mod:`mlfit.run.venues`); by default targets with container
    limits under them (emulated) and the others on this host, projected to their hardware. A
    cluster worker embodying the targets passes :class:`~mlfit.run.venues.TargetHardware`.

    Everything reads a private copy made first (:mod:`mlfit.safety.snapshot`): the checks read
    it and the worker loads it, so a file swapped into the model's place after the checks is
    never loaded. The result names the user's path.
    """
    import dataclasses

    from mlfit.safety.snapshot import private_copy

    try:
        with private_copy(ref.path, get(ref.format).copy_policy) as copy:
            _same_format(ref, copy)
            result = _run_private(dataclasses.replace(ref, path=copy), targets, inputs, options, on_event, venue)
    except ModelError as exc:
        return error_result(ref, exc, kind="load")
    return _named_as(result, ref, copy)


def _same_format(ref: ModelRef, copy: Path) -> None:
    """Refuse a model whose content changed kind between identification and the private copy
    (where the format says a second look is needed: no runtime of another kind would load what
    an ONNX file became)."""
    if not get(ref.format).recheck_after_copy:
        return
    from mlfit.formats import sniff

    found = sniff(copy)
    if found is not ref.format:
        raise ModelError(f"{ref.path}: the model changed while it was being checked (it was {ref.format.value}, "
                         f"now it is {found.value})", "check it again once nothing is writing to it")


def _named_as(result: RunResult, ref: ModelRef, copy: Path) -> RunResult:
    """``result`` with the private copy's path replaced by the user's everywhere it shows."""
    swaps = [(str(copy), str(ref.path)), (str(copy.parent), str(ref.path.parent))]

    def named(text: str) -> str:
        for private, public in swaps:
            text = text.replace(private, public)
        return text

    model = result.model.model_copy(update={"path": str(ref.path)})
    error = result.error
    if error is not None:
        error = error.model_copy(update={"message": named(error.message),
                                         "hint": named(error.hint) if error.hint else error.hint})
    targets = [t.model_copy(update={"notes": [named(n) for n in t.notes]}) for t in result.targets]
    return result.model_copy(update={"model": model, "error": error, "targets": targets})


def _run_private(ref: ModelRef, targets: Sequence[Target], inputs: InputSpec, options: MeasureOptions,
                 on_event: EventFn | None, venue: Venue[Measured] | None) -> RunResult:
    from mlfit.formats.registry import check_model

    try:
        check_model(ref.path, ref.format, options.trust_model, options.signature)
    except ModelError as exc:
        return error_result(ref, exc, kind="load")
    if not options.convert:
        return _measure_and_check(ref, targets, inputs, options, on_event, venue)
    from mlfit.convert import converted

    try:
        with converted(ref, targets, options, options.timeout or 600.0) as (measured, artefact):
            result = _measure_and_check(measured, targets, inputs, options, on_event, venue)
    except ModelError as exc:  # the conversion failed: a result with an error, like any load failure
        return error_result(ref, exc, kind="load")
    if artefact is None:
        return result
    note = f"measured the converted artefact: {artefact}"
    model = result.model.model_copy(update={"path": str(ref.path), "sha256": sha256_of(ref.path),
                                            "artefact": artefact})
    reports = [r.model_copy(update={"notes": [note, *r.notes]}) for r in result.targets]
    return result.model_copy(update={"model": model, "targets": reports})


def _measure_and_check(ref: ModelRef, targets: Sequence[Target], inputs: InputSpec, options: MeasureOptions,
                       on_event: EventFn | None, venue: Venue[Measured] | None) -> RunResult:
    created = now()
    on_target = isinstance(venue, TargetHardware)
    found = gate(ref, targets, inputs, options, created, overlap=may_overlap(ref, targets, options, on_target))
    if isinstance(found, RunResult):
        return found
    job = Job(ref=ref, targets=targets, inputs=inputs, options=options, on_event=on_event, gate=found,
              created=created)
    if venue is None and any(t.profile.container is not None for t in targets):
        return _with_containers(job)
    return _measured(job, venue or ThisHost())


def _measured(job: Job, venue: Venue[Measured]) -> RunResult:
    """Measure (every process), then judge (none), then one result."""
    measured = venue.measure(job)
    settled = settle(job.ref, job.gate, job.created)  # the analysis ran beside the worker's start-up
    if isinstance(settled, RunResult):
        return settled
    job = replace(job, gate=settled)
    return _assemble(job, measured, venue.reports(job, measured))


def _with_containers(job: Job) -> RunResult:
    """Some targets have container limits: those are measured under them (emulated), the others on
    this host as usual; one result with every target's report, in target order."""
    from mlfit.checks.fit import add_fit_check
    from mlfit.measure.host import host_info
    from mlfit.run.emulate import Containers, interrupted, is_emulated, on_node, primary

    ref, targets, gate_ = job.ref, job.targets, job.gate
    emulated = [t for t in targets if is_emulated(t)]
    # A container on named hardware (not this host) is also projected to that hardware: its CPU
    # figures come from the projection, its memory and OOM from the run under its limits.
    others = [t for t in targets if not is_emulated(t) or t.hardware.id != "host"]
    fits = dict(zip([t.name for t in targets], gate_.fits, strict=True))
    containers = Containers()
    runs = containers.measure(job.serving(emulated))
    first = primary(runs)
    stop = interrupted(runs)  # Ctrl-C or SIGTERM: keep what was measured, measure nothing more
    if others and stop is None:
        result = _measured(job.serving(others), ThisHost())
    else:
        model = model_info(ref, first.inputs, first.inputs_used, first.outputs, gate_.facts)
        fatal = stop or (first.error if all(r.response.error is not None and r.response.error.kind != "oom"
                                            for r in runs) else None)
        result = RunResult(mlfit_version=__version__, created=job.created, model=model,
                           host=host_info({"mlfit": __version__}), measurement=first.measurement,
                           analysis=gate_.static, error=fatal, complete=fatal is None)
    model = result.model if result.model.inputs else model_info(ref, first.inputs, first.inputs_used, first.outputs,
                                                                gate_.facts)
    by_name = {r.target: r for r in result.targets}
    for report in containers.reports(job.serving(emulated), runs):
        if report.target in by_name:  # projected to its node's hardware: keep the projection's CPU figures
            report = on_node(by_name[report.target], report)
        else:
            report = add_fit_check(report, fits[report.target])
            if gate_.notes:
                report = report.model_copy(update={"notes": [*gate_.notes, *report.notes]})
        by_name[report.target] = report
    configurations = list(result.configurations)
    for run in runs:
        label = run.label(ref.runtime.value)
        if not others and not configurations:  # the first configuration's measurement is RunResult.measurement
            measurement = None if run.response is first else run.response.measurement
        else:
            measurement = run.response.measurement
        configurations.append(ConfigurationRun(label=label, runtime=ref.runtime.value, threads=run.threads,
                                               batch=run.batch, targets=[t.name for t in run.targets],
                                               measurement=measurement))
        for target in run.targets:
            if target.hardware.id == "host":  # a container on named hardware keeps its projected configuration
                by_name[target.name] = by_name[target.name].model_copy(update={"configuration": label})
    ordered = [by_name[t.name] for t in targets if t.name in by_name]
    return result.model_copy(update={"targets": ordered, "model": model, "configurations": configurations})


def _assemble(job: Job, measured: Measured, reports: list[TargetReport]) -> RunResult:
    """One immutable result: the primary configuration's measurement as ``measurement``, every
    configuration in ``configurations`` (the others with their own measurement)."""
    primary = measured.runs[0].response
    model = model_info(job.ref, primary.inputs, primary.inputs_used, primary.outputs, job.gate.facts)
    configurations = [
        ConfigurationRun(label=run.config.label, runtime=run.config.runtime.value, threads=run.config.threads,
                         batch=run.config.batch, targets=list(run.config.targets),
                         measurement=None if i == 0 else run.response.measurement)
        for i, run in enumerate(measured.runs)
    ]
    error = measured.error
    complete = error is None or error.kind not in STOPPED_KINDS
    return RunResult(mlfit_version=__version__, created=job.created, model=model, host=measured.host,
                     measurement=primary.measurement, analysis=job.gate.static, calibration=measured.calibration,
                     node_profile=primary.node_profile, configurations=configurations, targets=reports,
                     error=error, complete=complete)
