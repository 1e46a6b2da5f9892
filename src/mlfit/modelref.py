"""A model file as the rest of mlfit knows it: its path, recognised format, runtime, and the
file facts every result carries (sha256, size). Pure Python; imports no runtime.

Below the orchestration (``mlfit.run``) and the steps it calls (convert, the gate's checks), so each
of them can name a model without importing the others.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from mlfit.catalog.schema import Runtime
from mlfit.errors import ConfigError
from mlfit.formats import ModelFormat, sniff, suffix_mismatch
from mlfit.formats.registry import get


def sha256_of(path: Path) -> str:
    """SHA-256 of a file, or of a folder's files (relative names included, in sorted order):
    regular files only, links kept inside the folder, each read at most to its listed size
    (mlfit.safeio; a link to an endless /proc file hung the parent here)."""
    from mlfit import safeio

    return safeio.sha256_of(path)


def size_of(path: Path) -> int:
    """Bytes on disk of a file, or of every regular file in a folder (mlfit.safeio's walk)."""
    from mlfit import safeio

    return safeio.size_of(path)


@dataclass(frozen=True)
class ModelRef:
    path: Path
    format: ModelFormat
    runtime: Runtime
    notes: tuple[str, ...] = ()


def identify(model: str | Path, runtime: Runtime | None = None) -> ModelRef:
    """Check the path, recognise the format from content, pick the runtime."""
    path = Path(model)
    if not path.exists():
        raise ConfigError(f"model '{model}' does not exist", "check the path")
    found = sniff(path)
    notes = tuple(n for n in [suffix_mismatch(path, found)] if n)
    return ModelRef(path=path.resolve(), format=found, runtime=runtime or get(found).runtime, notes=notes)
