"""Walk a Keras model config (``config.json`` in a ``.keras`` zip, the ``model_config``
attribute of a legacy ``.h5``) before anything loads it, and list what could run code.

Refused, each with the path of the layer that holds it:
- ``Lambda`` layers (and Keras 2's ``TFOpLambda``/``SlicingOpLambda``): they carry
  marshalled Python bytecode or call any TensorFlow function by name;
- an object whose ``module`` is not one of Keras's own layer, model, initializer,
  regularizer, constraint, activation, op or dtype-policy modules (custom layers, and
  Keras utilities such as ``keras.utils.get_file`` reached through a config);
- serialized Python functions (``__lambda__``) anywhere;
- anything that switches unsafe deserialization on (``safe_mode: false``, a mention of
  ``enable_unsafe_deserialization``);
- anything that makes Keras read a file outside the archive: a ``vocabulary`` (StringLookup,
  IntegerLookup, TextVectorization) that is not inline (Keras reads a string there as a path,
  with ``tf.io.gfile``, so any local file or URL-like path), and a ``filepath`` (TFSMLayer
  loads a whole SavedModel from it). Allowlist: a vocabulary is a list, a serialized array, or
  absent (then it is the asset inside the archive); anything else is refused.

Nested models are part of the same config tree and are walked like any layer.
``compile_config``/``training_config`` are skipped: mlfit loads with ``compile=False``,
so losses and metrics named there are never deserialized.
Pure Python (json, zipfile; h5py only when installed); imports no runtime.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

_CODE_LAYERS = {"Lambda", "TFOpLambda", "SlicingOpLambda"}
_ALLOWED_MODULES = {
    "keras", "keras.layers", "keras.models", "keras.initializers", "keras.regularizers", "keras.constraints",
    "keras.activations", "keras.losses", "keras.metrics", "keras.dtype_policies", "keras.mixed_precision",
}  # fmt: skip
_ALLOWED_PREFIXES = (
    "keras.layers.",
    *(f"keras.src.{part}." for part in ("models", "layers", "initializers", "regularizers", "constraints",
                                        "activations", "ops", "dtype_policies")),
)  # fmt: skip
_SKIPPED_KEYS = {"compile_config", "training_config"}
# The words every outside-file finding carries: the refusal's hint depends on them.
OUTSIDE_READ = "reads a file outside the archive"


def _shown_path(value: object, limit: int = 80) -> str:
    """A path from the config, bounded for one line; the middle goes, so the file's name stays."""
    if not isinstance(value, str):
        return type(value).__name__
    text = repr(value)
    return text if len(text) <= limit else f"{text[: limit // 3]}…{text[-(limit - limit // 3 - 1):]}"
_INLINE_ARRAYS = {"__numpy__", "__tensor__"}  # how Keras serializes an array inline
_MAX_DEPTH = 200


class KerasConfigError(Exception):
    """The config cannot be read (not JSON, missing)."""


def module_allowed(module: str) -> bool:
    return module in _ALLOWED_MODULES or module.startswith(_ALLOWED_PREFIXES)


def _label(node: dict[str, Any]) -> str | None:
    cls = node.get("class_name")
    config = node.get("config")
    name = config.get("name") if isinstance(config, dict) else None
    if not isinstance(cls, str) or cls.startswith("__"):
        return None
    return f"{name} ({cls})" if isinstance(name, str) else cls


def walk_config(config: Any) -> list[str]:
    """Every problem in a Keras config tree, as 'PATH: what' lines (empty when it is safe)."""
    problems: list[str] = []
    _walk(config, [], problems, 0)
    # One line per layer: a Lambda layer's own serialized function is the same finding.
    seen: set[str] = set()
    unique: list[str] = []
    for line in problems:
        where = line.split(": ", 1)[0]
        if where not in seen:
            seen.add(where)
            unique.append(line)
    return unique


