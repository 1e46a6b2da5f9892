"""What runs on a Dask worker: one model measured for some targets, in mlfit's usual
isolated worker subprocess (:func:`mlfit.run.run_path`, the path every run takes), returned as JSON.

Imported by the workers by reference, so it must stay importable without the client.
"""

from __future__ import annotations

import socket
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mlfit.catalog.loader import Target
    from mlfit.inputspec import InputSpec
    from mlfit.options import MeasureOptions

# Model files larger than this are refused for shipping: put them on a shared path.
MAX_PAYLOAD_BYTES = 2 * 2**30


@dataclass(frozen=True)
class ModelPayload:
    """A model as it travels to a worker: its bytes (file or folder), or only its path when
    the workers share the client's filesystem (--shared-path)."""

    name: str
    origin: str  # absolute path on the client: what the report shows
    files: dict[str, bytes] | None  # relative path -> content; None means "read origin"
    is_dir: bool


def pack(path: Path, shared_path: bool) -> ModelPayload:
    """Read a model for sending (or note its shared path)."""
    from mlfit.errors import ConfigError

    path = path.resolve()
    if shared_path:
        return ModelPayload(path.name, str(path), None, path.is_dir())
    members = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    total = sum(p.stat().st_size for p in members)
    if total > MAX_PAYLOAD_BYTES:
        raise ConfigError(
            f"{path}: {total / 2**30:.1f} GiB is too large to send to cluster workers",
            "put the models on a filesystem every worker mounts and add --shared-path",
        )
    if path.is_dir():
        return ModelPayload(
            path.name, str(path), {str(p.relative_to(path)): p.read_bytes() for p in members}, True
        )
    return ModelPayload(path.name, str(path), {path.name: path.read_bytes()}, False)


def _materialise(payload: ModelPayload, scratch: Path) -> Path:
    if payload.files is None:
        return Path(payload.origin)
    if not payload.is_dir:
        target = scratch / payload.name
        target.write_bytes(payload.files[payload.name])
        return target
    root = scratch / payload.name
    for relative, content in payload.files.items():
        destination = (root / relative).resolve()
        if root.resolve() not in destination.parents:  # never write outside the scratch folder
            continue
        destination.parent.mkdir(parents=True, exist_ok=True)
        destination.write_bytes(content)
    return root


def _worker_address() -> str:
    try:
        from distributed import get_worker

        return str(get_worker().address)
    except (ImportError, ValueError):
        return "local"


def measure_task(
    payload: ModelPayload, targets: list[Target], inputs: InputSpec, options: MeasureOptions, on_target: bool
) -> dict[str, str]:
    """Measure one model on this worker and check it against ``targets``.

    ``on_target``: this worker embodies the targets, so the figures are theirs. Errors the
    user can fix come back as an error result; the JSON keeps the client's model path.
    """
    from mlfit.errors import ConfigError
    from mlfit.run import error_result, run_path

    with tempfile.TemporaryDirectory(prefix="mlfit-cluster-") as tmp:
        path = _materialise(payload, Path(tmp))
        if not path.exists():
            missing = ConfigError(
                f"model '{payload.origin}' is not on this worker's filesystem",
                "--shared-path needs the same path on every worker; drop it to send the bytes",
            )
            result = error_result(path, missing, phase="identify")
        else:
            result = run_path(path, targets, inputs, options, on_target=on_target)
    result = result.model_copy(update={"model": result.model.model_copy(update={"path": payload.origin})})
    return {"result": result.model_dump_json(), "worker": _worker_address(), "hostname": socket.gethostname()}
