"""What mlfit knows about one model format, as one object (:class:`Format`): how the content is
recognised, how it is judged safe before a runtime loads it, what inputs the file declares,
which of its files are graph and which tensor data (the private copy's policy), which runtime
executes it and what it converts to. One module per format implements it; the registry
(:mod:`mlfit.formats.registry`) lists them. Pure Python: a format module imports no runtime."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, Protocol

from mlfit.catalog.schema import Runtime
from mlfit.formats.kinds import ModelFormat
from mlfit.result import TensorInfo
from mlfit.safety.snapshot import CopyPolicy

BATCH_DIM = "batch"  # the name TensorFlow, TFLite and scikit-learn backends give a free leading dim
# What --convert can do from a runtime's models (mlfit.convert), here so that checks can suggest it
# without importing it: destination runtime -> (converter module to probe, tool name).
TENSORFLOW_CONVERTERS: Mapping[Runtime, tuple[str, str]] = MappingProxyType({
    Runtime.ONNXRUNTIME: ("tf2onnx", "tf2onnx"), Runtime.TFLITE: ("tensorflow", "the TFLite converter")})
# tf2onnx reads .tflite flatbuffers too (tf2onnx.convert.from_tflite): a TFLite model on an
# onnxruntime-only target (weak-cpu) is measured converted instead of failing the runtime check.
TFLITE_CONVERTERS: Mapping[Runtime, tuple[str, str]] = MappingProxyType({Runtime.ONNXRUNTIME: ("tf2onnx", "tf2onnx")})
SKLEARN_CONVERTERS: Mapping[Runtime, tuple[str, str]] = MappingProxyType({
    Runtime.ONNXRUNTIME: ("skl2onnx", "skl2onnx")})


@dataclass(frozen=True)
class Declared:
    """A model's inputs as its file states them, with what the graph says about their values."""

    inputs: list[TensorInfo]
    quantized: frozenset[str] = frozenset()  # integer inputs that are quantized reals (TFLite)
    ranges: dict[str, tuple[float, float]] = field(default_factory=dict)  # [low, high), by input
    range_sources: dict[str, str] = field(default_factory=dict)


def free_leading(shape: Sequence[int | None]) -> list[int | str | None]:
    """TensorFlow/TFLite convention (backends/tensorflow.spec_shape): -1/None leading is 'batch'."""
    return [d if isinstance(d, int) and d >= 0 else (BATCH_DIM if i == 0 else None) for i, d in enumerate(shape)]


class Format(Protocol):
    """One model format. Adding a format: a module implementing this, one registry line."""

    kind: ModelFormat
    runtime: Runtime  # the runtime that executes it unless --runtime says otherwise
    suffixes: tuple[str, ...]  # suffixes that claim it (content decides; these only name a broken file)
    copy_policy: CopyPolicy  # which files of the private copy are graph (always copied) and which data
    # Whether the private copy is sniffed again before use: a file that became another kind after
    # identification would be judged as one format and loaded as another.
    recheck_after_copy: bool
    converters: Mapping[Runtime, tuple[str, str]]  # destination -> (module to probe, tool name)

    def claims_folder(self, path: Path) -> bool:
        """Whether the folder ``path`` is one model of this format."""
        ...

    def check_safety(self, path: Path, trust_model: bool, signature: str) -> None:
        """Refuse (ModelError) a model that would run code or read outside itself when loaded."""
        ...

    def declared_inputs(self, path: Path, signature: str) -> Declared | None:
        """The inputs the file states, or None where it does not say (the worker decides)."""
        ...

    def static_size(self, path: Path, custom_op_libraries: Sequence[str]) -> tuple[int, list[str]]:
        """Bytes the model needs before it runs (parameters, or its size on disk) and notes; refusals
        that need the whole file read (ONNX external data, custom operators) are raised here."""
        ...

    def external_files(self, path: Path) -> list[Path]:
        """Files outside ``path`` that the model reads (ONNX external data), for the output check."""
        ...

    def structure(self, path: Path, signature: str) -> dict[str, Any] | None:
        """What ``mlfit inspect`` shows of a format the graph analyses (ONNX, TFLite) do not read:
        inputs, outputs, an op (layer, type) histogram, parameters where the file states them; read
        without a runtime and without unpickling. None: the file says nothing more."""
        ...


class BaseFormat:
    """Defaults for a format that states nothing, refuses nothing and converts to nothing."""

    kind: ModelFormat
    runtime: Runtime
    suffixes: tuple[str, ...] = ()
    copy_policy = CopyPolicy()
    recheck_after_copy = True
    converters: Mapping[Runtime, tuple[str, str]] = MappingProxyType({})

    def claims_folder(self, path: Path) -> bool:
        return False

    def check_safety(self, path: Path, trust_model: bool, signature: str) -> None:
        return None

    def declared_inputs(self, path: Path, signature: str) -> Declared | None:
        return None

    def static_size(self, path: Path, custom_op_libraries: Sequence[str]) -> tuple[int, list[str]]:
        from mlfit import safeio

        return safeio.size_of(path), []

    def external_files(self, path: Path) -> list[Path]:
        return []

    def structure(self, path: Path, signature: str) -> dict[str, Any] | None:
        declared = self.declared_inputs(path, signature)
        if declared is None:
            return None
        return {"inputs": [t.model_dump(exclude_none=True) for t in declared.inputs], "outputs": []}
