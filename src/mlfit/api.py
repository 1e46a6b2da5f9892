"""The public Python API. The CLI is a thin layer over these functions.

>>> result = mlfit.check("model.onnx", targets=["edge"])      # doctest: +SKIP
>>> assert result.passed, result.verdict                          # doctest: +SKIP
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlfit import __version__
from mlfit.catalog.loader import Target, resolve_target
from mlfit.catalog.schema import MIN_SAMPLES, Percentile, Runtime
from mlfit.errors import ConfigError, MlfitError, ModelError
from mlfit.formats import ModelFormat, sniff, suffix_mismatch
from mlfit.inputspec import InputSpec
from mlfit.result import ErrorInfo, ModelInfo, Report, RunResult, TensorInfo

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


# Batched throughput is measured at this batch for scikit-learn models when no target asks
# for a batch: single-row latency alone misjudges them (docs/formats.md).
SKLEARN_THROUGHPUT_BATCH = 256


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    for file in files:
        if path.is_dir():
            digest.update(str(file.relative_to(path)).encode())
        with file.open("rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


def size_of(path: Path) -> int:
    if path.is_dir():
        return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
    return path.stat().st_size


@dataclass(frozen=True)
class ModelRef:
    path: Path
    format: ModelFormat
    runtime: Runtime
    notes: tuple[str, ...] = ()


def identify(model: str | Path, runtime: Runtime | None = None) -> ModelRef:
    """Check the path, recognise the format from content, pick the runtime."""
    path = Path(model)
    if not path.exists():
        raise ConfigError(f"model '{model}' does not exist", "check the path")
    found = sniff(path)
    notes = tuple(n for n in [suffix_mismatch(path, found)] if n)
    return ModelRef(path=path.resolve(), format=found, runtime=runtime or found.runtime, notes=notes)


def static_facts(ref: ModelRef, inputs: InputSpec | None = None) -> dict[str, Any] | None:
    """File facts read without running anything (ONNX today), with the input spec's dims applied."""
    if ref.format is ModelFormat.ONNX:
        from mlfit.analysis.graph import analyze_onnx

        spec = inputs or InputSpec()
        return analyze_onnx(ref.path, dims=spec.dims, shapes=spec.shapes)
    return None


def _required_samples(targets: Sequence[Target]) -> int:
    needed = [MIN_SAMPLES[p] for t in targets for p in t.profile.budgets.latency]
    return max(needed, default=MIN_SAMPLES[Percentile.P99])


def _threads(targets: Sequence[Target], options: MeasureOptions) -> int:
    from mlfit.measure.host import usable_cores

    cores = usable_cores()
    if options.threads is not None:
        return options.threads
    wanted = max((t.profile.threads for t in targets), default=cores)
    return max(1, min(wanted, cores))


def _profile_threads(targets: Sequence[Target], threads: int, options: MeasureOptions) -> list[int]:
    """Thread counts for node profiling: 1, the measured count, and each target's (capped at
    the usable cores), so the projection can fit thread scaling per node."""
    from mlfit.measure.host import usable_cores

    if not targets:
        return []
    wanted = options.extra.get("profile_threads")
    if wanted is not None:
        return sorted({int(t) for t in wanted})
    cores = usable_cores()
    return sorted({1, threads, *(max(1, min(t.profile.threads, cores)) for t in targets)})


def _model_info(ref: ModelRef, inputs: list[TensorInfo] | None = None, used: list[TensorInfo] | None = None,
                outputs: list[TensorInfo] | None = None) -> ModelInfo:
    return ModelInfo(path=str(ref.path), sha256=sha256_of(ref.path), format=ref.format.value,
                     runtime=ref.runtime.value, size_bytes=size_of(ref.path), inputs=inputs or [],
                     inputs_used=used or [], outputs=outputs or [])


# Error kinds of a worker the parent had to stop, or that died: the result is incomplete.
STOPPED_KINDS = frozenset({"timeout", "memory", "crash", "interrupted"})


