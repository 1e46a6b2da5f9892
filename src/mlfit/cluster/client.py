"""The client side of ``--cluster``: route each (model, target) measurement to a Dask worker,
gather the results, and turn every way a worker can vanish into an explained error result.

Routing: a target some worker embodies (resource ``mlfit-target-NAME``) is measured there and
labelled measured-on-target when the worker's host facts match the target's hardware; the other
targets of a model are measured together on any worker and evaluated as they would be locally
(host figures, or projections). A worker that dies mid-run costs only the measurements that
needed it: the scheduler re-runs free tasks on the remaining workers, and tasks that only a lost
worker could run are reported, not waited on.

Trust: a worker's answer is JSON text, fetched as msgpack and validated with pydantic; nothing a
worker sends is unpickled in this process (:mod:`mlfit.cluster.guard`).
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from mlfit.cluster import RESOURCE_PREFIX, ClusterSpec, resource_name
from mlfit.errors import ConfigError, ExitCode, MlfitError
from mlfit.result import Check, Provenance, RunResult, TargetReport, Verdict, worst

if TYPE_CHECKING:
    from mlfit.catalog.loader import Target
    from mlfit.cluster.tasks import ModelPayload, TaskAnswer
    from mlfit.inputspec import InputSpec
    from mlfit.options import MeasureOptions

EventFn = Callable[[dict[str, object]], None]

CONNECT_TIMEOUT_S = 15.0  # reaching the scheduler
HANDSHAKE_GRACE_S = 5.0  # beyond it, for Dask's handshake (which its own timeout does not bound)
WORKER_WAIT_S = 30.0  # for the first worker to be connected
LOST_GRACE_S = 5.0  # a nanny restarts a dead worker within this; after it, the worker is gone
POLL_S = 0.5
RESUBMITS = 1  # a task whose scattered model was lost with its worker is sent again this often
# Dask logs a refused payload with a traceback; mlfit reports it as one line instead.
_QUIET_LOGGERS = ("distributed.protocol.pickle", "distributed.protocol.core", "distributed.core",
                  "distributed.client", "distributed.utils")


@dataclass
class Job:
    future: Any  # None when it could not even be sent (``failed`` says why)
    path: Path
    targets: list[Target]
    resource: str | None  # the target resource it needs, None for "any worker"
    submit: Callable[[bool], Any]  # sends it (again); False: to any worker
    general_only: bool = False  # general work runs only on general workers while there is one
    lost_since: float | None = None
    resubmits: int = field(default=RESUBMITS)
    failed: RunResult | None = None

    def send(self, restricted: bool) -> None:
        """Submit (again); a Dask failure becomes this job's error result, not an exception."""
        try:
            self.future = self.submit(restricted)
        except MlfitError:
            raise
        except Exception as exc:  # Dask's many kinds, or a refused pickle in the scheduler's reply
            self.future = None
            self.failed = _error(self, f"{self.label}: could not send the model to the cluster ({_describe(exc)})",
                                 "see the scheduler's and workers' logs")

    @property
    def label(self) -> str:
        names = ", ".join(t.name for t in self.targets)
        return f"{self.path.name} [{names}]"


def _describe(exc: BaseException) -> str:
    """One line for an exception Dask raised; an error it could only rebuild from a (refused)
    pickle is named as such, not shown as bytes."""
    if exc.args and isinstance(exc.args[0], bytes | bytearray):
        return "an error sent as a pickle, not read"
    return f"{type(exc).__name__}: {str(exc)[:200]}"


def check_address(address: str) -> str:
    """Refuse a scheduler address Dask would spend half a minute failing on."""
    from mlfit.cluster.net import parse_address

    parse_address(address)
    return address


@contextmanager
def _quiet_dask() -> Iterator[None]:
    loggers = [logging.getLogger(name) for name in _QUIET_LOGGERS]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.CRITICAL + 1)
    try:
        yield
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.setLevel(level)


