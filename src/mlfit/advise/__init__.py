"""``check --suggest``: what would fit. For each target the model does not pass, variants
(threads, batch, int8, fp16, a TFLite build) are measured, projected and judged like the
original, with an accuracy guard on their outputs (docs/suggest.md).

Layer: above :mod:`mlfit.run` (it runs the pipeline once per variant), below the API. The parent
side never imports a runtime; builds and comparisons run in :mod:`mlfit.advise.child`.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from mlfit.advise.engine import (
    DEFAULT_MIN_AGREEMENT,
    DEFAULT_SUGGEST_TIME_S,
    Search,
    SuggestOptions,
    placed,
    search_target,
    targets_to_search,
)
from mlfit.catalog.loader import Target
from mlfit.errors import MlfitError
from mlfit.inputspec import InputSpec
from mlfit.modelref import ModelRef, sha256_of
from mlfit.options import EventFn, MeasureOptions
from mlfit.records import Suggestion, SuggestSearch
from mlfit.result import RunResult

__all__ = ["DEFAULT_MIN_AGREEMENT", "DEFAULT_SUGGEST_TIME_S", "SuggestOptions", "check_what_if", "suggest",
           "what_if_for"]


def _symbolic_dims(ref: ModelRef, options: MeasureOptions) -> set[str] | None:
    from mlfit.formats.registry import declared_inputs

    declared = declared_inputs(ref.path, ref.format, options.signature)
    return None if declared is None else {d for t in declared.inputs for d in t.shape if isinstance(d, str)}


def what_if_for(ref: ModelRef, options: MeasureOptions, settings: SuggestOptions) -> SuggestOptions:
    """``settings`` with only the --what-if dims this model has (many models: each its own dims)."""
    symbolic = _symbolic_dims(ref, options) if settings.what_if else None
    if symbolic is None:
        return settings
    return dataclasses.replace(settings, what_if=tuple(w for w in settings.what_if if w[0] in symbolic))


def check_what_if(ref: ModelRef, options: MeasureOptions, settings: SuggestOptions | None) -> None:
    """Refuse a ``--what-if dim=NAME`` the model has no symbolic dim for, before anything is
    measured (a fixed size cannot be fed another one). A file that does not state its inputs
    here (Keras, SavedModel) is left to the measurement, which lists the variant as failed."""
    from mlfit.errors import ConfigError

    if settings is None or not settings.what_if:
        return
    symbolic = _symbolic_dims(ref, options)
    if symbolic is None:
        return
    for name, _sizes in settings.what_if:
        if name not in symbolic:
            known = ", ".join(sorted(symbolic)) or "none (every dim is fixed)"
            raise ConfigError(f"--what-if dim={name}: the model has no symbolic dim '{name}'",
                              f"its symbolic dims: {known}; a fixed size changes only by exporting the model "
                              "with that dim named (e.g. dynamic_axes in torch.onnx.export)")


def _compare_spec(ref: ModelRef, targets: Sequence[Target], inputs: InputSpec, options: MeasureOptions) -> InputSpec:
    """The inputs the run fed (batch, integer ranges read from the model), for the guard's feeds."""
    from mlfit.formats.registry import declared_inputs
    from mlfit.plan.inputs import plan_inputs

    declared = declared_inputs(ref.path, ref.format, options.signature)
    return plan_inputs(declared, targets, inputs, options.batch_size).spec


