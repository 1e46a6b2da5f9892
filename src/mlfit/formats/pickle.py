"""Pickles and joblib files (plain or compressed): nothing readable without unpickling, so no
declared inputs (the worker decides); refused unless trusted, naming every global the
unpickler would import and call (the pickle scan)."""

from __future__ import annotations

from pathlib import Path

from mlfit.catalog.schema import Runtime
from mlfit.formats.base import SKLEARN_CONVERTERS, BaseFormat
from mlfit.formats.kinds import ModelFormat


class Pickle(BaseFormat):
    kind = ModelFormat.PICKLE
    runtime = Runtime.SKLEARN
    suffixes: tuple[str, ...] = (".pkl", ".pickle", ".joblib")
    converters = SKLEARN_CONVERTERS

    def check_safety(self, path: Path, trust_model: bool, signature: str) -> None:
        if not trust_model:
            from mlfit.safety import check_pickle

            check_pickle(path)


FORMAT = Pickle()