def _connect(spec: ClusterSpec) -> Any:
    """A Dask client that accepts only msgpack answers; every failure is a ConfigError naming the
    address, within a bounded time."""
    from mlfit.cluster.net import check_scheme, parse_address, probe, warn_if_plain_tcp

    address = parse_address(spec.address)
    check_scheme(address, spec.tls)
    try:
        from distributed import Client
    except ImportError:
        from mlfit.install import install_hint

        raise ConfigError(
            "--cluster needs the 'distributed' package", install_hint("cluster")
        ) from None
    warn_if_plain_tcp(address, "--cluster")
    probe(address, spec.tls)
    security = spec.tls.security("client") if spec.tls is not None else None
    made: dict[str, Any] = {}

    def make() -> None:
        try:
            made["client"] = Client(spec.address, timeout=CONNECT_TIMEOUT_S, set_as_default=False,
                                    security=security, deserializers=["msgpack"], direct_to_workers=False)
        except Exception as exc:  # Dask raises many kinds here (OSError, TimeoutError, ssl, ValueError)
            made["error"] = exc

    # Dask bounds the TCP connect but not the handshake after it: a peer that greets and then
    # stays silent would hold the constructor for minutes. A thread bounds it.
    maker = threading.Thread(target=make, name="mlfit-connect", daemon=True)
    maker.start()
    maker.join(CONNECT_TIMEOUT_S + HANDSHAKE_GRACE_S)
    if maker.is_alive():
        raise ConfigError(
            f"{spec.address} did not complete Dask's handshake within {CONNECT_TIMEOUT_S + HANDSHAKE_GRACE_S:g} s",
            "check that the address is a Dask scheduler (and, for tls://, that it expects this certificate)",
        )
    if "error" in made:
        exc = made["error"]
        raise ConfigError(
            f"cannot connect to the Dask scheduler at {spec.address} ({_describe(exc)})",
            "start one with `dask scheduler`, check the address, and for tls:// the --tls-* files",
        )
    return made["client"]


def worker_resources(client: Any) -> dict[str, set[str]]:
    """Connected workers -> the mlfit target resources each advertises."""
    info = client.scheduler_info(n_workers=-1)
    return {
        address: {name for name in (worker.get("resources") or {}) if name.startswith(RESOURCE_PREFIX)}
        for address, worker in info.get("workers", {}).items()
    }


def _multi_threaded(client: Any) -> list[str]:
    """Workers that run more than one task at a time (their measurements would overlap)."""
    info = client.scheduler_info(n_workers=-1)
    return sorted(
        address for address, worker in info.get("workers", {}).items() if worker.get("nthreads", 1) > 1
    )


def _error(job: Job, message: str, hint: str, kind: str = "cluster") -> RunResult:
    from mlfit.run import error_result

    result = error_result(job.path, MlfitError(message, hint, ExitCode.MODEL))
    error = result.error.model_copy(update={"kind": kind, "phase": "cluster"}) if result.error else None
    return result.model_copy(update={"error": error})


