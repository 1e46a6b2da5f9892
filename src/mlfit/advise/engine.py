"""The ``--suggest`` search: for each target the original did not pass, try variants cheapest
first within the time budget; each is measured, projected and judged by the same run pipeline
(:func:`mlfit.run.run_model`) against the same budgets, and its outputs compared with the
original's (the accuracy guard). Suggestions advise: the original verdict is never touched.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlfit.advise.combos import plan_combos
from mlfit.advise.recipes import reproduce, variant_name
from mlfit.advise.spawn import run_child
from mlfit.advise.variants import OUTPUT, Kind, Variant, WhatIf, plan_variants
from mlfit.catalog.loader import Target
from mlfit.errors import MlfitError
from mlfit.formats.registry import format_for_runtime
from mlfit.inputspec import InputSpec
from mlfit.modelref import ModelRef
from mlfit.options import EventFn, MeasureOptions
from mlfit.records import Agreement, Suggestion, VariantCheck
from mlfit.result import RunResult, TargetReport, Verdict

DEFAULT_SUGGEST_TIME_S = 60.0
# A variant is recommended when its outputs agree this well with the original's: the share of
# rows whose top-1 class agrees (classifier-shaped outputs), or else the cosine similarity.
DEFAULT_MIN_AGREEMENT = 0.99
COMPARE_SAMPLES = 16
# The shortest time worth starting a variant with: a measurement cut shorter decides nothing.
MIN_VARIANT_S = 3.0


@dataclass(frozen=True)
class SuggestOptions:
    """``--suggest`` (``all``: every target, else those that FAIL or are INCONCLUSIVE),
    ``--suggest-time``, ``--min-agreement``, ``--write-variants`` and ``--what-if``."""

    every_target: bool = False
    time_s: float = DEFAULT_SUGGEST_TIME_S
    min_agreement: float = DEFAULT_MIN_AGREEMENT
    write_variants: Path | None = None
    compare_samples: int = COMPARE_SAMPLES
    what_if: WhatIf = ()  # --what-if dim=NAME:V1,V2: input sizes to try (only when asked)


@dataclass
class Search:
    """What one search shares across targets: the model copy, its built files and their
    comparisons (a build serves every target), the deadline and the scratch folder."""

    ref: ModelRef  # the private copy (format and runtime of the original)
    user_path: Path
    inputs: InputSpec
    compare_spec: InputSpec
    options: MeasureOptions
    settings: SuggestOptions
    folder: Path
    deadline: float
    built: dict[Kind, tuple[Path, str] | MlfitError] = field(default_factory=dict)
    compared: dict[Kind, Agreement | MlfitError] = field(default_factory=dict)
    on_event: EventFn | None = None
    variants: dict[str, Variant] = field(default_factory=dict)  # by label, for --write-variants
    interrupted: bool = False  # Ctrl-C: the search stops, the verdicts stand, the report is partial

    def left(self) -> float:
        return self.deadline - time.monotonic()


def _checks(report: TargetReport) -> list[VariantCheck]:
    return [VariantCheck(metric=c.metric, verdict=c.verdict.value, value=c.value, lower=c.lower, upper=c.upper,
                         limit=c.limit, unit=c.unit, margin=c.margin, provenance=c.provenance.value)
            for c in report.checks]


def _build(search: Search, kind: Kind) -> tuple[Path, str]:
    """The file of a built kind (built once, in the child, shared by every variant and target that
    runs it), or the error that stopped it."""
    cached = search.built.get(kind)
    if cached is None:
        out = search.folder / variant_name(search.user_path, Variant(kind, kind.value, ""))
        request = {"action": "build", "kind": kind.value, "source": str(search.ref.path),
                   "format": search.ref.format.value, "output": str(out), "trust_model": search.options.trust_model,
                   "trust_types": list(search.options.trust_types), "signature": search.options.signature,
                   "input_spec": search.compare_spec.model_dump(mode="json")}
        try:
            answer = run_child(request, search.folder, f"build-{kind.value}", search.left())
            cached = (out, str(answer.get("tool", "")))
        except MlfitError as exc:
            cached = exc
        search.built[kind] = cached
    if isinstance(cached, MlfitError):
        raise cached
    return cached


def _agreement(search: Search, kind: Kind, path: Path) -> Agreement:
    """A built file's outputs against the original's on the same inputs (once per built kind: a
    thread count or a batch does not change what a sample computes)."""
    cached = search.compared.get(kind)
    if cached is None:
        runtime = OUTPUT[kind]
        request = {"action": "compare", "original": str(search.ref.path),
                   "original_runtime": search.ref.runtime.value, "variant": str(path),
                   "variant_runtime": runtime.value, "trust_model": search.options.trust_model,
                   "trust_types": list(search.options.trust_types), "signature": search.options.signature,
                   "input_spec": search.compare_spec.model_dump(mode="json"),
                   "count": search.settings.compare_samples}
        try:
            answer = run_child(request, search.folder, f"compare-{kind.value}", max(search.left(), 30.0))
            cached = Agreement.model_validate(answer)
        except (MlfitError, ValueError) as exc:
            cached = exc if isinstance(exc, MlfitError) else MlfitError(f"unreadable comparison ({exc})")
        search.compared[kind] = cached
    if isinstance(cached, MlfitError):
        raise cached
    return cached


def agrees(agreement: Agreement, minimum: float) -> bool:
    """The guard: top-1 agreement for classifier-shaped outputs, else cosine similarity."""
    if agreement.same_model:
        return True
    return (agreement.top1 if agreement.top1 is not None else agreement.cosine) >= minimum


def changed_by(agreement: Agreement) -> str:
    """How far the outputs moved, in words: 'top-1 agrees on 62% of rows, max abs diff 0.41'."""
    head = (f"top-1 agrees on {agreement.top1:.0%} of rows" if agreement.top1 is not None
            else f"cosine similarity {agreement.cosine:.4f}")
    return f"{head}, max abs diff {agreement.max_abs:.3g} ({agreement.max_rel:.1%} of the largest output)"


def _measure(search: Search, target: Target, variant: Variant) -> tuple[TargetReport | None, str, Path | None]:
    """Measure and judge the variant on ``target``: (its report, or None with the reason; its file)."""
    from mlfit.run import run_model

    ref, options, inputs, built = search.ref, search.options, search.inputs, None
    kind = variant.file_kind
    if kind is not None:
        path, _tool = _build(search, kind)
        runtime = OUTPUT[kind]
        ref, built = ModelRef(path=path, format=format_for_runtime(runtime), runtime=runtime), path
        options = dataclasses.replace(options, convert=False, runtime=runtime)
    profile = target.profile
    if variant.threads is not None:
        profile, options = profile.model_copy(update={"threads": variant.threads}), dataclasses.replace(
            options, threads=None)
    if variant.batch is not None:
        profile, options = profile.model_copy(update={"batch_size": variant.batch}), dataclasses.replace(
            options, batch_size=None)
    if variant.dims:  # --what-if: the input size asked about, over any --dim given for the original
        inputs = inputs.model_copy(update={"dims": {**inputs.dims, **dict(variant.dims)}})
    options = dataclasses.replace(options, max_time=max(0.5, min(options.max_time, search.left())))
    result = run_model(ref, [dataclasses.replace(target, profile=profile)], inputs, options)
    if result.error is not None and result.error.kind == "interrupted":  # Ctrl-C reached the worker
        raise KeyboardInterrupt
    if result.error is not None or not result.targets:
        message = result.error.message if result.error else "no verdict"
        return None, message.replace(str(ref.path), ref.path.name), built
    return result.targets[0], "", built


def try_variant(search: Search, target: Target, variant: Variant) -> tuple[Suggestion, Path | None]:
    """One variant on one target, as a suggestion (a failure is a suggestion with its reason)."""
    start = time.monotonic()
    base = {"variant": variant.label, "kind": variant.kind.value, "change": variant.change,
            "reproduce": reproduce(search.user_path, target.name, variant)}
    try:
        report, reason, built = _measure(search, target, variant)
    except MlfitError as exc:
        reason = exc.message + (f" ({exc.hint})" if exc.hint else "")
        return Suggestion(**base, status="failed", reason=reason, seconds=time.monotonic() - start), None
    if report is None:
        return Suggestion(**base, status="failed", reason=reason, seconds=time.monotonic() - start), None
    status, agreement, why = _judge(search, variant, report, built)
    return Suggestion(**base, status=status, verdict=report.verdict.value, checks=_checks(report),
                      agreement=agreement, reason=why, seconds=time.monotonic() - start), built


def _judge(search: Search, variant: Variant, report: TargetReport,
           built: Path | None) -> tuple[str, Agreement | None, str]:
    """(status, agreement, reason) of a measured variant."""
    if report.verdict in (Verdict.FAIL, Verdict.ERROR):
        failed = [c.metric for c in report.checks if c.verdict in (Verdict.FAIL, Verdict.ERROR)]
        return "does-not-fit", None, f"still fails: {', '.join(failed)}"
    if variant.dims:  # another input size: the outputs answer another question, not comparable
        if report.verdict is Verdict.INCONCLUSIVE:
            undecided = [c.metric for c in report.checks if c.verdict is Verdict.INCONCLUSIVE]
            return "inconclusive", None, f"its band straddles the budget: {', '.join(undecided)}"
        return "changes-outputs", None, ("fits at this input size; outputs cannot be compared across input "
                                         "sizes: check its accuracy on your data")
    if built is None:
        agreement = Agreement(inputs=0, source="the original file", max_abs=0.0, max_rel=0.0, cosine=1.0,
                              same_model=True)
    else:
        try:
            agreement = _agreement(search, variant.file_kind or variant.kind, built)
        except MlfitError as exc:
            return "failed", None, f"the outputs could not be compared: {exc.message}"
    if report.verdict is Verdict.INCONCLUSIVE:
        undecided = [c.metric for c in report.checks if c.verdict is Verdict.INCONCLUSIVE]
        return "inconclusive", agreement, f"its band straddles the budget: {', '.join(undecided)}"
    if agrees(agreement, search.settings.min_agreement):
        return "recommended", agreement, ""
    return "changes-outputs", agreement, f"fits but changes outputs: {changed_by(agreement)}"


def _try_in_turn(search: Search, target: Target, variants: Sequence[Variant], stop_when_recommended: bool,
                 out: tuple[list[Suggestion], list[Path | None]]) -> None:
    """Try ``variants`` in order, appending each suggestion and its file to ``out``; one left
    untried (time, Ctrl-C) is listed as not tried with the reason."""
    suggestions, files = out
    for variant in variants:
        search.variants[variant.label] = variant
        if search.interrupted or search.left() < MIN_VARIANT_S:
            why = "interrupted (Ctrl-C)" if search.interrupted else "the --suggest-time budget ran out"
            suggestions.append(Suggestion(variant=variant.label, kind=variant.kind.value, change=variant.change,
                                          status="not-tried", reason=why))
            files.append(None)
            continue
        try:
            if search.on_event is not None:
                search.on_event({"event": "configuration", "text": f"suggest {target.name}: {variant.label}"})
            suggestion, built = try_variant(search, target, variant)
        except KeyboardInterrupt:  # the worker or child is gone (its process group killed): stop here
            search.interrupted = True
            suggestions.append(Suggestion(variant=variant.label, kind=variant.kind.value, change=variant.change,
                                          status="not-tried", reason="interrupted (Ctrl-C)"))
            files.append(None)
            continue
        suggestions.append(suggestion)
        files.append(built)
        if stop_when_recommended and suggestion.status == "recommended":
            return  # the cheapest combination that passes: the rest are not needed


def search_target(search: Search, target: Target, fmt_has_data: bool,
                  original: TargetReport | None = None) -> tuple[list[Suggestion], list[Path | None]]:
    """Every single variant for ``target``, cheapest first, until the time budget runs out; then,
    when none is recommended and the original did not pass, combinations of two
    (:mod:`mlfit.advise.combos`) until one is recommended or the time runs out."""
    out: tuple[list[Suggestion], list[Path | None]] = ([], [])
    singles = plan_variants(search.ref.runtime, target, fmt_has_data, search.options.convert,
                            search.settings.what_if)
    _try_in_turn(search, target, singles, False, out)
    if original is None:
        return out
    if not (original.verdict is Verdict.PASS or search.interrupted or any(s.status == "recommended" for s in out[0])):
        pairs = plan_combos(list(zip(singles, out[0], strict=True)), _checks(original))
        _try_in_turn(search, target, pairs, True, out)
    return [_relative(s, original) for s in out[0]], out[1]


def _relative(suggestion: Suggestion, original: TargetReport) -> Suggestion:
    """An inconclusive variant's reason with its undecided figures' centres relative to the
    original's ("0.42x the original's"): the band is absolute, as the budget is (docs/suggest.md
    says why a ratio known better than either figure still cannot PASS an absolute budget)."""
    if suggestion.status != "inconclusive":
        return suggestion
    before = {c.metric: c.value for c in original.checks if c.value}
    undecided = [(c.metric, c.value / before[c.metric]) for c in suggestion.checks
                 if c.verdict == "INCONCLUSIVE" and c.value is not None and c.metric in before]
    ratios = [f"{metric} " * (len(undecided) > 1) + f"{ratio:.2f}x" for metric, ratio in undecided]
    if not ratios:
        return suggestion
    return suggestion.model_copy(update={"reason": f"{suggestion.reason}; centre {', '.join(ratios)} the original's"})


def targets_to_search(result: RunResult, targets: Sequence[Target], every: bool) -> list[Target]:
    """The targets whose suggestions are wanted: those that FAIL or are INCONCLUSIVE, or all."""
    verdicts = {r.target: r.verdict for r in result.targets}
    wanted = (Verdict.PASS, Verdict.FAIL, Verdict.INCONCLUSIVE) if every else (Verdict.FAIL, Verdict.INCONCLUSIVE)
    return [t for t in targets if verdicts.get(t.name) in wanted]


def placed(result: RunResult, by_target: dict[str, dict[str, Any]]) -> RunResult:
    """``result`` with each searched target's suggestions attached (verdicts untouched)."""
    reports = [r.model_copy(update=by_target[r.target]) if r.target in by_target else r for r in result.targets]
    return result.model_copy(update={"targets": reports})
