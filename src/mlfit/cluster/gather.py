"""Waiting for a cluster's answers: every job settles, within bounds, as a result or as an
explained error (a task that erred, a worker lost or stalled, the scheduler gone, no answer in
time); what was measured before a failure is kept."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from mlfit.cluster import RESOURCE_PREFIX
from mlfit.cluster.answers import finished
from mlfit.cluster.jobs import EventFn, Job, error, failure
from mlfit.errors import MlfitError
from mlfit.result import RunResult

if TYPE_CHECKING:
    from mlfit.catalog.loader import Target
    from mlfit.cluster.watch import Heartbeats
    from mlfit.options import MeasureOptions

LOST_GRACE_S = 5.0  # a nanny restarts a dead worker within this; after it, the worker is gone
POLL_S = 0.5


def _deadline(jobs: Sequence[Job], options: MeasureOptions) -> float:
    # Bounded: every job's own phases are bounded by the launcher; this covers queueing
    # behind the other jobs on the same worker, generously.
    per_job = 300.0 + 4 * options.max_time + (options.timeout or 0.0) * 4
    return time.monotonic() + 120.0 + per_job * max(1, len(jobs))


@dataclass
class _Wait:
    """The jobs still waited on, and how each settled."""

    jobs: list[Job]
    on_event: EventFn | None
    results: dict[int, RunResult] = field(default_factory=dict)
    refused: list[tuple[str, str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    pending: list[Job] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.pending = list(self.jobs)
        self._order = {id(job): i for i, job in enumerate(self.jobs)}

    def say(self, text: str) -> None:
        if self.on_event is not None:
            self.on_event({"event": "model", "text": text})

    def settle(self, job: Job, result: RunResult, said: str | None = None) -> None:
        self.results[self._order[id(job)]] = result
        self.pending.remove(job)
        if said:
            self.say(f"{job.label}: {said}")

    def ordered(self) -> list[RunResult]:
        return [self.results[i] for i in sorted(self.results)]


def gather(
    client: Any, jobs: list[Job], options: MeasureOptions, by_name: dict[str, Target], on_event: EventFn | None
) -> tuple[list[RunResult], list[tuple[str, str]], list[str]]:
    """Wait for every job; returns (results in job order, refused claims, notes on what happened)."""
    from mlfit.cluster.watch import Heartbeats, scheduler_lost

    wait = _Wait(jobs, on_event)
    deadline = _deadline(jobs, options)
    beats = Heartbeats()
    first = True
    while wait.pending and time.monotonic() < deadline:
        if not first:
            time.sleep(POLL_S)  # futures' status is kept current by the client's own thread
        first = False
        if scheduler_lost(client):  # checked first: Dask cancels every future when it goes
            _scheduler_gone(client, wait)
            break
        _settle_answered(client, wait, by_name)
        if wait.pending:
            _watch_workers(client, wait, beats)
    for job in list(wait.pending):
        if job.future is not None:
            job.future.cancel()
        wait.settle(job, error(job, f"{job.label}: no result from the cluster in time", "check the workers' logs",
                               kind="timeout"))
    return wait.ordered(), wait.refused, wait.notes


def _scheduler_gone(client: Any, wait: _Wait) -> None:
    """Every job still waited on ends as 'the scheduler was lost'; the report is incomplete."""
    address = getattr(getattr(client, "scheduler", None), "address", None) or "the scheduler"
    message = (f"the Dask scheduler at {address} was lost (it stopped, or the network to it failed) before "
               "this measurement finished")
    for job in list(wait.pending):
        result = error(job, f"{job.label}: {message}", "restart the scheduler and the workers, then run the "
                       "check again; results already measured are kept", kind="interrupted")
        wait.settle(job, result.model_copy(update={"complete": False}), "ERROR (scheduler lost)")
    wait.notes.append(f"{message}: the report is incomplete (complete: false); the results measured before "
                      "are kept")


def _settle_answered(client: Any, wait: _Wait, by_name: dict[str, Target]) -> None:
    """Settle each job whose task finished, failed or was lost (read from the futures, and for
    errors also from the scheduler's own task state)."""
    from mlfit.cluster.watch import scheduler_lost, task_states

    live = [job for job in wait.pending if job.failed is None and job.future is not None]
    try:
        states = task_states(client, [job.future.key for job in live]) if live else {}
    except Exception:  # the scheduler did not answer this time: the futures still say enough
        states = {}
    for job in list(wait.pending):
        if job.failed is not None:
            wait.settle(job, job.failed, "ERROR (not sent)")
            continue
        status = job.future.status
        if status == "pending" and states.get(job.future.key) == "erred":
            status = "error"  # an error Dask could not rebuild here leaves the future pending
        if status == "finished":
            try:
                result, where, wrong = finished(client, job, by_name)
            except MlfitError as exc:
                wait.settle(job, error(job, exc.message, exc.hint or "", kind="refused"), "ERROR (answer refused)")
                continue
            wait.refused.extend(wrong)
            wait.settle(job, result, f"{result.verdict.value} (measured by {where})")
        elif status in ("cancelled", "lost") and scheduler_lost(client):
            return  # Dask cancels every future when the scheduler goes: the next pass names it
        elif status in ("cancelled", "lost") and job.resubmits > 0:
            job.resubmits -= 1  # most often: the worker holding the scattered model is gone
            job.send(job.general_only)
            wait.say(f"{job.label}: sent again (the task was {status}: the worker holding the model left)")
        elif status == "error":
            job.future.cancel()
            wait.settle(job, failure(job), "ERROR (the task failed)")
        elif status in ("cancelled", "lost"):
            wait.settle(job, error(job, f"{job.label}: the cluster lost the task ({status})",
                                   "check that the scheduler is still running"), f"ERROR ({status})")


def _watch_workers(client: Any, wait: _Wait, beats: Heartbeats) -> None:
    """Name and drop a worker that stalled on one of our tasks; give up on jobs no connected
    worker can run any more."""
    from mlfit.cluster.watch import processing, remove, stall_bound, workers

    try:
        info = workers(client)
    except Exception:  # no answer this time; a lost scheduler is caught by the next pass
        return
    silent = beats.silent(info)
    bound = stall_bound()
    stalled = [address for address, quiet in silent.items() if quiet >= bound]
    if stalled:
        try:
            busy = processing(client)
        except Exception:
            busy = {}
        ours = {job.future.key for job in wait.pending if job.future is not None}
        for address in stalled:
            held = ours & set(busy.get(address, ()))
            if not held:
                continue
            name = info[address].get("name", address)
            wait.notes.append(f"worker {name} ({address}) sent no heartbeat for {silent[address]:.0f} s while "
                              f"measuring (stopped or hung; bound {bound:g} s, MLFIT_CLUSTER_STALL_S): it was "
                              "removed from the cluster and its task sent to another worker")
            wait.say(f"worker {name} ({address}) is silent for {silent[address]:.0f} s: removed, its task re-sent")
            with contextlib.suppress(Exception):  # not removed: the next pass asks again
                remove(client, address)
            info.pop(address, None)
    current = {address: {n for n in (w.get("resources") or {}) if n.startswith(RESOURCE_PREFIX)}
               for address, w in info.items()}
    _drop_unrunnable(wait, current)


def _drop_unrunnable(wait: _Wait, current: dict[str, set[str]]) -> None:
    now = time.monotonic()
    for job in list(wait.pending):
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
            what = (f"the worker embodying {job.resource[len(RESOURCE_PREFIX):]}" if job.resource
                    else "every worker")
            wait.settle(job, error(job, f"{job.label}: {what} left the cluster (died or was stopped) before the "
                                   "measurement finished",
                                   "restart the worker and run the check again; the other models went on",
                                   kind="crash"), "ERROR (worker lost)")