def _answer(client: Any, job: Job) -> TaskAnswer:
    """Fetch the job's answer as msgpack text and validate it; MlfitError when it is anything else."""
    from mlfit.cluster.tasks import MAX_ANSWER_CHARS, TaskAnswer

    try:
        (text,) = client.gather([job.future], direct=False)
    except Exception as exc:  # the deserializer refused it, or the comm failed
        raise MlfitError(
            f"{job.label}: refused the worker's answer: it was not plain JSON text ({_describe(exc)})",
            "a worker that is not mlfit's (or not honest) is in the cluster; use mutual TLS (docs/scale.md)",
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


def _finished(client: Any, job: Job, by_name: dict[str, Target]) -> tuple[RunResult, str, list[tuple[str, str]]]:
    """The job's validated result, with who measured it in each target's notes, and the claims
    that did not hold."""
    from mlfit.cluster.claims import describe, mismatches

    answer = _answer(client, job)
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
        if on_target and result.host is not None:
            found = mismatches(result.host, target.hardware)
            if target.name not in answer.claims:
                found.append("the worker that answered does not advertise this target")
            if found:
                why = (f"{where} advertises {target.name} but its host facts do not match {target.hardware.id} "
                       f"({'; '.join(found)}); its figures are that host's, not the target's")
                refused.append((target.name, why))
                report = _unverified(report, why)
            else:
                report = report.model_copy(update={"notes": [
                    *report.notes, f"measured by {where} (the target's own hardware: its host facts match "
                    f"{target.hardware.id}: {describe(result.host)})"]})
                reports.append(report)
                continue
        if not on_target and any(c.provenance is Provenance.MEASURED_ON_TARGET for c in report.checks):
            why = f"{where} was not asked to measure on {target.name}'s hardware but labelled figures so"
            refused.append((target.name, why))
            report = _unverified(report, why)
        label = "a worker that is not the target's hardware" if not on_target else "a worker claiming the target"
        reports.append(report.model_copy(update={"notes": [*report.notes, f"measured by {where} ({label})"]}))
    return result.model_copy(update={"targets": reports}), where, refused


def _failure(job: Job) -> RunResult:
    # The exception itself is not read: Dask would unpickle it (the guard refuses that anyway).
    return _error(
        job,
        f"{job.label}: the cluster task failed (a worker died while measuring on every try, or a "
        "worker that is not mlfit's raised an error)",
        "see the workers' logs; the other models went on",
        kind="crash",
    )


def check_on_cluster(
    paths: Sequence[Path],
    targets: Sequence[Target],
    inputs: InputSpec,
    options: MeasureOptions,
    cluster: str | ClusterSpec,
    shared_path: bool,
    on_event: EventFn | None = None,
) -> tuple[list[RunResult], list[str]]:
    """Measure every model for every target on the cluster. Returns (results, notes)."""
    from mlfit.cluster.guard import RefusedUnpickling, no_unpickling

    spec = cluster if isinstance(cluster, ClusterSpec) else ClusterSpec(cluster)
    if (inputs.data_file or inputs.data_arrays) and not shared_path:
        raise ConfigError(
            "--data files are not sent to cluster workers",
            "put them on a filesystem every worker mounts and add --shared-path",
        )
    with _quiet_dask(), no_unpickling():
        client = _connect(spec)
        try:
            return _run(client, spec, paths, targets, inputs, options, shared_path, on_event)
        except RefusedUnpickling as exc:
            raise MlfitError(f"the cluster at {spec.address} sent a pickle, refused unread ({exc})",
                             "a worker that is not mlfit's (or not honest) is in the cluster; use mutual TLS "
                             "(docs/scale.md)", ExitCode.MODEL) from None
        finally:
            client.close(timeout=10)


def _run(client: Any, spec: ClusterSpec, paths: Sequence[Path], targets: Sequence[Target], inputs: InputSpec,
         options: MeasureOptions, shared_path: bool, on_event: EventFn | None) -> tuple[list[RunResult], list[str]]:
    from mlfit.cluster.tasks import measure_task, pack

    address = spec.address
    try:
        client.wait_for_workers(1, timeout=WORKER_WAIT_S)
    except (TimeoutError, OSError):
        raise ConfigError(
            f"no Dask worker joined the scheduler at {address} within {WORKER_WAIT_S:g} s",
            "start one with `mlfit worker ADDRESS --target NAME` or `dask worker ADDRESS`",
        ) from None
    workers = worker_resources(client)
    crowded = _multi_threaded(client)
    offered = set().union(*workers.values()) if workers else set()
    # Targets no device claims prefer general-purpose workers, so a Raspberry Pi is not
    # kept busy with work that is not its own; any worker may still take them.
    general = [address for address, resources in workers.items() if not resources]
    embodied = [t for t in targets if resource_name(t.name) in offered]
    elsewhere = [t for t in targets if resource_name(t.name) not in offered]
    payloads: dict[Path, Any] = {}

    def general_now() -> list[str]:
        """General workers connected now (a resubmission must not name a dead one)."""
        return [a for a, resources in worker_resources(client).items() if not resources]

    def payload(path: Path) -> Any:
        """The model's bytes, scattered once to one worker (a general one when there is one, so
        that data locality does not pull general work onto a target's device; other workers fetch
        the bytes from it); sent again only when the worker holding them is gone."""
        held = payloads.get(path)
        if held is None or held.status != "finished":
            sent: ModelPayload = pack(path, shared_path)
            held = client.scatter(sent, broadcast=False, hash=False, workers=general_now() or None)
            payloads[path] = held
        return held

    def submitter(path: Path, group: list[Target], resource: str | None) -> Callable[[bool], Any]:
        def submit(restricted: bool) -> Any:
            if resource is not None:
                return client.submit(measure_task, payload(path), group, inputs, options, True, pure=False,
                                     resources={resource: 1}, key=_key(path, group[0].name))
            # Strictly on a general worker while there is one (a loose restriction lets an idle
            # device steal the task); unrestricted once none is left.
            return client.submit(measure_task, payload(path), group, inputs, options, False, pure=False,
                                 key=_key(path, "any"), workers=(general_now() or None) if restricted else None)
        return submit

    jobs: list[Job] = []
    for path in paths:
        groups: list[tuple[list[Target], str | None]] = [([t], resource_name(t.name)) for t in embodied]
        if elsewhere:
            groups.append((list(elsewhere), None))
        for group, resource in groups:
            job = Job(None, path, group, resource, submitter(path, group, resource),
                      general_only=resource is None and bool(general))
            job.send(True)
            jobs.append(job)
    results, refused = _gather(client, jobs, options, {t.name: t for t in targets}, on_event)
    notes = [
        f"{len(paths)} model(s) measured on the Dask cluster at {address} ({len(workers)} worker(s) at the "
        "start); each model's bytes were sent once, and answers were accepted only as JSON text"
    ]
    if crowded:
        notes.append(
            f"worker(s) {', '.join(crowded)} run several tasks at once, so their measurements disturb each "
            "other; start workers with --nthreads 1 (`mlfit worker` does)"
        )
    else:
        notes.append("each worker measured one model at a time (--nthreads 1)")
    unverified = {name for name, _ in refused}
    verified = [t.name for t in embodied if t.name not in unverified]
    if verified:
        notes.append(
            f"measured on the target's own worker: {', '.join(verified)} "
            "(labelled 'measured (target)': the worker's host facts match the target's hardware)"
        )
    notes.extend(dict.fromkeys(f"claimed, unverified: {why}" for _, why in refused))
    resent = sum(RESUBMITS - job.resubmits for job in jobs)
    if resent:
        notes.append(f"{resent} task(s) were sent again, with the model's bytes, after the worker holding "
                     "them left the cluster")
    if elsewhere:
        notes.append(
            f"no worker embodies {', '.join(t.name for t in elsewhere)}: measured on any worker and "
            "evaluated from host figures, as locally"
        )
    return results, notes


def _key(path: Path, where: str) -> str:
    """A readable, unique task key (shown by the scheduler's logs)."""
    return f"mlfit-{path.name}-{where}-{uuid.uuid4().hex[:8]}"


def _deadline(jobs: Sequence[Job], options: MeasureOptions) -> float:
    # Bounded: every job's own phases are bounded by the launcher; this covers queueing
    # behind the other jobs on the same worker, generously.
    per_job = 300.0 + 4 * options.max_time + (options.timeout or 0.0) * 4
    return time.monotonic() + 120.0 + per_job * max(1, len(jobs))


def _gather(
    client: Any, jobs: list[Job], options: MeasureOptions, by_name: dict[str, Target], on_event: EventFn | None
) -> tuple[list[RunResult], list[tuple[str, str]]]:
    order = {id(job): i for i, job in enumerate(jobs)}
    results: dict[int, RunResult] = {}
    refused: list[tuple[str, str]] = []
    pending = list(jobs)
    deadline = _deadline(jobs, options)

    def say(text: str) -> None:
        if on_event is not None:
            on_event({"event": "model", "text": text})

    def settle(job: Job, result: RunResult) -> None:
        results[order[id(job)]] = result
        pending.remove(job)

    first = True
    while pending and time.monotonic() < deadline:
        if not first:
            time.sleep(POLL_S)  # futures' status is kept current by the client's own thread
        first = False
        for job in list(pending):
            if job.failed is not None:
                settle(job, job.failed)
                say(f"{job.label}: ERROR (not sent)")
                continue
            status = job.future.status
            if status == "finished":
                try:
                    result, where, wrong = _finished(client, job, by_name)
                except MlfitError as exc:
                    settle(job, _error(job, exc.message, exc.hint or "", kind="refused"))
                    say(f"{job.label}: ERROR (answer refused)")
                    continue
                refused.extend(wrong)
                settle(job, result)
                say(f"{job.label}: {result.verdict.value} (measured by {where})")
            elif status in ("cancelled", "lost") and job.resubmits > 0:
                job.resubmits -= 1  # most often: the worker holding the scattered model is gone
                job.send(job.general_only)
                say(f"{job.label}: sent again (the task was {status}: the worker holding the model left)")
            elif status in ("error", "cancelled", "lost"):
                settle(
                    job,
                    _failure(job)
                    if status == "error"
                    else _error(
                        job,
                        f"{job.label}: the cluster lost the task ({status})",
                        "check that the scheduler is still running",
                    ),
                )
                say(f"{job.label}: ERROR ({status})")
        if not pending:
            break
        try:
            current = worker_resources(client)
        except (OSError, TimeoutError):
            continue
        now = time.monotonic()
        for job in list(pending):
            if job.failed is not None:
                continue  # settled on the next pass
            if job.general_only and not any(not resources for resources in current.values()):
                job.general_only = False  # every general worker is gone: any worker will do
                job.future.cancel()
                job.send(False)
                if job.failed is not None:
                    continue
            able = any(job.resource in r for r in current.values()) if job.resource else bool(current)
            if able:
                job.lost_since = None
                continue
            job.lost_since = job.lost_since or now
            if now - job.lost_since >= LOST_GRACE_S:
                job.future.cancel()
                what = (
                    f"the worker embodying {job.resource[len(RESOURCE_PREFIX) :]}"
                    if job.resource
                    else "every worker"
                )
                settle(
                    job,
                    _error(
                        job,
                        f"{job.label}: {what} left the cluster (died or was stopped) before "
                        "the measurement finished",
                        "restart the worker and run the check again; the other models went on",
                        kind="crash",
                    ),
                )
                say(f"{job.label}: ERROR (worker lost)")
    for job in list(pending):
        if job.future is not None:
            job.future.cancel()
        settle(
            job,
            _error(
                job,
                f"{job.label}: no result from the cluster in time",
                "check the workers' logs",
                kind="timeout",
            ),
        )
    return [results[i] for i in sorted(results)], refused
