"""One model through every stage: safety -> (conversion) -> gate -> plan -> measure -> evaluate
-> assemble. The single path for one model (``mlfit.api``), many models (``mlfit.multi``) and
cluster tasks (``mlfit.cluster``); nothing below this module imports it.

Each stage is one function of about a screenful. A model that cannot be loaded or measured
gives a :class:`RunResult` carrying the error (never an exception), so many models can be
checked one after another.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlfit._version import __version__
from mlfit.catalog.loader import Target
from mlfit.catalog.schema import MIN_SAMPLES, Percentile, Runtime
from mlfit.errors import ConfigError, ExitCode, MlfitError, ModelError
from mlfit.formats import ModelFormat
from mlfit.formats.registry import get
from mlfit.inputspec import InputSpec
from mlfit.modelref import ModelRef, identify, sha256_of, size_of
from mlfit.options import STOPPED_KINDS, EventFn, MeasureOptions
from mlfit.records import Calibration
from mlfit.result import Check, ConfigurationRun, ErrorInfo, ModelInfo, RunResult, TensorInfo
from mlfit.run.configs import Configuration, plan_configurations

if TYPE_CHECKING:
    from mlfit.model.facts import ModelFacts


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S%z")


# ---------------------------------------------------------------- results without a measurement


def error_result(model: str | Path | ModelRef, exc: MlfitError, created: str | None = None,
                 kind: str | None = None, phase: str = "static") -> RunResult:
    """A result that carries an error instead of a measurement, so a report can list the model
    (and a check of several models goes on with the others).

    ``kind`` defaults to "input" for a usage error (exit 2) and "load" otherwise."""
    path = model.path if isinstance(model, ModelRef) else Path(model).resolve()
    fmt = model.format.value if isinstance(model, ModelRef) else "unknown"
    runtime = model.runtime.value if isinstance(model, ModelRef) else "unknown"
    try:
        size = size_of(path)
        # A refused giant is named by path and size: hashing gigabytes would cost seconds for nothing.
        digest = sha256_of(path) if size < 2**31 else ""
    except (OSError, MlfitError):  # a FIFO, a device, a link out of a folder: named by path, never read
        digest, size = "", 0
    info = ModelInfo(path=str(path), sha256=digest, format=fmt, runtime=runtime, size_bytes=size,
                     artefact=None)
    notes = "".join(f"; {note}" for note in model.notes) if isinstance(model, ModelRef) else ""
    kind = kind or ("input" if exc.exit_code == ExitCode.USAGE else "load")
    error = ErrorInfo(kind=kind, phase=phase, message=exc.message + notes, hint=exc.hint,
                      exit_code=int(exc.exit_code))
    return RunResult(mlfit_version=__version__, created=created or _now(), model=info, error=error)


def model_info(ref: ModelRef, inputs: list[TensorInfo] | None = None, used: list[TensorInfo] | None = None,
               outputs: list[TensorInfo] | None = None, facts: ModelFacts | None = None) -> ModelInfo:
    """The result's model block; hash and size from the run's facts (read once in the gate) when given."""
    known = facts is not None and facts.ref.path == ref.path
    digest = facts.sha256 if facts is not None and known else sha256_of(ref.path)
    size = facts.size_bytes if facts is not None and known else size_of(ref.path)
    return ModelInfo(path=str(ref.path), sha256=digest, format=ref.format.value, runtime=ref.runtime.value,
                     size_bytes=size, inputs=inputs or [], inputs_used=used or [], outputs=outputs or [])


def static_facts(ref: ModelRef, inputs: InputSpec | None = None,
                 shapes: dict[str, list[int]] | None = None) -> dict[str, Any] | None:
    """File facts read without running anything (ONNX and TFLite), with the input spec's dims applied
    (``shapes``: the concrete input shapes the run resolved, batch included)."""
    if ref.format is ModelFormat.ONNX:
        from mlfit.analysis.graph import analyze_onnx

        spec = inputs or InputSpec()
        return analyze_onnx(ref.path, dims=spec.dims, shapes={**(shapes or {}), **spec.shapes},
                            values=spec.values)
    if ref.format is ModelFormat.TFLITE:  # the same structure from the flatbuffer: the same device model
        from mlfit.analysis.tflite import analyze_tflite

        return analyze_tflite(ref.path)
    return None


def _no_structure_note(ref: ModelRef) -> str:
    """Said where a model's graph is not read statically: its projection cannot use the device model."""
    converts = ", ".join(sorted({c.value for c in get(ref.format).converters}))
    how = f"; --convert (to {converts}) measures its conversion, whose structure is read" if converts else ""
    return (f"no static structure: mlfit does not read a {ref.format.value} model's graph without running it, so "
            f"CPU projections scale this host's whole-model time (a wide band) instead of the device model"
            f"{how}")