def suggest(ref: ModelRef, targets: Sequence[Target], inputs: InputSpec, options: MeasureOptions,
            result: RunResult, settings: SuggestOptions, on_event: EventFn | None = None) -> RunResult:
    """``result`` with ``suggestions`` on each target that did not pass (every target with
    ``settings.every_target``). Verdicts and the exit code stay the original's; a model that could
    not be measured gets no suggestions."""
    chosen = targets_to_search(result, targets, settings.every_target) if result.error is None else []
    if not chosen:
        return result
    from mlfit.formats.registry import get
    from mlfit.safety.snapshot import private_copy
    from mlfit.scratch import run_folder

    start = time.monotonic()
    with private_copy(ref.path, get(ref.format).copy_policy) as copy, run_folder("mlfit-advise-") as folder:
        if sha256_of(copy) != result.model.sha256:  # the file changed since it was measured
            note = "the model file changed after it was measured; no suggestions (check it again)"
            record = _record(0.0, settings, 0, 0, "").model_copy(update={"note": note})
            return placed(result, {t.name: {"suggest_search": record} for t in chosen})
        private = ModelRef(path=copy, format=ref.format, runtime=ref.runtime, notes=ref.notes)
        search = Search(ref=private, user_path=ref.path, inputs=inputs,
                        compare_spec=_compare_spec(private, chosen, inputs, options), options=options,
                        settings=settings, folder=folder, deadline=start + settings.time_s, on_event=on_event)
        by_target: dict[str, dict[str, Any]] = {}
        saved: list[tuple[Suggestion, Path | None, dict[str, Any]]] = []
        originals = {r.target: r for r in result.targets}
        for target in chosen:
            began = time.monotonic()
            suggestions, files = search_target(search, target, bool(inputs.data_file or inputs.data_arrays),
                                               originals.get(target.name))
            tried = sum(s.status != "not-tried" for s in suggestions)
            record = _record(time.monotonic() - began, settings, tried, len(suggestions) - tried,
                             _guard_inputs(search, suggestions))
            if search.interrupted:
                record = record.model_copy(update={"note": "interrupted (Ctrl-C): the report is partial"})
            by_target[target.name] = {"suggestions": suggestions, "suggest_search": record}
            saved.extend(_to_save(search, target, suggestions, files))
        if settings.write_variants is not None and saved and not search.interrupted:
            by_target = _written(settings.write_variants, saved, by_target)
    done = placed(result, by_target)
    # Ctrl-C during the search: the verdicts above stand (and the exit code); the report says it is partial.
    return done.model_copy(update={"complete": False}) if search.interrupted else done


def _record(seconds: float, settings: SuggestOptions, tried: int, not_tried: int, inputs: str) -> SuggestSearch:
    return SuggestSearch(seconds=round(seconds, 2), budget_s=settings.time_s, tried=tried, not_tried=not_tried,
                         min_agreement=settings.min_agreement, inputs=inputs)


def _guard_inputs(search: Search, suggestions: list[Suggestion]) -> str:
    for suggestion in suggestions:
        if suggestion.agreement is not None and not suggestion.agreement.same_model:
            return suggestion.agreement.source
    return ""


def _to_save(search: Search, target: Target, suggestions: list[Suggestion],
             files: list[Path | None]) -> list[tuple[Suggestion, Path | None, dict[str, Any]]]:
    """The passing variants (recommended or not) and their recipes, for --write-variants."""
    from mlfit.advise.recipes import variant_name

    out: list[tuple[Suggestion, Path | None, dict[str, Any]]] = []
    for suggestion, built in zip(suggestions, files, strict=True):
        if suggestion.verdict != "PASS":
            continue
        variant = search.variants[suggestion.variant]
        tool = search.built.get(variant.file_kind) if variant.file_kind is not None else None
        name = (variant_name(search.user_path, variant) if built
                else f"{target.name}.{suggestion.variant.replace('=', '-')}")
        recipe = {"name": name, "target": target.name, "variant": suggestion.variant,
                  "source": str(search.user_path), "source_sha256": sha256_of(search.ref.path),
                  "tool": tool[1] if isinstance(tool, tuple) else None, "reproduce": suggestion.reproduce}
        out.append((suggestion, built, recipe))
    return out


def _written(folder: Path, saved: list[tuple[Suggestion, Path | None, dict[str, Any]]],
             by_target: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Write the variants and note each file on its suggestion."""
    from mlfit.advise.recipes import write_variants

    try:
        written = write_variants(folder, saved)
    except OSError as exc:
        raise MlfitError(f"--write-variants {folder}: {exc.strerror or exc}", "choose a folder you can write") from None
    files = {id(saved[i][0]): path for i, path in written.items()}
    for fields in by_target.values():
        fields["suggestions"] = [s.model_copy(update={"file": files[id(s)]}) if id(s) in files else s
                                 for s in fields["suggestions"]]
    return by_target
