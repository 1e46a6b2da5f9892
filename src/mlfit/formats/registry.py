"""Every model format mlfit knows, one line each; everything that differs by format is asked of
the entry (:class:`~mlfit.formats.base.Format`), never decided by comparing format members."""

from __future__ import annotations

import json
import struct
import zipfile
from pathlib import Path

from mlfit.catalog.schema import Runtime
from mlfit.formats import keras, onnx, pickle, savedmodel, skops, tflite
from mlfit.formats.base import Declared, Format
from mlfit.formats.kinds import ModelFormat

FORMATS: dict[ModelFormat, Format] = {f.kind: f for f in (
    onnx.FORMAT,
    savedmodel.FORMAT,
    keras.KERAS,
    keras.H5,
    tflite.FORMAT,
    skops.FORMAT,
    pickle.FORMAT,
)}


def get(kind: ModelFormat) -> Format:
    return FORMATS[kind]


def by_suffix(suffix: str) -> ModelFormat | None:
    """The format a file suffix claims (content decides; this only names what was expected)."""
    suffix = suffix.lower()
    return next((f.kind for f in FORMATS.values() if suffix in f.suffixes), None)


def model_suffixes() -> tuple[str, ...]:
    """Every suffix that claims a model format."""
    return tuple(s for f in FORMATS.values() for s in f.suffixes)


def folder_format(path: Path) -> ModelFormat | None:
    """The format whose model the folder ``path`` is (a SavedModel), or None."""
    return next((f.kind for f in FORMATS.values() if f.claims_folder(path)), None)


def converters() -> dict[Runtime, dict[Runtime, tuple[str, str]]]:
    """What --convert can do: source runtime -> destination runtime -> (module to probe, tool name)."""
    table: dict[Runtime, dict[Runtime, tuple[str, str]]] = {}
    for fmt in FORMATS.values():
        table.setdefault(fmt.runtime, {}).update(fmt.converters)
    return {source: dests for source, dests in table.items() if dests}


def format_for_runtime(runtime: Runtime) -> ModelFormat:
    """The format a conversion to ``runtime`` writes (the first format that runtime executes)."""
    return next(f.kind for f in FORMATS.values() if f.runtime is runtime)


def check_model(path: Path, fmt: ModelFormat, trust_model: bool, signature: str = "serving_default") -> None:
    """Refuse a model that would run code on load, unless the user trusts it (the format's scan).

    skops files are checked in the worker with skops's own type list (``--trust-type``),
    which ``--trust-model`` never replaces; their bounds hold even when trusted.
    """
    FORMATS[fmt].check_safety(path, trust_model, signature)


def declared_inputs(path: Path, fmt: ModelFormat, signature: str = "serving_default") -> Declared | None:
    """The inputs a model file states, or None where the file does not say (or cannot be read here)."""
    try:
        return FORMATS[fmt].declared_inputs(path, signature)
    except (ValueError, KeyError, OSError, struct.error, IndexError, zipfile.BadZipFile, RecursionError,
            UnicodeDecodeError, json.JSONDecodeError, TypeError, AttributeError):
        return None
    except Exception as exc:  # onnx's DecodeError and friends: the worker gives the real message
        if type(exc).__name__ in ("DecodeError", "ModelError"):
            return None
        raise