# ---------------------------------------------------------------- entry points


def run_path(path: str | Path, targets: Sequence[Target], inputs: InputSpec, options: MeasureOptions,
             on_event: EventFn | None = None, on_target: bool = False) -> RunResult:
    """Identify a model file and run it: the step of a many-model or cluster run, so a file that cannot
    be identified or measured becomes an error result and the other models go on."""
    try:
        ref = identify(path, options.runtime)
    except MlfitError as exc:
        return error_result(path, exc, phase="identify")
    try:
        return run_model(ref, targets, inputs, options, on_event, on_target)
    except MlfitError as exc:
        return error_result(ref, exc)


def run_model(ref: ModelRef, targets: Sequence[Target], inputs: InputSpec, options: MeasureOptions,
              on_event: EventFn | None = None, on_target: bool = False) -> RunResult:
    """Check the model is safe to load (or trusted), convert it when asked, then measure and check it.

    ``on_target``: this machine IS the targets' hardware (a cluster worker embodying them),
    so the figures are labelled measured-on-target instead of being projected.

    Everything reads a private copy made first (:mod:`mlfit.safety.snapshot`): the checks read
    it and the worker loads it, so a file swapped into the model's place after the checks is
    never loaded. The result names the user's path.
    """
    import dataclasses

    from mlfit.safety.snapshot import private_copy

    try:
        with private_copy(ref.path, get(ref.format).copy_policy) as copy:
            _same_format(ref, copy)
            result = _run_private(dataclasses.replace(ref, path=copy), targets, inputs, options, on_event,
                                  on_target)
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
                 on_event: EventFn | None, on_target: bool) -> RunResult:
    from mlfit.formats.registry import check_model

    try:
        check_model(ref.path, ref.format, options.trust_model, options.signature)
    except ModelError as exc:
        return error_result(ref, exc, kind="load")
    if not options.convert:
        return _measure_and_check(ref, targets, inputs, options, on_event, on_target)
    from mlfit.convert import converted

    try:
        with converted(ref, targets, options, options.timeout or 600.0) as (measured, artefact):
            result = _measure_and_check(measured, targets, inputs, options, on_event, on_target)
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
                       on_event: EventFn | None, on_target: bool) -> RunResult:
    created = _now()
    emulated = not on_target and any(t.profile.container is not None for t in targets)
    gate = _gate(ref, targets, inputs, options, created, overlap=_may_overlap(ref, targets, options, on_target))
    if isinstance(gate, RunResult):
        return gate
    if emulated:
        from mlfit.run.emulate import with_emulated

        return with_emulated(ref, targets, inputs, options, on_event, gate, created, _hosted)
    return _hosted(ref, targets, inputs, options, on_event, on_target, gate, created)


def _hosted(ref: ModelRef, targets: Sequence[Target], inputs: InputSpec, options: MeasureOptions,
            on_event: EventFn | None, on_target: bool, gate: Gate, created: str) -> RunResult:
    """Measure on this host and evaluate each target (projected, or measured on the target)."""
    batch_from_targets = inputs.batch is None and options.batch_size is None
    plan = plan_measurement(ref, targets, options, on_target, gate.inputs, batch_from_targets,
                            gate.batch_free is not False, roofline=bool(gate.static and gate.static.get("nodes")),
                            node_profile=not gate.too_large)
    measured = _measure(ref, plan, options, gate, on_event)
    settled = _settle(ref, gate, created)  # the analysis ran beside the worker's start-up
    if isinstance(settled, RunResult):
        return settled
    gate = settled
    stopped = measured.error is not None and measured.error.kind == "interrupted"
    if measured.runs[0].response.error is not None or stopped:  # nothing to judge, or Ctrl-C: stop here
        return _assemble(ref, gate, measured, [], None, created)
    try:
        reports, calibration = _evaluate(ref, targets, gate, measured, options, on_event, on_target)
    except KeyboardInterrupt:  # Ctrl-C while calibrating or projecting: keep the measurement
        message = "interrupted while projecting to the targets; the host measurement is kept"
        error = ErrorInfo(kind="interrupted", phase="projection", exit_code=130, message=message,
                          hint="the report is marked incomplete")
        return _assemble(ref, gate, replace(measured, error=error), [], None, created)
    return _assemble(ref, gate, measured, reports, calibration, created)


