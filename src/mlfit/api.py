"""The public Python API. The CLI is a thin layer over these functions.

>>> result = mlfit.check("model.onnx", targets=["edge"], dims={"batch": 1})  # doctest: +SKIP
>>> result.raise_for_error()           # the model could not be measured: MlfitError(message, hint)  # doctest: +SKIP
>>> result.write("html", "report.html")                                     # doctest: +SKIP
>>> assert result.passed, result.verdict  # passed == `mlfit check` exits 0   # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlfit._version import __version__
from mlfit.catalog.loader import Target, resolve_target
from mlfit.catalog.schema import Runtime
from mlfit.errors import ConfigError, ModelError
from mlfit.formats import ModelFormat
from mlfit.inputspec import InputSpec
from mlfit.integrations import is_model_uri
from mlfit.modelref import identify, size_of
from mlfit.result import Report, RunResult
from mlfit.run import (
    EventFn,
    MeasureOptions,
    error_result,
    run_model,
    static_facts,
)

if TYPE_CHECKING:
    from mlfit.advise import SuggestOptions
    from mlfit.cluster import ClusterSpec

__all__ = ["CheckResult", "InputSpec", "MeasureOptions", "check", "check_many", "error_result", "identify", "inspect",
           "profile", "resolve_targets", "run_model", "single_report"]


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


class CheckResult(RunResult):
    """What :func:`check` and :func:`profile` return: the :class:`~mlfit.result.RunResult` the CLI
    renders, plus writing reports.

    - ``passed``: True exactly when ``mlfit check`` would exit 0 (every budget PASS, or INCONCLUSIVE
      without strict); ``exit_code(strict=True)`` is the CLI's ``--strict`` code.
    - ``error``: why the model could not be loaded or measured (a result, not an exception, so a
      loop over models goes on); ``raise_for_error()`` raises it as an MlfitError (message, hint,
      exit_code).
    - ``write("html", "report.html")``: any report format the CLI writes (json, markdown, junit,
      html, text), atomically.
    """

    def report(self) -> Report:
        """The one-model report document the reporters render."""
        return single_report(self)

    def write(self, fmt: str, path: str | Path) -> Path:
        """Write the report as ``fmt`` to ``path`` (atomically); returns the path."""
        from mlfit.report.outputs import parse_format, write_outputs

        write_outputs(self.report(), [(parse_format(fmt, f"{fmt}={path}"), str(path))])
        return Path(path)


def _typed(result: RunResult) -> CheckResult:
    return CheckResult.model_construct(**dict(result))


def _spec(inputs: InputSpec | None, dims: Mapping[str, int] | None, shapes: Mapping[str, Sequence[int]] | None,
          values: Mapping[str, float] | None, ranges: Mapping[str, tuple[float, float]] | None,
          data: str | Path | Mapping[str, str | Path] | None, seed: int) -> InputSpec:
    from mlfit.inputspec import input_spec

    typed = any(x is not None for x in (dims, shapes, values, ranges, data))
    if inputs is not None and typed:
        raise ConfigError("give inputs either as InputSpec or as dims/shapes/values/ranges/data, not both")
    return inputs if inputs is not None else input_spec(dims, shapes, values, ranges, data, seed)


def _run_one(model: str | Path, targets: Sequence[Target], spec: InputSpec, options: MeasureOptions | None,
             batch: int | None, on_event: EventFn | None, suggest: SuggestOptions | None = None) -> CheckResult:
    from dataclasses import replace

    options = options or MeasureOptions()
    if batch is not None:
        options = replace(options, batch_size=batch)
    if is_model_uri(model):  # models:/ or runs:/: downloaded through MLflow, checked like a file
        from mlfit.integrations.mlflow import opened

        uri = model if isinstance(model, str) else model.as_posix()
        try:
            with opened(uri) as resolved:
                checked = _run_one(resolved.path, targets, spec, options, None, on_event, suggest)
                return _typed(resolved.annotate(checked))
        except ModelError as exc:  # the MLmodel file names no usable model: a result, as for a file
            failed = error_result(uri, exc)
            return _typed(failed.model_copy(update={"model": failed.model.model_copy(update={"path": uri})}))
    try:
        ref = identify(model, options.runtime)
    except ModelError as exc:  # not a model mlfit can read: a result with the error, as the CLI reports it
        return _typed(error_result(model, exc))
    if suggest is not None:
        from mlfit.advise import check_what_if

        check_what_if(ref, options, suggest)  # a --what-if dim the model lacks: refused before measuring
    result = run_model(ref, targets, spec, options, on_event)
    if suggest is not None:
        from mlfit.advise import suggest as suggest_variants

        result = suggest_variants(ref, targets, spec, options, result, suggest, on_event)
    return _typed(result)


def check(model: str | Path, targets: Sequence[str] = ("edge",), *,
          dims: Mapping[str, int] | None = None, shapes: Mapping[str, Sequence[int]] | None = None,
          values: Mapping[str, float] | None = None, ranges: Mapping[str, tuple[float, float]] | None = None,
          data: str | Path | Mapping[str, str | Path] | None = None, batch: int | None = None, seed: int = 0,
          inputs: InputSpec | None = None, options: MeasureOptions | None = None,
          on_event: EventFn | None = None, suggest: SuggestOptions | None = None) -> CheckResult:
    """Measure a model once and check it against each target (built-in names or profile YAML paths).

    ``model`` is a file, a SavedModel folder, or an MLflow URI (``models:/NAME/VERSION``,
    ``models:/NAME@ALIAS``, ``runs:/RUN_ID/PATH``; needs ``mlfit[mlflow]``, docs/integrations.md).

    Inputs, as the CLI's flags: ``dims={"seq": 128}`` fills a symbolic dim, ``shapes={"x": (1, 3, 224, 224)}``
    an input's whole shape, ``values={"sr": 16000}`` a constant, ``ranges={"ids": (0, 30000)}`` random values
    in [low, high), ``data`` real samples (an .npz, or {input: .npy}); ``batch`` fills every free leading dim
    (default: the targets' batch_size). Integer inputs whose range the model does not state need a value
    or a range. Bad arguments raise :class:`~mlfit.errors.ConfigError`; what is decided against the model
    (a dim it lacks, a model that cannot be loaded or measured) gives a result with ``error`` (see
    :meth:`CheckResult.raise_for_error`).

    ``suggest=SuggestOptions()`` (``check --suggest``) adds measured variants that would fit to each
    target that does not pass (``targets[i].suggestions``); verdicts and ``passed`` stay the original's.
    """
    spec = _spec(inputs, dims, shapes, values, ranges, data, seed)
    return _run_one(model, resolve_targets(targets), spec, options, batch, on_event, suggest)


def profile(model: str | Path, *, dims: Mapping[str, int] | None = None,
            shapes: Mapping[str, Sequence[int]] | None = None, values: Mapping[str, float] | None = None,
            ranges: Mapping[str, tuple[float, float]] | None = None,
            data: str | Path | Mapping[str, str | Path] | None = None, batch: int | None = None, seed: int = 0,
            inputs: InputSpec | None = None, options: MeasureOptions | None = None,
            on_event: EventFn | None = None) -> CheckResult:
    """Measure a model without targets (inputs as for :func:`check`; batch 1 unless ``batch``)."""
    spec = _spec(inputs, dims, shapes, values, ranges, data, seed)
    return _run_one(model, [], spec, options, batch, on_event)


def inspect(model: str | Path, runtime: Runtime | None = None, inputs: InputSpec | None = None,
            signature: str = "serving_default") -> dict[str, Any]:
    """Static facts about a model, without running it; ``inputs`` fixes symbolic dims, whole
    input shapes and constant input values (``--dim``/``--shape``/``--value``) before the
    FLOPs and shapes are computed."""
    ref = identify(model, runtime)
    if ref.format is ModelFormat.ONNX:
        from mlfit.formats.onnx.safety import check_protobuf_size

        check_protobuf_size(ref.path)
    facts = static_facts(ref, inputs)
    if facts is None:  # formats without a graph analysis: what the file states, read as its safety scan reads it
        from mlfit.formats.registry import get

        facts = get(ref.format).structure(ref.path, signature)
        if facts is not None and ref.format in (ModelFormat.KERAS, ModelFormat.H5):
            facts = _with_keras_costs(facts, ref.path, zipped=ref.format is ModelFormat.KERAS)
    if facts is None:
        raise ModelError(f"{ref.path}: the {ref.format.value} file states nothing mlfit can show without "
                         "running it", "run `mlfit profile` to see its inputs and outputs")
    facts = {"format": ref.format.value, **facts}
    if inputs is not None:  # facts["inputs"] are the declared inputs, symbolic dims still named
        from mlfit.inputspec import check_flag_names

        check_flag_names(facts["inputs"], inputs)
    facts = {"path": str(ref.path), "size_bytes": size_of(ref.path), **facts,
             "notes": [*ref.notes, *facts.get("notes", [])]}
    return facts


def _with_keras_costs(facts: dict[str, Any], path: Path, zipped: bool) -> dict[str, Any]:
    """A Keras file's structure with the FLOPs its config's layer shapes give (no runtime)."""
    from mlfit.analysis.kerascost import keras_costs
    from mlfit.formats.keras import keras_config

    costs = keras_costs(keras_config(path, zipped))
    shapes = costs.pop("output_shapes", [])
    outputs = facts.get("outputs", [])
    if len(shapes) == len(outputs):  # the walk's shapes, the free batch named as in the inputs
        free = any(t["shape"][:1] == ["batch"] for t in facts.get("inputs", []))
        outputs = [{**o, "shape": ["batch", *s[1:]] if free else s} if s else o
                   for o, s in zip(outputs, shapes, strict=True)]
    return {**facts, **costs, "outputs": outputs, "notes": [*facts.get("notes", []), *costs.get("notes", [])]}


def check_many(models: Sequence[str | Path], targets: Sequence[str | Target] = ("edge",),
               inputs: InputSpec | None = None, options: MeasureOptions | None = None,
               on_event: EventFn | None = None, cluster: str | ClusterSpec | None = None,
               shared_path: bool = False, suggest: SuggestOptions | None = None) -> Report:
    """Check many models (files, SavedModel folders, or folders of models) in one combined Report.

    Locally the models are measured one at a time (parallel measurements on one machine
    disturb each other). With ``cluster="tcp://HOST:PORT"`` (or a ``ClusterSpec`` with mutual TLS)
    each (model, target) measurement
    goes to a Dask worker, on the target's own hardware where a worker embodies it.
    ``suggest`` (``check --suggest``) searches each model's variants in turn after it is measured
    (locally only: the variants are built and measured on this host).
    """
    if any(is_model_uri(m) for m in models):  # MLflow URIs: downloaded for this run, named by URI in the report
        from mlfit.integrations.mlflow import local_models

        with local_models(models) as local:
            return local.annotate(check_many(local.paths, targets, inputs, options, on_event, cluster, shared_path,
                                             suggest))
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
        results = check_locally(paths, flat, inputs, options, on_event, suggest)
        notes.append(f"{len(paths)} model(s) measured one at a time on this host, so that parallel "
                     "measurements do not disturb each other")
        return combined_report(results, notes)
    if suggest is not None:
        raise ConfigError("--suggest measures its variants on this host and cannot send them to cluster workers",
                          "run `mlfit check MODEL --target T --suggest` without --cluster (projected to T)")
    from mlfit.cluster.client import check_on_cluster

    results, cluster_notes = check_on_cluster(paths, flat, inputs, options, cluster, shared_path, on_event)
    return combined_report(results, [*notes, *cluster_notes])
