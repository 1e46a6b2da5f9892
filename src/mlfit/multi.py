"""Many models in one run: expand folders, measure one model at a time, gather one Report.

Locally the measurements run strictly one after another: two measurements on one machine
steal cores and memory bandwidth from each other and both figures would be wrong. A model
that cannot be loaded or measured becomes an error result; the others go on.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from mlfit._version import __version__
from mlfit.errors import ConfigError, MlfitError
from mlfit.result import Report, RunResult

if TYPE_CHECKING:
    from mlfit.advise import SuggestOptions
    from mlfit.catalog.loader import Target
    from mlfit.inputspec import InputSpec
    from mlfit.options import EventFn, MeasureOptions

def expand_models(paths: Sequence[str | Path]) -> tuple[list[Path], list[str]]:
    """Model paths from the command line: a folder that is not a SavedModel stands for every
    recognised model in it (files by content, SavedModel sub-folders). Returns (models, notes).

    A path that does not exist is a usage error, raised before anything is measured.
    """
    from mlfit.formats import sniff
    from mlfit.formats.registry import folder_format, model_suffixes

    models: list[Path] = []
    notes: list[str] = []
    for raw in paths:
        path = Path(raw)
        if not path.exists():
            raise ConfigError(f"model '{raw}' does not exist", "check the path")
        if not path.is_dir() or folder_format(path) is not None:
            models.append(path)
            continue
        found: list[Path] = []
        skipped: list[str] = []
        for entry in sorted(path.iterdir()):
            if entry.name.startswith("."):
                continue
            if entry.is_dir():
                if folder_format(entry) is not None:
                    found.append(entry)
                continue
            try:
                sniff(entry)
            except MlfitError:
                # A file named like a model but not one is reported (as that model's error);
                # anything else in the folder (README, labels.txt) is skipped.
                if entry.suffix.lower() not in model_suffixes():
                    skipped.append(entry.name)
                    continue
            found.append(entry)
        if not found:
            raise ConfigError(f"folder '{raw}' holds no recognised model file",
                              "give model files (.onnx, .keras, .h5, .tflite, .skops, .joblib) or "
                              "SavedModel folders")
        models.extend(found)
        if skipped:
            shown = ", ".join(skipped[:5]) + (" ..." if len(skipped) > 5 else "")
            notes.append(f"{raw}: skipped {len(skipped)} file(s) that are not models: {shown}")
    unique: list[Path] = []
    for model in models:
        if model.resolve() not in [m.resolve() for m in unique]:
            unique.append(model)
    return unique, notes


def check_locally(models: Sequence[Path], targets: Sequence[Target], inputs: InputSpec,
                  options: MeasureOptions, on_event: EventFn | None = None,
                  suggest: SuggestOptions | None = None) -> list[RunResult]:
    """Measure each model in turn on this host (and search its variants with ``suggest``); a
    failing model does not stop the others."""
    from mlfit.measure import spare
    from mlfit.run import run_path

    results: list[RunResult] = []
    try:
        for i, path in enumerate(models, 1):
            # the next model's worker starts (interpreter, imports) while this process reads and analyses
            # the model; never while a worker measures (mlfit.measure.spare)
            spare.prestart()
            if on_event is not None:
                on_event({"event": "model", "text": f"[{i}/{len(models)}] {path.name}: measuring"})
            try:
                result = run_path(path, targets, inputs, options)
                if suggest is not None and result.error is None:
                    result = _suggested(path, targets, inputs, options, result, suggest)
            except KeyboardInterrupt:  # outside a worker (copying, analysing): the finished models are kept
                result = interrupted_result(path)
            results.append(result)
            if on_event is not None:
                on_event({"event": "model", "text": f"[{i}/{len(models)}] {path.name}: {result.verdict.value}"})
            # Ctrl-C (an interrupted worker, or a --suggest search stopped after its verdicts): stop here;
            # the report is marked incomplete and lists what was done. A hung or failed model is not a
            # stop: its result is incomplete too, but the others still run.
            stopped_search = result.error is None and not result.complete
            if (result.error is not None and result.error.kind == "interrupted") or stopped_search:
                break
    finally:
        spare.discard()  # the last model's, when it was not measured here (an error, a container)
    return results


def _suggested(path: Path, targets: Sequence[Target], inputs: InputSpec, options: MeasureOptions,
               result: RunResult, settings: SuggestOptions) -> RunResult:
    """One model's --suggest search, as for a single model; a --what-if dim this model lacks is
    left out for it (a folder's models need not share their dims)."""
    from mlfit.advise import suggest, what_if_for
    from mlfit.modelref import identify

    try:
        ref = identify(path, options.runtime)
    except MlfitError:  # measured a moment ago: the file changed; suggest() would say so too
        return result
    return suggest(ref, targets, inputs, options, result, what_if_for(ref, options, settings))


def interrupted_result(path: Path) -> RunResult:
    """The result of a model that Ctrl-C or SIGTERM stopped before its worker ran."""
    from mlfit.errors import ExitCode
    from mlfit.run import error_result

    exc = MlfitError("interrupted before the model was measured", "the report is marked incomplete",
                     ExitCode.INTERRUPTED)
    return error_result(path, exc, kind="interrupted", phase="static").model_copy(update={"complete": False})


def combined_report(results: Sequence[RunResult], notes: Sequence[str]) -> Report:
    """One document for every model: one result per model (and per machine on a cluster)."""
    return Report(mlfit_version=__version__, created=time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                  results=list(results), notes=list(notes), complete=all(r.complete for r in results))