# ---------------------------------------------------------------- stage: gate (static pre-checks)


@dataclass(frozen=True)
class Gate:
    """What the static pre-checks found: the model's static size, notes for the report, the
    static graph facts, each target's fit check, and the worker's memory ceiling."""

    model_bytes: int
    notes: tuple[str, ...]
    static: dict[str, Any] | None
    fits: tuple[Check | None, ...]
    memory_limit: int
    limit_source: str
    inputs: InputSpec  # the user's, with the batch and the ranges read from the model (mlfit.plan.inputs)
    facts: ModelFacts | None = None  # the model as read once (hash, size, declared inputs)
    batch_free: bool | None = None  # the model's leading dims are free (None: the file does not say)
    too_large: bool = False  # past the static-analysis bounds: no analysis, no per-node profile
    pending: Any = None  # run.overlap.PendingStatic: the analysis still running beside the worker


def _may_overlap(ref: ModelRef, targets: Sequence[Target], options: MeasureOptions, on_target: bool) -> bool:
    """Whether the static analysis may run beside the worker (:mod:`mlfit.run.overlap`): nothing
    the worker is asked depends on it (no roofline-only GPU target, no emulated container, not
    this host as the target) and the default deadlines leave the worker's wait room."""
    from mlfit.catalog.loader import is_gpu_target

    return (ref.format is ModelFormat.ONNX and not on_target and options.timeout is None and bool(targets)
            and not any(is_gpu_target(t) or t.profile.container is not None for t in targets))


def _settle(ref: ModelRef, gate: Gate, created: str) -> Gate | RunResult:
    """The gate with the analysis that ran beside the worker: its facts, or its error result."""
    from mlfit.formats.onnx.proto import StaticTooLarge

    if gate.pending is None:
        return gate
    try:
        static = gate.pending.result()
    except StaticTooLarge as exc:
        return replace(gate, pending=None, static=None, too_large=True,
                       notes=(*gate.notes, f"static analysis skipped: {exc.one_line()}"))
    except ModelError as exc:
        return error_result(ref, exc, created, kind="load")
    return replace(gate, pending=None, static=static)


def _gate(ref: ModelRef, targets: Sequence[Target], inputs: InputSpec, options: MeasureOptions,
          created: str, overlap: bool = False) -> Gate | RunResult:
    """Parent-side refusals and static verdicts, before any worker is spawned: a result when the
    run ends here (refused, or decided statically), else what the later stages need."""
    from mlfit.checks.fit import fit_check, refuse_if_too_big, static_target_report
    from mlfit.measure.host import default_memory_limit
    from mlfit.model.facts import model_facts

    try:  # the model read once: the format's refusals, its static size, declared inputs, hash
        facts = model_facts(ref, options.custom_op_libraries, options.signature)
    except ModelError as exc:
        return error_result(ref, exc, created, kind="load")
    model_bytes, safety_notes = facts.static_bytes, list(facts.notes)
    try:  # inputs before any worker: batch from the targets, integer ranges from the graph, refusals
        from mlfit.plan.inputs import plan_inputs

        planned = plan_inputs(facts.declared, targets, inputs, options.batch_size)
    except ConfigError as exc:
        return error_result(ref, exc, created, kind="input")
    inputs, safety_notes = planned.spec, [*safety_notes, *planned.notes]
    from mlfit.formats.onnx.proto import StaticTooLarge

    too_large, pending = False, None
    try:
        if overlap:  # the bounds now (they decide the node profile), the analysis beside the worker
            from mlfit.formats.onnx.proto import check_static_bounds
            from mlfit.run.overlap import PendingStatic

            check_static_bounds(ref.path)
            static, spec, shapes = None, inputs, planned.shapes
            pending = PendingStatic(lambda: static_facts(ref, spec, shapes))
        else:
            static = static_facts(ref, inputs, planned.shapes)
    except StaticTooLarge as exc:  # skipped with a note: the worker measures it under its own limits
        static, too_large = None, True
        safety_notes = [*safety_notes, f"static analysis skipped: {exc.one_line()}; per-node profiling skipped "
                        "too (its runtime trace grows with the node count: 300 000 nodes took 9 GB)"]
    except ModelError as exc:
        return error_result(ref, exc, created, kind="load")
    if static is None and not too_large:
        safety_notes = [*safety_notes, _no_structure_note(ref)]
    fits = tuple(fit_check(t, model_bytes, ref.format.value) for t in targets)
    if targets and all(fits):
        # The parameters alone exceed every target's memory: the verdict is static, nothing is loaded.
        if pending is not None:
            try:
                static = pending.result()
            except StaticTooLarge:
                static = None
            except ModelError as exc:
                return error_result(ref, exc, created, kind="load")
        reports = [static_target_report(t, c) for t, c in zip(targets, fits, strict=True) if c]
        return RunResult(mlfit_version=__version__, created=created, model=model_info(ref, facts=facts),
                         analysis=static, targets=reports)
    try:
        refuse_if_too_big(model_bytes, options.memory_limit)
    except ModelError as exc:
        return error_result(ref, exc, created, kind="memory")
    memory_limit, limit_source = options.memory_limit, "--memory-limit"
    if memory_limit is None:
        memory_limit = default_memory_limit()
        limit_source = "the default, 90% of this host's free memory"
    return Gate(model_bytes=model_bytes, notes=(*ref.notes, *safety_notes), static=static, fits=fits, facts=facts,
                memory_limit=memory_limit, limit_source=limit_source, inputs=inputs,
                batch_free=planned.batch_free, too_large=too_large, pending=pending)