def error_result(model: str | Path | ModelRef, exc: MlfitError, created: str | None = None,
                 kind: str = "load") -> RunResult:
    """A result that carries an error instead of a measurement, so a report can list the model
    (and a check of several models goes on with the others)."""
    path = model.path if isinstance(model, ModelRef) else Path(model)
    fmt = model.format.value if isinstance(model, ModelRef) else "unknown"
    runtime = model.runtime.value if isinstance(model, ModelRef) else ""
    try:
        size = size_of(path)
        # A refused giant is named by path and size: hashing gigabytes would cost seconds for nothing.
        digest = sha256_of(path) if size < 2**31 else ""
    except OSError:
        digest, size = "", 0
    info = ModelInfo(path=str(path), sha256=digest, format=fmt, runtime=runtime, size_bytes=size,
                     artefact=None)
    notes = "".join(f"; {note}" for note in model.notes) if isinstance(model, ModelRef) else ""
    error = ErrorInfo(kind=kind, phase="static", message=exc.message + notes, hint=exc.hint,
                      exit_code=int(exc.exit_code))
    return RunResult(mlfit_version=__version__, created=created or time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                     model=info, error=error)


def measure_and_check(ref: ModelRef, targets: Sequence[Target], inputs: InputSpec, options: MeasureOptions,
                      on_event: EventFn | None = None, on_target: bool = False) -> RunResult:
    """Check the model is safe to load (or trusted), convert it when asked, then measure and check it.

    ``on_target``: this machine IS the targets' hardware (a cluster worker embodying them),
    so the figures are labelled measured-on-target instead of being projected.

    A model that cannot be loaded, or that dies in the worker, gives a result with an error
    (never an exception), so several models can be checked one after another.
    """
    from mlfit.safety import check_model

    try:
        check_model(ref.path, ref.format, options.trust_model, options.signature)
    except ModelError as exc:
        return error_result(ref, exc)
    if not options.convert:
        return _measure_and_check(ref, targets, inputs, options, on_event, on_target)
    from mlfit.convert import converted

    try:
        with converted(ref, targets, options, options.timeout or 600.0) as (measured, artefact):
            result = _measure_and_check(measured, targets, inputs, options, on_event, on_target)
    except ModelError as exc:  # the conversion failed: a result with an error, like any load failure
        return error_result(ref, exc)
    if artefact is None:
        return result
    note = f"measured the converted artefact: {artefact}"
    model = result.model.model_copy(update={"path": str(ref.path), "sha256": sha256_of(ref.path),
                                            "artefact": artefact})
    reports = [r.model_copy(update={"notes": [note, *r.notes]}) for r in result.targets]
    return result.model_copy(update={"model": model, "targets": reports})


