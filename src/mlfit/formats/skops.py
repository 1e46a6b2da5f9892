"""scikit-learn models saved with skops (a zip with schema.json): loaded by skops with its own
type allowlist in the worker (``--trust-type``); the parent bounds schema.json and reads
``n_features_in_`` from it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mlfit.catalog.schema import Runtime
from mlfit.formats.base import BATCH_DIM, SKLEARN_CONVERTERS, BaseFormat, Declared
from mlfit.formats.kinds import ModelFormat
from mlfit.result import TensorInfo

_MAX_JSON_BYTES = 64 * 2**20


def _skops_n_features(node: Any, depth: int = 0) -> int | None:
    """The first ``n_features_in_`` in a skops schema tree (the estimator's, or a pipeline's first step's)."""
    if depth > 64:
        return None
    if isinstance(node, dict):
        value = node.get("n_features_in_")
        if isinstance(value, dict) and isinstance(value.get("content"), (int, str)):
            try:
                return int(value["content"])
            except ValueError:
                return None
        if isinstance(value, int):
            return value
        for child in node.values():
            found = _skops_n_features(child, depth + 1)
            if found is not None:
                return found
    elif isinstance(node, list):
        for child in node:
            found = _skops_n_features(child, depth + 1)
            if found is not None:
                return found
    return None


def declared_inputs(path: Path) -> Declared | None:
    """``X`` of ``n_features_in_`` columns, from the archive's schema.json (never unpickled)."""
    from mlfit import safeio

    with safeio.open_regular(path, "the .skops archive") as fh, safeio.open_zip(fh, path) as archive:
        info = archive.getinfo("schema.json")
        if info.file_size > _MAX_JSON_BYTES:
            return None
        schema = safeio.loads_bounded(safeio.read_zip_member(archive, "schema.json", path), path,
                                      "schema.json in the archive")
    n = _skops_n_features(schema)
    if n is None:
        return None
    return Declared(inputs=[TensorInfo(name="X", dtype="float64", shape=[BATCH_DIM, n])])


def _types(node: Any, out: dict[str, int], depth: int = 0) -> None:
    """Every type the archive's schema names (``__module__.__class__``), counted."""
    if depth > 256:
        return
    if isinstance(node, dict):
        cls, module = node.get("__class__"), node.get("__module__")
        if isinstance(cls, str) and isinstance(module, str) and module != "builtins":  # not str, list, dict
            name = f"{module}.{cls}"
            out[name] = out.get(name, 0) + 1
        for value in node.values():
            _types(value, out, depth + 1)
    elif isinstance(node, list):
        for value in node:
            _types(value, out, depth + 1)


class Skops(BaseFormat):
    kind = ModelFormat.SKOPS
    runtime = Runtime.SKLEARN
    suffixes: tuple[str, ...] = (".skops",)
    converters = SKLEARN_CONVERTERS

    def check_safety(self, path: Path, trust_model: bool, signature: str) -> None:
        from mlfit.safety import check_skops_bounds

        check_skops_bounds(path)  # bounds hold even for a trusted model: the parent reads nothing unbounded

    def declared_inputs(self, path: Path, signature: str) -> Declared | None:
        return declared_inputs(path)

    def structure(self, path: Path, signature: str) -> dict[str, Any] | None:
        """The types the archive holds, from its schema.json (never unpickled), and X's columns."""
        from mlfit import safeio

        with safeio.open_regular(path, "the .skops archive") as fh, safeio.open_zip(fh, path) as archive:
            schema = safeio.loads_bounded(safeio.read_zip_member(archive, "schema.json", path), path,
                                          "schema.json in the archive")
        types: dict[str, int] = {}
        _types(schema, types)
        declared = declared_inputs(path)
        return {"inputs": [t.model_dump(exclude_none=True) for t in declared.inputs] if declared else [],
                "outputs": [], "ops": dict(sorted(types.items(), key=lambda kv: (-kv[1], kv[0]))),
                "node_count": sum(types.values()), "op_label": "type",
                "notes": ["types: what the archive's schema.json names, read without loading it"]}


FORMAT = Skops()