# ---------------------------------------------------------------- stage: plan


def required_samples(targets: Sequence[Target]) -> int:
    needed = [MIN_SAMPLES[p] for t in targets for p in t.profile.budgets.latency]
    return max(needed, default=MIN_SAMPLES[Percentile.P99])


def profile_threads(targets: Sequence[Target], configs: Sequence[Configuration], options: MeasureOptions,
                    cores: int) -> list[int]:
    """Thread counts for node profiling: 1, every configuration's, and each target's (capped at
    the usable cores), so the projection can fit thread scaling per node."""
    if not targets:
        return []
    wanted = options.extra.get("profile_threads")
    if wanted is not None:
        return sorted({int(t) for t in wanted})
    return sorted({1, *(c.threads for c in configs), *(max(1, min(t.profile.threads, cores)) for t in targets)})


# A run whose targets do not use this host's latency samples (GPU targets projected by the
# roofline) times single inferences only this long: its memory phases and cold start are what count.
HOST_FREE_MIN_TIME_S = 0.25


@dataclass(frozen=True)
class PlannedRun:
    """One worker run: a deployment configuration and what the worker measures for it."""

    config: Configuration
    settings: Any  # measure.protocol.MeasureSettings
    inputs: InputSpec


def plan_measurement(ref: ModelRef, targets: Sequence[Target], options: MeasureOptions, on_target: bool,
                     inputs: InputSpec | None = None, batch_from_targets: bool = False,
                     batch_free: bool = True, roofline: bool = False, node_profile: bool = True) -> list[PlannedRun]:
    """One run per deployment configuration (:mod:`mlfit.run.configs`); the first is the primary.

    Node profiling (for projection) runs once, in the primary run, at every thread count the
    configurations and targets use. Load scenarios run in each configuration for its own targets
    where this host is the targets' hardware (their figures are judged); elsewhere once, in the
    primary run, as host figures shown beside the verdicts and never judged against a budget.
    When the model's free batch dim is filled from the targets (no --batch, --dim or
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
    counts = [] if on_target else profile_threads(targets, configs, options, cores)
    by_name = {t.name: t for t in targets}
    runs: list[PlannedRun] = []
    for i, config in enumerate(configs):
        own = [by_name[name] for name in config.targets]
        if on_target or i == 0:
            load = plan_load(own if on_target else targets, options.scenario, options.qps, options.find_max_qps,
                             options.batch_sizes, options.callers)
        else:
            load = ScenarioSettings()
        profile = node_profile and i == 0 and bool(counts) and ref.runtime is Runtime.ONNXRUNTIME
        host_free = roofline and not on_target and bool(own) and all(is_gpu_target(t) for t in own)
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


# ---------------------------------------------------------------- stage: measure


@dataclass(frozen=True)
class ConfigMeasured:
    """One configuration's worker run: the request sent and the answer."""

    config: Configuration
    request: Any  # measure.protocol.WorkerRequest
    response: Any  # measure.protocol.WorkerResponse