def _measure_and_check(ref: ModelRef, targets: Sequence[Target], inputs: InputSpec, options: MeasureOptions,
                       on_event: EventFn | None = None, on_target: bool = False) -> RunResult:
    """Measure ``ref`` once in a worker and evaluate every target's budgets (after the static pre-checks)."""
    from mlfit import precheck
    from mlfit.measure.host import host_info
    from mlfit.measure.launcher import Timeouts, run_worker, scratch_dir
    from mlfit.measure.loadplan import plan_load
    from mlfit.measure.protocol import MeasureSettings, WorkerRequest

    created = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    try:
        model_bytes, safety_notes = precheck.validate_model(ref, options.custom_op_libraries)
        static = static_facts(ref, inputs)
    except ModelError as exc:
        return error_result(ref, exc, created)
    fits = [precheck.fit_check(t, model_bytes, ref.format.value) for t in targets]
    if targets and all(fits):
        # The parameters alone exceed every target's memory: the verdict is static, nothing is loaded.
        static_reports = [precheck.static_target_report(t, c) for t, c in zip(targets, fits, strict=True) if c]
        return RunResult(mlfit_version=__version__, created=created, model=_model_info(ref), analysis=static,
                         targets=static_reports)
    try:
        precheck.refuse_if_too_big(model_bytes, options.memory_limit)
    except ModelError as exc:
        return error_result(ref, exc, created, kind="memory")
    memory_limit, limit_source = options.memory_limit, "--memory-limit"
    if memory_limit is None:
        memory_limit = precheck.default_memory_limit()
        limit_source = "the default, 90% of this host's free memory"
    threads = _threads(targets, options)
    batch = options.batch_size or max((t.profile.batch_size for t in targets), default=1)
    if batch <= 1 and not options.batch_size and ref.runtime is Runtime.SKLEARN:
        batch = SKLEARN_THROUGHPUT_BATCH
    profile_threads = [] if on_target else _profile_threads(targets, threads, options)
    settings = MeasureSettings(
        warmup_iterations=options.warmup, min_time_s=options.min_time, max_time_s=options.max_time,
        min_samples=options.min_samples or _required_samples(targets), batch_size=batch if batch > 1 else None,
        load=plan_load(targets, options.scenario, options.qps, options.find_max_qps, options.batch_sizes,
                       options.callers),
        profile_nodes=bool(profile_threads) and ref.runtime is Runtime.ONNXRUNTIME,
        profile_threads=profile_threads,
    )
    with scratch_dir() as scratch:
        request = WorkerRequest(
            model_path=str(ref.path), runtime=ref.runtime.value, threads=threads,
            trust_model=options.trust_model, trust_types=list(options.trust_types), signature=options.signature,
            method=options.method, custom_op_libraries=list(options.custom_op_libraries),
            enable_arena=options.enable_arena, input_spec=inputs, settings=settings, scratch_dir=scratch,
        )
        timeouts = Timeouts.uniform(options.timeout) if options.timeout else Timeouts()
        response = run_worker(request, ref.runtime.value, timeouts, on_event, memory_limit, limit_source)
    host = host_info({"mlfit": __version__})
    if response.measurement is not None and response.timeline is not None:
        measurement = response.measurement
        response = response.model_copy(update={"measurement": measurement.model_copy(
            update={"extra": {**measurement.extra, "memory_timeline": response.timeline}})})
    if response.measurement is not None:
        host = host.model_copy(update={"versions": {**host.versions,
                                                    ref.runtime.value: response.measurement.runtime_version}})
    model = _model_info(ref, response.inputs, response.inputs_used, response.outputs)
    reports: list[Any] = []
    calibration: dict[str, Any] | None = None
    if response.error is None:
        if on_target:
            from mlfit.checks.engine import evaluate

            reports = [evaluate(t, model, response.measurement, static, on_target=True) for t in targets]
        else:
            from mlfit.analysis.pipeline import evaluate_targets

            try:
                reports, calibration = evaluate_targets(ref, targets, model, response.measurement, static,
                                                        response.node_profile, host, request, timeouts,
                                                        on_event, options.memory_limit)
            except KeyboardInterrupt:  # Ctrl-C while calibrating or projecting: keep the measurement
                message = "interrupted while projecting to the targets; the host measurement is kept"
                error = ErrorInfo(kind="interrupted", phase="projection", exit_code=130, message=message,
                                  hint="the report is marked incomplete")
                return RunResult(mlfit_version=__version__, created=created, model=model, host=host,
                                 measurement=response.measurement, analysis=static,
                                 node_profile=response.node_profile, error=error, complete=False)
        reports = [precheck.add_fit_check(r, fit) for r, fit in zip(reports, fits, strict=True)]
        if ref.notes or safety_notes:
            reports = [r.model_copy(update={"notes": [*ref.notes, *safety_notes, *r.notes]}) for r in reports]
    complete = response.error is None or response.error.kind not in STOPPED_KINDS
    return RunResult(mlfit_version=__version__, created=created, model=model, host=host,
                     measurement=response.measurement, analysis=static, calibration=calibration,
                     node_profile=response.node_profile, targets=reports, error=response.error,
                     complete=complete)


def single_report(result: RunResult) -> Report:
    """Wrap one model's result in the document the reporters render."""
    return Report(mlfit_version=__version__, created=result.created, results=[result],
                  complete=result.complete)


