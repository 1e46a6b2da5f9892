"""One cluster measurement as the client tracks it (a :class:`Job`), and the error results it
becomes when it cannot finish: kept as data, so the other models go on."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlfit.cluster import RESOURCE_PREFIX
from mlfit.errors import ExitCode, MlfitError
from mlfit.result import RunResult

if TYPE_CHECKING:
    from mlfit.catalog.loader import Target

EventFn = Callable[[dict[str, object]], None]
RESUBMITS = 1  # a task whose scattered model was lost with its worker is sent again this often


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
    authenticated: bool = False  # mutual TLS: a worker's claim is at least a CA-signed member's

    def send(self, restricted: bool) -> None:
        """Submit (again); a Dask failure becomes this job's error result, not an exception."""
        try:
            self.future = self.submit(restricted)
        except MlfitError as exc:  # refused before a byte was sent (the local checks), or too large
            from mlfit.run import error_result

            self.future = None
            self.failed = error_result(self.path, exc)
        except Exception as exc:  # Dask's many kinds, or a refused pickle in the scheduler's reply
            self.future = None
            self.failed = error(self, f"{self.label}: could not send the model to the cluster ({describe(exc)})",
                                 "see the scheduler's and workers' logs")

    @property
    def label(self) -> str:
        names = ", ".join(t.name for t in self.targets)
        return f"{self.path.name} [{names}]"


def describe(exc: BaseException) -> str:
    """One line for an exception Dask raised; an error it could only rebuild from a (refused)
    pickle is named as such, not shown as bytes."""
    if exc.args and isinstance(exc.args[0], bytes | bytearray):
        return "an error sent as a pickle, not read"
    return f"{type(exc).__name__}: {str(exc)[:200]}"



def worker_resources(client: Any) -> dict[str, set[str]]:
    """Connected workers -> the mlfit target resources each advertises."""
    info = client.scheduler_info(n_workers=-1)
    return {
        address: {name for name in (worker.get("resources") or {}) if name.startswith(RESOURCE_PREFIX)}
        for address, worker in info.get("workers", {}).items()
    }



def error(job: Job, message: str, hint: str, kind: str = "cluster") -> RunResult:
    from mlfit.run import error_result

    result = error_result(job.path, MlfitError(message, hint, ExitCode.MODEL))
    error = result.error.model_copy(update={"kind": kind, "phase": "cluster"}) if result.error else None
    return result.model_copy(update={"error": error})



def failure(job: Job) -> RunResult:
    # The exception itself is not read: Dask would unpickle it (the guard refuses that anyway).
    return error(
        job,
        f"{job.label}: the cluster task failed (a worker died while measuring on every try, or a "
        "worker that is not mlfit's raised an error)",
        "see the workers' logs; the other models went on",
        kind="crash",
    )


