"""Static safety checks run in the parent before any worker loads a model.

Each check reads the file without executing it (no unpickling, no TensorFlow import) and
either passes, or raises a one-line :class:`~mlfit.errors.ModelError` (exit 3) that names
what would run and how to proceed. ``--trust-model`` skips the checks; the model is then
loaded only inside the worker process, never here.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from mlfit.errors import ModelError

# Globals that are reason enough on their own to distrust a pickle.
_DANGEROUS_MODULES = (
    "os",
    "posix",
    "nt",
    "subprocess",
    "builtins",
    "__builtin__",
    "sys",
    "shutil",
    "socket",
    "importlib",
    "runpy",
    "pty",
    "code",
    "codecs",
    "pickle",
    "marshal",
    "ctypes",
    "webbrowser",
    "urllib",
    "requests",
    "http",
    "io",
    "tempfile",
    "types",
    "operator",
    "functools",
)
_DANGEROUS_NAMES = ("eval", "exec", "system", "popen", "compile", "__import__", "getattr", "open", "apply")
_ALL = 10_000  # a pickle's refusal names every global it would import and call
_TRUST_HINT = "--trust-model loads it anyway, inside the measurement worker only"


def dangerous(name: str) -> bool:
    """True for a global that can run code or touch the system by itself."""
    module, _, attr = name.rpartition(".")
    top = module.split(".")[0]
    return top in _DANGEROUS_MODULES or attr in _DANGEROUS_NAMES


def _listing(names: list[str], limit: int = 8) -> str:
    shown = ", ".join(names[:limit])
    return shown + (f" and {len(names) - limit} more" if len(names) > limit else "")


def check_pickle(path: Path) -> None:
    from mlfit.safety.pickle_scan import PickleScanError, scan_pickle

    try:
        scan = scan_pickle(path)
    except PickleScanError as exc:
        seen = f"; before that it would import and call {_listing(exc.globals_seen, _ALL)}" if exc.globals_seen else ""
        raise ModelError(
            f"{path.name}: refusing to unpickle a file that cannot be scanned ({exc}{seen})",
            f"re-save it with joblib.dump or skops.io.dump; {_TRUST_HINT}",
        ) from None
    bad = [g for g in scan.globals if dangerous(g)]
    what = f"a pickle ({scan.compression}-compressed)" if scan.compression else "a pickle"
    if bad:
        others = [g for g in scan.globals if g not in bad]
        cause = f"it would call {_listing(bad, _ALL)}, which can run any code" + (
            f" (and import and call {_listing(others, _ALL)})" if others else "")
    elif scan.globals:
        cause = f"unpickling it would import and call {len(scan.globals)} globals: {_listing(scan.globals, _ALL)}"
    else:
        cause = "unpickling can run code"
    if scan.inconsistencies:
        cause = f"it is inconsistent ({scan.inconsistencies[0]}; joblib never writes this) and {cause}"
    raise ModelError(
        f"{path.name}: refusing to load {what}: {cause}",
        "if you trust it, convert it to skops where you made it: "
        "skops.io.dump(joblib.load(PATH), 'model.skops') "
        f"and check the .skops file (types allowed one by one with --trust-type); or {_TRUST_HINT}",
    )


def check_keras(path: Path, load_config: Callable[[], Any], trusted: bool = False) -> None:
    """Refuse what a Keras config (read by ``load_config``: the .keras zip's or the .h5's) would
    run; ``trusted`` (--trust-model) still refuses reads outside the archive: trust covers the
    model's code, never a local file it names."""
    from mlfit.safety.keras_scan import OUTSIDE_READ, KerasConfigError, walk_config

    try:
        config = load_config()
    except KerasConfigError as exc:
        if trusted:  # a trusted file Keras can read in its own way
            return
        raise ModelError(
            f"{path.name}: cannot check the Keras model config ({exc})",
            f"re-save the model with model.save('model.keras'); {_TRUST_HINT}",
        ) from None
    problems = walk_config(config)
    # A read outside the model is named first, and its hint never offers --trust-model as the
    # way to read a local file (issue 18 item 10).
    outside = [p for p in problems if OUTSIDE_READ in p]
    problems = outside + [p for p in problems if p not in outside]
    if outside or (problems and not trusted):
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        hint = ("embed what it reads in the model (pass the vocabulary inline, as a list, or adapt() the layer; "
                "build a TFSMLayer's model from layers), then re-save: mlfit never lets a model read files "
                "outside its archive") if outside else (
                "replace the layer with built-in layers or a registered layer and re-save; "
                f"{_TRUST_HINT} (Keras safe mode off)")
        raise ModelError(f"{path.name}: refusing to load: {problems[0]}{more}", hint)


def check_savedmodel(path: Path, signature: str = "serving_default") -> None:
    from mlfit.safety.savedmodel_scan import SavedModelError, scan_savedmodel

    try:
        scan = scan_savedmodel(path, signature)
    except SavedModelError as exc:
        raise ModelError(
            f"{path.name}: cannot check the SavedModel ({exc})",
            f"re-export with tf.saved_model.save or model.export; {_TRUST_HINT}",
        ) from None
    if scan.problems_found:
        first = scan.problems_found[0]
        more = f" (and {len(scan.problems_found) - 1} more)" if len(scan.problems_found) > 1 else ""
        raise ModelError(
            f"{path.name}: refusing to load a SavedModel: loading it or calling signature '{signature}' "
            f"runs {_listing(scan.refused_ops)}; {first}{more}",
            f"export the serving function with TensorFlow's compute ops only (docs/refusals.md); {_TRUST_HINT}",
        )


def check_tflite(path: Path) -> None:
    from mlfit.safety.tflite_scan import TFLiteScanError, scan_tflite

    try:
        scan = scan_tflite(path)
    except TFLiteScanError as exc:
        raise ModelError(f"{path.name}: cannot check the TFLite model ({exc})",
                         f"re-export with the TFLite converter; {_TRUST_HINT}") from None
    if scan.problems:
        more = f" (and {len(scan.problems) - 1} more)" if len(scan.problems) > 1 else ""
        raise ModelError(
            f"{path.name}: refusing to load a TFLite model with ops outside mlfit's allowlists: "
            f"{_listing(scan.refused)}; {scan.problems[0]}{more}",
            f"convert with builtin ops (or Select TF ops that only compute); {_TRUST_HINT}",
        )


def check_skops_bounds(path: Path) -> None:
    """A .skops archive's ``schema.json`` within bounds (declared and inflated size, JSON values)
    before the worker hands it to skops: a 6 MB archive can declare a 6 GB schema."""
    from mlfit import safeio

    with safeio.open_regular(path, "the .skops archive") as fh, safeio.open_zip(fh, path) as archive:
        try:
            data = safeio.read_zip_member(archive, "schema.json", path)
        except KeyError:
            raise ModelError(f"{path.name}: not a valid skops file (no schema.json)", "re-save it with "
                             "skops.io.dump") from None
    safeio.loads_bounded(data, path, "schema.json in the archive")