def _walk(node: Any, path: list[str], problems: list[str], depth: int) -> None:
    if depth > _MAX_DEPTH:
        problems.append(f"{' > '.join(path) or 'model'}: config nested deeper than {_MAX_DEPTH} levels")
        return
    where = " > ".join(path) or "model"
    if isinstance(node, list):
        for item in node:
            _walk(item, path, problems, depth + 1)
        return
    if isinstance(node, str):
        if "enable_unsafe_deserialization" in node:
            problems.append(f"{where}: mentions enable_unsafe_deserialization")
        return
    if not isinstance(node, dict):
        return
    here = path
    if "class_name" in node:
        label = _label(node)
        if label is not None:
            here = [*path, label]
            where = " > ".join(here)
        cls = node.get("class_name")
        module = node.get("module")
        if not isinstance(cls, str):  # Keras writes names; anything else is a crafted config
            problems.append(f"{where}: malformed class_name entry")
        elif cls in _CODE_LAYERS:
            problems.append(f"{where}: a {cls} layer runs arbitrary Python code")
        elif cls == "__lambda__":
            problems.append(f"{where}: a serialized Python lambda (bytecode)")
        elif isinstance(module, str) and not module_allowed(module):
            problems.append(f"{where}: class {cls} from module '{module}' is not part of Keras")
        elif module is not None and not isinstance(module, str):
            problems.append(f"{where}: class {cls} has a malformed module entry")
    if node.get("function_type") == "lambda":
        problems.append(f"{where}: a serialized Python lambda (bytecode)")
    for key, value in node.items():
        if key == "safe_mode" and value is False:
            problems.append(f"{where}: sets safe_mode to false")
        outside = _outside_read(key, value)
        if outside:
            problems.append(f"{where}: {outside}")
        if key in _SKIPPED_KEYS:
            continue
        _walk(value, here, problems, depth + 1)


def _inline_vocabulary(value: Any) -> bool:
    if value is None or isinstance(value, list):
        return True
    return isinstance(value, dict) and value.get("class_name") in _INLINE_ARRAYS and isinstance(
        value.get("config"), dict)


def _outside_read(key: str, value: Any) -> str | None:
    """What reading ``key: value`` in a layer config would make Keras open, or None."""
    if key == "vocabulary" and not _inline_vocabulary(value):
        shown = _shown_path(value)
        return f"its vocabulary {OUTSIDE_READ} ({shown}); a vocabulary must be inline or an asset in the archive"
    if key == "filepath" and value is not None:
        shown = _shown_path(value)
        return f"it loads another model from a path: {OUTSIDE_READ} ({shown})"
    return None


def keras_zip_config(path: Path) -> Any:
    """The parsed ``config.json`` of a ``.keras`` archive, read within bounds (mlfit.safeio):
    the archive's directory, the member's declared and actual inflated size, and the number
    of JSON values are capped before anything is built (a 250 KB archive can inflate to
    250 MB of tiny objects)."""
    from mlfit import safeio
    from mlfit.errors import ModelError

    try:
        with safeio.open_regular(path, "the .keras archive") as fh, safeio.open_zip(fh, path) as archive:
            for name in archive.namelist():
                # Keras extracts assets to disk; a member that climbs out of its folder is hostile.
                if name.startswith(("/", "\\")) or ".." in name.replace("\\", "/").split("/"):
                    raise KerasConfigError(f"archive member '{name}' points outside the archive")
            data = safeio.read_zip_member(archive, "config.json", path, "zip_json", ModelError)
    except KeyError:
        raise KerasConfigError("no config.json in the archive") from None
    except OSError as exc:
        raise KerasConfigError(f"config.json cannot be read: {exc}") from None
    return safeio.loads_bounded(data, path, "config.json in the archive", ModelError)


def h5_config(path: Path) -> Any:
    """The parsed ``model_config`` attribute of a legacy Keras HDF5 file.

    Read with h5py (Keras itself needs it); without it the file cannot be verified. The
    attribute's stored size is checked before it is read (mlfit.safeio's JSON cap).
    """
    from mlfit import safeio
    from mlfit.errors import ModelError

    try:
        import h5py
    except ImportError:
        raise KerasConfigError("h5py is not installed, so the config cannot be checked") from None
    limit = safeio.cap("zip_json")
    try:
        with h5py.File(path, "r") as h5:
            if "model_config" not in h5.attrs:
                raw = None
            else:
                stored = h5py.h5a.open(h5.id, b"model_config").get_storage_size()
                if stored > limit:
                    raise ModelError(f"{path}: the model_config attribute is {safeio.size_text(stored)}, over the "
                                     f"{safeio.size_text(limit)} limit; refused before reading it",
                                     "re-save the model")
                raw = h5.attrs.get("model_config")
    except OSError as exc:
        raise KerasConfigError(f"not a readable HDF5 file: {exc}") from None
    if raw is None:
        raise KerasConfigError("no model_config attribute (a weights-only file, not a model)")
    if isinstance(raw, str):
        raw = raw.encode("utf-8", "replace")
    elif not isinstance(raw, bytes):
        raw = str(raw).encode("utf-8", "replace")
    if len(raw) > limit:  # a variable-length string's storage size says nothing; its bytes do
        raise ModelError(f"{path}: the model_config attribute is {safeio.size_text(len(raw))}, over the "
                         f"{safeio.size_text(limit)} limit; refused", "re-save the model")
    return safeio.loads_bounded(raw, path, "the model_config attribute", ModelError)
