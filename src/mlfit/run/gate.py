"""The gate stage of :mod:`mlfit.run`: the parent's refusals and static verdicts before any worker
is started, and the result blocks every later stage builds from (the model block, an error result)."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlfit._version import __version__
from mlfit.catalog.loader import Target
from mlfit.errors import ConfigError, ExitCode, MlfitError, ModelError
from mlfit.formats import ModelFormat
from mlfit.formats.registry import get
from mlfit.inputspec import InputSpec
from mlfit.modelref import ModelRef, sha256_of, size_of
from mlfit.options import MeasureOptions
from mlfit.result import Check, ErrorInfo, ModelInfo, RunResult, TensorInfo

if TYPE_CHECKING:
    from mlfit.model.facts import ModelFacts


def now() -> str:
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
    return RunResult(mlfit_version=__version__, created=created or now(), model=info, error=error)


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


def may_overlap(ref: ModelRef, targets: Sequence[Target], options: MeasureOptions, on_target: bool) -> bool:
    """Whether the static analysis may run beside the worker (:mod:`mlfit.run.overlap`): nothing
    the worker is asked depends on it (no roofline-only GPU target, no emulated container, not
    this host as the target) and the default deadlines leave the worker's wait room."""
    from mlfit.catalog.loader import is_gpu_target

    return (ref.format is ModelFormat.ONNX and not on_target and options.timeout is None and bool(targets)
            and not any(is_gpu_target(t) or t.profile.container is not None for t in targets))


def settle(ref: ModelRef, gate: Gate, created: str) -> Gate | RunResult:
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


def gate(ref: ModelRef, targets: Sequence[Target], inputs: InputSpec, options: MeasureOptions,
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


