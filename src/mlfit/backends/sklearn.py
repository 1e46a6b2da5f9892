"""scikit-learn backend: ``.skops`` files through skops, pickles (``.pkl``, ``.joblib``)
only with ``--trust-model``.

skops lists the types its loader does not trust by default
(``skops.io.get_untrusted_types``); each must be named with ``--trust-type``, and
``--trust-model`` never trusts them wholesale. sklearn, joblib and skops are imported
when this module is imported, so their cost is the runtime baseline.

Input: one 2-D array ``X`` of shape (batch, n_features_in_) in float64 (what scikit-learn
computes in); the leading dim is free so single-row latency (``--dim batch=1``) and
batched throughput are both measured. A model fitted on a DataFrame gets a DataFrame with
its ``feature_names_in_`` columns, built before timing.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import sklearn

try:
    import skops.io as skops_io
except ImportError:  # pragma: no cover - skops is in the same extra
    skops_io = None

from mlfit.backends.base import Backend, LoadOptions
from mlfit.catalog.schema import Runtime
from mlfit.errors import ModelError
from mlfit.formats import ModelFormat, sniff
from mlfit.result import TensorInfo

METHODS = ("predict", "predict_proba", "transform")
INPUT = "X"
BATCH_DIM = "batch"


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:300] if text else type(exc).__name__


def load_skops(path: str, trust_types: tuple[str, ...]) -> Any:
    """Load a .skops file trusting exactly the listed types, or explain which are missing."""
    if skops_io is None:
        from mlfit.install import install_hint

        raise ModelError(
            "skops is not installed, so .skops files cannot be loaded", install_hint("sklearn")
        )
    try:
        untrusted = list(skops_io.get_untrusted_types(file=path))
    except Exception as exc:
        raise ModelError(
            f"skops could not read the file: {_first_line(exc)}", "re-save with skops.io.dump"
        ) from None
    missing = [t for t in untrusted if t not in trust_types]
    if missing:
        flags = " ".join(f"--trust-type {t}" for t in missing)
        raise ModelError(
            f"the .skops file needs types skops does not trust by default: {', '.join(missing)}",
            f"if you trust them, name each one: {flags} (--trust-model does not apply to skops)",
        )
    try:
        return skops_io.load(path, trusted=untrusted)
    except Exception as exc:
        raise ModelError(
            f"skops could not load the model: {_first_line(exc)}",
            "re-save it with this scikit-learn and skops version",
        ) from None


def load_pickle(path: str, trusted: bool) -> Any:
    if not trusted:  # the parent refuses first; this guards the worker against a direct request
        raise ModelError("refusing to unpickle without --trust-model", "convert the model to skops")
    try:
        return joblib.load(path)
    except Exception as exc:
        raise ModelError(
            f"joblib could not load the model: {_first_line(exc)}",
            "load it with the scikit-learn version that saved it",
        ) from None


class SklearnBackend(Backend):
    runtime = Runtime.SKLEARN

    def __init__(self) -> None:
        self.model: Any = None
        self.method = "predict"
        self.format: ModelFormat | None = None
        self.feature_names: list[str] | None = None
        self.n_features: int | None = None
        self._call: Callable[[Any], Any] | None = None

    def load(self, path: str, options: LoadOptions) -> None:
        if options.method not in METHODS:
            raise ModelError(f"--method {options.method}: expected one of {', '.join(METHODS)}")
        self.format = sniff(Path(path))
        if self.format is ModelFormat.SKOPS:
            self.model = load_skops(path, options.trust_types)
        elif self.format is ModelFormat.PICKLE:
            self.model = load_pickle(path, options.trust_model)
        else:
            raise ModelError(
                f"the sklearn runtime cannot run a {self.format.value} model",
                "leave out --runtime so mlfit picks the runtime from the file",
            )
        call = getattr(self.model, options.method, None)
        if not callable(call):
            have = [m for m in METHODS if callable(getattr(self.model, m, None))]
            raise ModelError(
                f"{type(self.model).__name__} has no method {options.method}",
                f"use --method {' or '.join(have)}" if have else "this object is not an estimator",
            )
        self.method = options.method
        self._call = call
        n = getattr(self.model, "n_features_in_", None)
        self.n_features = int(n) if isinstance(n, (int, np.integer)) else None
        names = getattr(self.model, "feature_names_in_", None)
        self.feature_names = [str(x) for x in names] if names is not None else None

    def inputs(self) -> list[TensorInfo]:
        return [TensorInfo(name=INPUT, dtype="float64", shape=[BATCH_DIM, self.n_features])]

    def outputs(self) -> list[TensorInfo]:
        return []

    def prepare(self, feeds: dict[str, Any]) -> Any:
        array = np.asarray(feeds[INPUT])
        if self.feature_names is not None:
            try:
                import pandas as pd
            except ImportError:
                return array
            return pd.DataFrame(array, columns=self.feature_names)
        return array

    def run(self, prepared: Any) -> Any:
        assert self._call is not None
        return self._call(prepared)

    def runner(self) -> Callable[[Any], Any]:
        assert self._call is not None
        return self._call

    def version(self) -> str:
        return str(sklearn.__version__)

    def details(self) -> dict[str, Any]:
        return {
            "format": self.format.value if self.format else None,
            "method": self.method,
            "estimator": type(self.model).__name__,
            "n_features_in": self.n_features,
            "feature_names": (self.feature_names or [])[:64],
            "joblib_version": str(joblib.__version__),
        }
