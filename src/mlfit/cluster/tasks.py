"""What runs on a Dask worker: one model measured for some targets, in mlfit's usual
isolated worker subprocess (:func:`mlfit.run.run_path`, the path every run takes), returned as
JSON text.

The answer is a ``str`` (a :class:`TaskAnswer` as JSON): Dask carries it as msgpack, and the
client accepts nothing else (it never unpickles a worker's answer; see :mod:`mlfit.cluster.guard`)
and validates it with pydantic. The model's bytes arrive once per model (scattered by the client,
not copied into every task) and are written to this worker process's private scratch folder,
removed when the task ends and swept if the process dies (:mod:`mlfit.cluster.scratch`).

Imported by the workers by reference, so it must stay importable without the client.
"""

from __future__ import annotations

import shutil
import socket
import tempfile
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import BaseModel, ConfigDict

from mlfit.result import RunResult

if TYPE_CHECKING:
    from mlfit.catalog.loader import Target
    from mlfit.inputspec import InputSpec
    from mlfit.options import MeasureOptions

# Model files larger than this are refused for shipping: put them on a shared path.
MAX_PAYLOAD_BYTES = 2 * 2**30
# A worker's answer longer than this is refused before it is parsed (a result with raw samples is
# ~1 MB; the client also refuses, unfetched, an answer the scheduler says is larger).
MAX_ANSWER_CHARS = 8 * 2**20


class TaskAnswer(BaseModel):
    """A worker's answer, as JSON text: the result and who measured it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    result: RunResult
    worker: str
    hostname: str
    claims: list[str] = []  # targets this worker advertised as itself (empty: a general worker)


@dataclass(frozen=True)
class ModelPayload:
    """A model as it travels to a worker: its bytes (file or folder), or only its path when
    the workers share the client's filesystem (--shared-path)."""

    name: str
    origin: str  # absolute path on the client: what the report shows
    files: dict[str, bytes] | None  # relative path -> content; None means "read origin"
    is_dir: bool


def _materialise(payload: ModelPayload, scratch: Path) -> Path:
    """Write a payload's files under ``scratch`` (never outside it: a sender's names are not
    trusted) and return the model's path there. A single file may bring the external data
    files it names, at their relative places beside it."""
    if payload.files is None:
        return Path(payload.origin)
    name = Path(payload.name).name or "model"  # never a path from the sender
    base = scratch / "model"
    base.mkdir()
    root = base / name if payload.is_dir else base
    for relative, content in payload.files.items():
        destination = (root / relative).resolve()
        if base.resolve() not in destination.parents:  # never write outside the scratch folder
            continue
        destination.parent.mkdir(parents=True, exist_ok=True)
        destination.write_bytes(content)
    return base / name


def _worker_address() -> str:
    try:
        from distributed import get_worker

        return str(get_worker().address)
    except (ImportError, ValueError):
        return "local"


def _claims() -> list[str]:
    from mlfit.cluster import RESOURCE_PREFIX

    try:
        from distributed import get_worker

        resources = get_worker().state.total_resources
    except (ImportError, ValueError, AttributeError):
        return []
    return sorted(name[len(RESOURCE_PREFIX):] for name in resources if name.startswith(RESOURCE_PREFIX))


def measure_task(
    payload: ModelPayload, targets: list[Target], inputs: InputSpec, options: MeasureOptions, on_target: bool
) -> str:
    """Measure one model on this worker and check it against ``targets``; a TaskAnswer as JSON.

    ``on_target``: this worker embodies the targets, so the figures are theirs (the client
    checks that claim against the host facts in the result). Every error becomes an error
    result, so the task itself never fails; the JSON keeps the client's model path.
    """
    from mlfit.cluster.scratch import own_folder
    from mlfit.errors import ConfigError, MlfitError
    from mlfit.run import TargetHardware, error_result, run_path

    scratch = Path(tempfile.mkdtemp(prefix="task-", dir=own_folder()))
    path = Path(payload.origin)
    try:
        path = _materialise(payload, scratch)
        if not path.exists():
            missing = ConfigError(
                f"model '{payload.origin}' is not on this worker's filesystem",
                "--shared-path needs the same path on every worker; drop it to send the bytes",
            )
            result = error_result(path, missing, phase="identify")
        else:
            result = run_path(path, targets, inputs, options, venue=TargetHardware() if on_target else None)
    except MlfitError as exc:
        result = error_result(path, exc, phase="cluster")
    except Exception as exc:  # a bug, but a task that raises would make Dask pickle the exception
        traceback.print_exc()  # kept in the worker's log
        result = error_result(path, MlfitError(f"the measurement failed on the worker ({type(exc).__name__}: "
                                               f"{exc})", "see the worker's log"), phase="cluster")
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    result = result.model_copy(update={"model": result.model.model_copy(update={"path": payload.origin})})
    answer = TaskAnswer(result=result, worker=_worker_address(), hostname=socket.gethostname(), claims=_claims())
    return answer.model_dump_json()
