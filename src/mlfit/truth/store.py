"""Where the truth store lives, and reading and writing it and its fit file.

Location, first that applies: ``--truth FILE``; ``$MLFIT_TRUTH`` (a file committed to the team's
repository, so every CI runner projects from the same rows); ``truth.json`` in the user's private
cache folder (``$XDG_CACHE_HOME/mlfit``, 0700). The fit is saved beside the store
(``truth.json`` -> ``truth.fit.json``).

Both files are data only: read as regular files with a size cap and a bound on JSON values
(:mod:`mlfit.safeio`), validated against :mod:`.schema`, refused with one line (exit 2) when
truncated, malformed or written by a newer mlfit; written atomically.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import TypeVar

from pydantic import BaseModel, ValidationError

from mlfit.errors import ConfigError
from mlfit.truth.schema import FIT_SCHEMA_VERSION, STORE_SCHEMA_VERSION, FitFile, TruthStore

ENV = "MLFIT_TRUTH"
STORE_NAME = "truth.json"
_MAX_VALUES = 4_000_000  # a row holds ~60 values: room for tens of thousands of rows

M = TypeVar("M", bound=BaseModel)


def store_path(option: Path | None = None) -> Path:
    """The store's path (not created here, except the private cache folder for the default)."""
    if option is not None:
        return option
    env = os.environ.get(ENV)
    if env:
        return Path(env)
    from mlfit.analysis.calcache import secure_cache_dir

    return secure_cache_dir() / STORE_NAME


def fit_path(store: Path) -> Path:
    """The fit file beside the store: ``truth.json`` -> ``truth.fit.json``."""
    return store.with_name(f"{store.stem}.fit.json")


def digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _read(path: Path, model: type[M], version: int, what: str) -> tuple[M, str]:
    from mlfit import safeio

    raw = safeio.read_bounded(path, "report", what, ConfigError)
    hint = f"restore {path} from version control, or move it away to start a new one"
    try:
        data = safeio.loads_bounded(raw, path, what, ConfigError, max_values=_MAX_VALUES)
    except ConfigError as exc:
        raise ConfigError(exc.message, hint) from None
    if not isinstance(data, dict) or not isinstance(data.get("schema_version"), int):
        raise ConfigError(f"{path}: not an mlfit {what} (no schema_version)", hint)
    if data["schema_version"] > version:
        raise ConfigError(f"{path}: {what} format {data['schema_version']} is newer than this mlfit reads "
                          f"({version})", "upgrade mlfit where it was installed from (its checkout: git pull, then "
                          "pip install -e .)")
    try:
        return model.model_validate(data), digest(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise ConfigError(f"{path}: malformed {what} at {where}: {first['msg']}", hint) from None


def read_store(path: Path) -> tuple[TruthStore, str]:
    """The store and the sha256 of its bytes; an empty store (and "") when the file does not exist."""
    if not path.exists():
        return TruthStore(), ""
    return _read(path, TruthStore, STORE_SCHEMA_VERSION, "truth store")


def read_fits(path: Path) -> FitFile:
    if not path.exists():
        return FitFile()
    return _read(path, FitFile, FIT_SCHEMA_VERSION, "device fit file")[0]


def _write(path: Path, model: BaseModel) -> str:
    from mlfit.report.atomic import write_atomic

    if not path.parent.is_dir():
        raise ConfigError(f"cannot write {path}: its folder does not exist", "create the folder or give --truth FILE")
    data = (model.model_dump_json(indent=1) + "\n").encode()
    write_atomic(path, data)
    return digest(data)


def write_store(path: Path, store: TruthStore) -> str:
    """Write the store atomically; the sha256 of what was written."""
    return _write(path, store)


def write_fits(path: Path, fits: FitFile) -> None:
    _write(path, fits)