@dataclass(frozen=True)
class Measured:
    """Every configuration's run (the first is the primary), with the host facts."""

    runs: tuple[ConfigMeasured, ...]
    host: Any  # result.HostInfo
    timeouts: Any  # measure.launcher.Timeouts
    error: ErrorInfo | None  # the first run's error, or the first failed configuration's (named)


def _measure(ref: ModelRef, plan: Sequence[PlannedRun], options: MeasureOptions, gate: Gate,
             on_event: EventFn | None) -> Measured:
    """One worker run (a subprocess) per configuration, in order; a crash, timeout or Ctrl-C
    becomes an error, not an exception, and stops the runs that remain."""
    from mlfit.measure.host import host_info
    from mlfit.measure.launcher import Timeouts, run_worker, scratch_dir
    from mlfit.measure.protocol import WorkerRequest

    timeouts = Timeouts.uniform(options.timeout) if options.timeout else Timeouts()
    runs: list[ConfigMeasured] = []
    error: ErrorInfo | None = None
    for planned in plan:
        if len(plan) > 1 and on_event is not None:
            on_event({"event": "configuration", "text": planned.config.label})
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
            response = run_worker(request, ref.runtime.value, timeouts, on_event, gate.memory_limit,
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
    return Measured(runs=tuple(runs), host=host, timeouts=timeouts, error=error)


# ---------------------------------------------------------------- stage: evaluate


def _evaluate(ref: ModelRef, targets: Sequence[Target], gate: Gate, measured: Measured, options: MeasureOptions,
              on_event: EventFn | None, on_target: bool) -> tuple[list[Any], Calibration | None]:
    """Every target's report from its own configuration's measurement: measured on the target,
    or projected from this host (run.evaluate). Targets whose configuration was not measured
    (an earlier run failed) get no report; the result carries that error."""
    from mlfit.checks.fit import add_fit_check

    primary = measured.runs[0].response
    model = model_info(ref, primary.inputs, primary.inputs_used, primary.outputs, gate.facts)
    by_name: dict[str, Any] = {}
    calibration: Calibration | None = None
    for run in measured.runs:
        if run.response.measurement is None:
            continue
        own = [t for t in targets if t.name in run.config.targets]
        if on_target:
            from mlfit.checks.engine import evaluate

            reports = [evaluate(t, model, run.response.measurement, gate.static, on_target=True) for t in own]
        else:
            from mlfit.run.evaluate import evaluate_targets

            reports, used = evaluate_targets(ref, own, model, run.response.measurement, gate.static,
                                             primary.node_profile, measured.host, run.request, measured.timeouts,
                                             on_event, options.memory_limit, options.truth)
            calibration = calibration or used
        for report in reports:
            by_name[report.target] = report.model_copy(update={"configuration": run.config.label})
    judged = [(t, fit) for t, fit in zip(targets, gate.fits, strict=True) if t.name in by_name]
    reports = [add_fit_check(by_name[t.name], fit) for t, fit in judged]
    if gate.notes:
        reports = [r.model_copy(update={"notes": [*gate.notes, *r.notes]}) for r in reports]
    return reports, calibration


# ---------------------------------------------------------------- stage: assemble


def _assemble(ref: ModelRef, gate: Gate, measured: Measured, reports: list[Any],
              calibration: Calibration | None, created: str) -> RunResult:
    """One immutable result: the primary configuration's measurement as ``measurement``, every
    configuration in ``configurations`` (the others with their own measurement)."""
    primary = measured.runs[0].response
    model = model_info(ref, primary.inputs, primary.inputs_used, primary.outputs, gate.facts)
    configurations = [
        ConfigurationRun(label=run.config.label, runtime=run.config.runtime.value, threads=run.config.threads,
                         batch=run.config.batch, targets=list(run.config.targets),
                         measurement=None if i == 0 else run.response.measurement)
        for i, run in enumerate(measured.runs)
    ]
    error = measured.error
    complete = error is None or error.kind not in STOPPED_KINDS
    return RunResult(mlfit_version=__version__, created=created, model=model, host=measured.host,
                     measurement=primary.measurement, analysis=gate.static, calibration=calibration,
                     node_profile=primary.node_profile, configurations=configurations, targets=reports,
                     error=error, complete=complete)
