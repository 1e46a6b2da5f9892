"""A worker's answer, read as untrusted data: sized, fetched through the scheduler within a
bound, validated, and its claims to be a target checked before any figure is labelled
measured (target)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from mlfit.cluster.jobs import Job, describe
from mlfit.errors import MlfitError
from mlfit.result import Check, Provenance, RunResult, TargetReport, Verdict, worst

if TYPE_CHECKING:
    from mlfit.catalog.loader import Target
    from mlfit.cluster.tasks import TaskAnswer


def answer_of(client: Any, job: Job) -> TaskAnswer:
    """Fetch the job's answer as msgpack text and validate it; MlfitError when it is anything
    else. Its size is checked before it is fetched, and again before it is parsed; the fetch is
    bounded in time (:mod:`mlfit.cluster.watch`)."""
    from mlfit.cluster.tasks import MAX_ANSWER_CHARS, TaskAnswer
    from mlfit.cluster.watch import GATHER_TIMEOUT_S, MAX_ANSWER_BYTES, answer_bytes, fetch

    hint = "a worker that is not mlfit's (or not honest) is in the cluster; use mutual TLS (docs/scale.md)"
    try:
        size = answer_bytes(client, job.future.key)
    except Exception:  # the scheduler did not say: the fetch below is bounded anyway
        size = -1
    if size > MAX_ANSWER_BYTES:
        raise MlfitError(f"{job.label}: refused the worker's answer unread: {size} bytes, more than the "
                         f"{MAX_ANSWER_BYTES // 2**20} MiB a result needs", hint)
    try:
        text = fetch(client, job.future)
    except TimeoutError:
        raise MlfitError(f"{job.label}: the worker's answer did not arrive within {GATHER_TIMEOUT_S:g} s "
                         "of the task finishing", hint) from None
    except Exception as exc:  # the deserializer refused it, or the comm failed
        raise MlfitError(
            f"{job.label}: refused the worker's answer: it was not plain JSON text ({describe(exc)})", hint,
        ) from None
    if not isinstance(text, str) or len(text) > MAX_ANSWER_CHARS:
        raise MlfitError(f"{job.label}: refused the worker's answer: not a JSON text of at most "
                         f"{MAX_ANSWER_CHARS} characters ({type(text).__name__})",
                         "is every worker running the same mlfit version?")
    try:
        return TaskAnswer.model_validate_json(text)
    except ValidationError as exc:
        raise MlfitError(f"{job.label}: the worker's answer is not a valid mlfit result "
                         f"({exc.error_count()} problem(s), first: {exc.errors()[0]['msg']})",
                         "is every worker running the same mlfit version?") from None


def _unverified(report: TargetReport, why: str) -> TargetReport:
    """A target report whose figures came from a worker that is not the target: its measured-on-
    target figures become that host's own, and they no longer decide the verdict."""
    reason = f"claimed, unverified: {why}"
    checks: list[Check] = []
    for check in report.checks:
        if check.provenance is Provenance.MEASURED_ON_TARGET:
            check = check.model_copy(update={
                "provenance": Provenance.MEASURED_ON_HOST, "verdict": Verdict.INCONCLUSIVE,
                "method": "measured on a worker that claims to be the target but does not match its hardware",
                "reason": reason})
        checks.append(check)
    verdict = worst([c.verdict for c in checks]) if checks else report.verdict
    return report.model_copy(update={"checks": checks, "verdict": verdict, "notes": [reason, *report.notes]})


def _unauthenticated(client: Any, job: Job, target: str) -> list[str]:
    """Why the claim to be ``target`` is not authenticated (empty when it is): the cluster must be
    mutual TLS, and the certificate the worker that holds the answer (the scheduler's record)
    authenticated its connection with must name ``mlfit-target-TARGET``."""
    from mlfit.cluster import resource_name
    from mlfit.cluster.watch import certificate_names, holder

    if not job.authenticated:
        return ["the cluster is plain tcp://, so nothing authenticates who answered (use tls:// with a "
                "certificate naming the target, docs/scale.md)"]
    wanted = resource_name(target)
    try:
        address = holder(client, job.future.key)
    except Exception:
        address = None
    if address is None:
        return ["the scheduler did not say which worker holds the answer"]
    names = certificate_names(client, address)
    if wanted not in names:
        shown = ", ".join(names[:5]) or "no names"
        return [f"its TLS certificate does not name {wanted} ({shown})"]
    return []


def finished(client: Any, job: Job, by_name: dict[str, Target]
             ) -> tuple[RunResult, str, list[tuple[str, str]]]:
    """The job's validated result, with who measured it in each target's notes, and the claims
    that did not hold."""
    from mlfit.cluster.claims import describe as describe_host
    from mlfit.cluster.claims import mismatches

    answer = answer_of(client, job)
    result = answer.result
    where = f"Dask worker {answer.worker} on host {answer.hostname}"
    on_target = job.resource is not None
    refused: list[tuple[str, str]] = []
    reports: list[TargetReport] = []
    for report in result.targets:
        target = by_name.get(report.target)
        if target is None or report.target not in {t.name for t in job.targets}:
            raise MlfitError(f"{job.label}: the worker answered for target '{report.target}', which was not asked",
                             "is every worker running the same mlfit version?")
        if on_target:
            found = mismatches(result.host, target.hardware) if result.host is not None else ["no host facts"]
            if target.name not in answer.claims:
                found.append("the worker that answered does not advertise this target")
            found.extend(_unauthenticated(client, job, target.name))
            if found:
                why = (f"{where} advertises {target.name} but the claim does not hold for {target.hardware.id} "
                       f"({'; '.join(found)}); its figures are that host's, not the target's")
                refused.append((target.name, why))
                report = _unverified(report, why)
            else:
                assert result.host is not None  # "no host facts" is a mismatch
                report = report.model_copy(update={"notes": [
                    *report.notes, f"measured by {where} (the target's own hardware: its host facts match "
                    f"{target.hardware.id}: {describe_host(result.host)})"]})
                reports.append(report)
                continue
        if not on_target and any(c.provenance is Provenance.MEASURED_ON_TARGET for c in report.checks):
            why = f"{where} was not asked to measure on {target.name}'s hardware but labelled figures so"
            refused.append((target.name, why))
            report = _unverified(report, why)
        label = "a worker that is not the target's hardware" if not on_target else "a worker claiming the target"
        reports.append(report.model_copy(update={"notes": [*report.notes, f"measured by {where} ({label})"]}))
    return result.model_copy(update={"targets": reports}), where, refused


