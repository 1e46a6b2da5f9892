"""Pickles and joblib files (plain or compressed): nothing readable without unpickling, so no
declared inputs (the worker decides); refused unless trusted, naming every global the
unpickler would import and call (the pickle scan)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

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


    def structure(self, path: Path, signature: str) -> dict[str, Any] | None:
        """The globals the unpickler would import (the pickle scan's list, never unpickled)."""
        from mlfit.safety.pickle_scan import scan_pickle

        scan = scan_pickle(path)
        return {"inputs": [], "outputs": [], "ops": {name: 1 for name in scan.globals},
                "node_count": len(scan.globals), "op_label": "type",
                "notes": [f"types: the globals the unpickler would import (read by mlfit's pickle scan, "
                          f"never unpickled; compression: {scan.compression or 'none'}, {scan.arrays} "
                          "joblib arrays); inputs are known once it is loaded (`mlfit profile --trust-model`)"]}


FORMAT = Pickle()