def resolve_targets(names: Sequence[str], container: str | None = None,
                    budgets: Sequence[str] = ()) -> list[Target]:
    """Resolve --target values; ``all`` means every built-in target. ``container`` picks the
    container of a deployment manifest; ``budgets`` (``METRIC=VALUE``) add to or override every
    target's budgets."""
    from dataclasses import replace

    from mlfit.catalog.loader import builtin_targets
    from mlfit.catalog.manifest import apply_budget_flags

    resolved: list[Target] = []
    for name in names:
        resolved.extend(builtin_targets() if name == "all" else [resolve_target(name, container)])
    if container is not None and not any(t.profile.container is not None for t in resolved):
        raise ConfigError(f"--container {container}: no --target is a Kubernetes manifest or Compose file",
                          "pass the manifest with --target deploy.yaml, or drop --container")
    if budgets:
        resolved = [replace(t, profile=apply_budget_flags(t.profile, list(budgets))) for t in resolved]
    return resolved


def check(model: str | Path, targets: Sequence[str] = ("edge",), inputs: InputSpec | None = None,
          options: MeasureOptions | None = None, on_event: EventFn | None = None) -> RunResult:
    """Measure a model once and check it against each target. ``result.passed`` is the verdict."""
    resolved = resolve_targets(targets)
    ref = identify(model, options.runtime if options else None)
    return measure_and_check(ref, resolved, inputs or InputSpec(), options or MeasureOptions(), on_event)


def profile(model: str | Path, inputs: InputSpec | None = None, options: MeasureOptions | None = None,
            on_event: EventFn | None = None) -> RunResult:
    """Measure a model without targets."""
    ref = identify(model, options.runtime if options else None)
    return measure_and_check(ref, [], inputs or InputSpec(), options or MeasureOptions(), on_event)


def inspect(model: str | Path, runtime: Runtime | None = None) -> dict[str, Any]:
    """Static facts about a model, without running it."""
    ref = identify(model, runtime)
    if ref.format is ModelFormat.ONNX:
        from mlfit.onnxsafety import check_protobuf_size

        check_protobuf_size(ref.path)
    facts = static_facts(ref)
    if facts is None:
        raise ModelError(f"static inspection of {ref.format.value} models is not available yet",
                         "run `mlfit profile` to see its inputs and outputs")
    facts = {"path": str(ref.path), "size_bytes": size_of(ref.path), "notes": list(ref.notes), **facts}
    return facts


def check_many(models: Sequence[str | Path], targets: Sequence[str | Target] = ("edge",),
               inputs: InputSpec | None = None, options: MeasureOptions | None = None,
               on_event: EventFn | None = None, cluster: str | None = None,
               shared_path: bool = False) -> Report:
    """Check many models (files, SavedModel folders, or folders of models) in one combined Report.

    Locally the models are measured one at a time (parallel measurements on one machine
    disturb each other). With ``cluster="tcp://HOST:PORT"`` each (model, target) measurement
    goes to a Dask worker, on the target's own hardware where a worker embodies it.
    """
    from mlfit.multi import check_locally, combined_report, expand_models

    flat: list[Target] = []
    for target in targets:
        flat.extend([target] if isinstance(target, Target) else resolve_targets([target]))
    paths, notes = expand_models(models)
    options = options or MeasureOptions()
    inputs = inputs or InputSpec()
    if len(paths) > 1 and inputs.dims:
        inputs = inputs.model_copy(update={"lenient_dims": True})
        notes.append("with several models, a --dim applies to the models that have that dim and is ignored "
                     "by the others")
    if cluster is None:
        if shared_path:
            raise ConfigError("--shared-path only applies with --cluster",
                              "add --cluster tcp://SCHEDULER:PORT")
        results = check_locally(paths, flat, inputs, options, on_event)
        notes.append(f"{len(paths)} model(s) measured one at a time on this host, so that parallel "
                     "measurements do not disturb each other")
        return combined_report(results, notes)
    from mlfit.cluster.client import check_on_cluster

    results, cluster_notes = check_on_cluster(paths, flat, inputs, options, cluster, shared_path, on_event)
    return combined_report(results, [*notes, *cluster_notes])
