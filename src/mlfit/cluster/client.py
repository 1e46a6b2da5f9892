"""The client side of ``--cluster``: route each (model, target) measurement to a Dask worker,
gather the results, and turn every way a worker can vanish into an explained error result.

Routing: a target some worker embodies (resource ``mlfit-target-NAME``) is measured there and
labelled measured-on-target; the other targets of a model are measured together on any worker
and evaluated as they would be locally (host figures, or projections). A worker that dies
mid-run costs only the measurements that needed it: the scheduler re-runs free tasks on the
remaining workers, and tasks that only a lost worker could run are reported, not waited on.
"""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlfit.cluster import RESOURCE_PREFIX, resource_name
from mlfit.errors import ConfigError, ExitCode, MlfitError
from mlfit.result import RunResult

if TYPE_CHECKING:
    from mlfit.catalog.loader import Target
    from mlfit.inputspec import InputSpec
    from mlfit.options import MeasureOptions

EventFn = Callable[[dict[str, object]], None]

CONNECT_TIMEOUT_S = 15.0  # reaching the scheduler
WORKER_WAIT_S = 30.0  # for the first worker to be connected
LOST_GRACE_S = 5.0  # a nanny restarts a dead worker within this; after it, the worker is gone
POLL_S = 0.5


@dataclass
class Job:
    future: Any
    path: Path
    targets: list[Target]
    resource: str | None  # the target resource it needs, None for "any worker"
    lost_since: float | None = None

    @property
    def label(self) -> str:
        names = ", ".join(t.name for t in self.targets)
        return f"{self.path.name} [{names}]"


_ADDRESS = re.compile(r"^(tcp|tls|ws|wss|ucx)://(\[[0-9a-fA-F:.]+\]|[^/:\s\[\]]+):[0-9]{1,5}$")


def check_address(address: str) -> str:
    """Refuse a scheduler address Dask would spend half a minute failing on."""
    if not _ADDRESS.match(address):
        raise ConfigError(
            f"--cluster '{address}': expected a scheduler address such as tcp://HOST:8786",
            "give the address `dask scheduler` printed (tcp:// or tls://, host and port)",
        )
    return address


def _connect(address: str) -> Any:
    check_address(address)
    try:
        from distributed import Client
    except ImportError:
        raise ConfigError(
            "--cluster needs the 'distributed' package", "pip install 'mlfit[cluster]'"
        ) from None
    try:
        return Client(address, timeout=CONNECT_TIMEOUT_S, set_as_default=False)
    except (OSError, TimeoutError, ValueError) as exc:
        raise ConfigError(
            f"cannot reach the Dask scheduler at {address} ({type(exc).__name__}: {exc})",
            "start one with `dask scheduler`, or check the tcp://HOST:PORT address",
        ) from None


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


def _finished(job: Job, on_target: bool) -> tuple[RunResult, str]:
    """The job's result, with who measured it in each target's notes."""
    payload = job.future.result()
    result = RunResult.model_validate_json(payload["result"])
    where = f"Dask worker {payload['worker']} on host {payload['hostname']}"
    label = "the target's own hardware" if on_target else "a worker that is not the target's hardware"
    targets = [
        t.model_copy(update={"notes": [*t.notes, f"measured by {where} ({label})"]}) for t in result.targets
    ]
    return result.model_copy(update={"targets": targets}), where


def _failure(job: Job) -> RunResult:
    exc = job.future.exception()
    name = type(exc).__name__
    if name == "KilledWorker":
        return _error(
            job,
            f"{job.label}: the Dask worker died while measuring, on every try",
            "see the worker's log; the other models went on",
            kind="crash",
        )
    return _error(
        job,
        f"{job.label}: the cluster task failed ({name}: {exc})",
        "see the worker's log; the other models went on",
    )


def check_on_cluster(
    paths: Sequence[Path],
    targets: Sequence[Target],
    inputs: InputSpec,
    options: MeasureOptions,
    address: str,
    shared_path: bool,
    on_event: EventFn | None = None,
) -> tuple[list[RunResult], list[str]]:
    """Measure every model for every target on the cluster at ``address``. Returns (results, notes)."""
    from mlfit.cluster.tasks import measure_task, pack

    if (inputs.data_file or inputs.data_arrays) and not shared_path:
        raise ConfigError(
            "--data files are not sent to cluster workers",
            "put them on a filesystem every worker mounts and add --shared-path",
        )
    client = _connect(address)
    try:
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
        jobs: list[Job] = []
        for path in paths:
            # The bytes travel inside each task, not scattered once: scattered data lives on one
            # worker, and a worker that dies would take every model it held with it.
            sent = pack(path, shared_path)
            for target in embodied:
                resource = resource_name(target.name)
                future = client.submit(
                    measure_task,
                    sent,
                    [target],
                    inputs,
                    options,
                    True,
                    pure=False,
                    resources={resource: 1},
                    key=_key(path, target.name),
                )
                jobs.append(Job(future, path, [target], resource))
            if elsewhere:
                future = client.submit(
                    measure_task,
                    sent,
                    list(elsewhere),
                    inputs,
                    options,
                    False,
                    pure=False,
                    key=_key(path, "any"),
                    workers=general or None,
                    allow_other_workers=bool(general),
                )
                jobs.append(Job(future, path, list(elsewhere), None))
        results = _gather(client, jobs, options, on_event)
    finally:
        client.close(timeout=10)
    notes = [
        f"{len(paths)} model(s) measured on the Dask cluster at {address} ({len(workers)} worker(s) at the "
        "start)"
    ]
    if crowded:
        notes.append(
            f"worker(s) {', '.join(crowded)} run several tasks at once, so their measurements disturb each "
            "other; start workers with --nthreads 1 (`mlfit worker` does)"
        )
    else:
        notes.append("each worker measured one model at a time (--nthreads 1)")
    if embodied:
        notes.append(
            f"measured on the target's own worker: {', '.join(t.name for t in embodied)} "
            "(labelled 'measured (target)')"
        )
    if elsewhere:
        notes.append(
            f"no worker embodies {', '.join(t.name for t in elsewhere)}: measured on any worker and "
            "evaluated from host figures, as locally"
        )
    return results, notes


def _key(path: Path, where: str) -> str:
    """A readable, unique task key (shown by the scheduler's dashboard and logs)."""
    return f"mlfit-{path.name}-{where}-{uuid.uuid4().hex[:8]}"


def _deadline(jobs: Sequence[Job], options: MeasureOptions) -> float:
    # Bounded: every job's own phases are bounded by the launcher; this covers queueing
    # behind the other jobs on the same worker, generously.
    per_job = 300.0 + 4 * options.max_time + (options.timeout or 0.0) * 4
    return time.monotonic() + 120.0 + per_job * max(1, len(jobs))


def _gather(
    client: Any, jobs: list[Job], options: MeasureOptions, on_event: EventFn | None
) -> list[RunResult]:
    order = {id(job): i for i, job in enumerate(jobs)}
    results: dict[int, RunResult] = {}
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
            status = job.future.status
            if status == "finished":
                result, where = _finished(job, job.resource is not None)
                settle(job, result)
                say(f"{job.label}: {result.verdict.value} (measured by {where})")
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
    return [results[i] for i in sorted(results)]
