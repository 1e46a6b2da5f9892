"""The model's facts, computed once per run in the gate from the private copy, and read by every
later stage (the input plan, the static analysis, the result's model block) instead of each stage
reading the file again: one hash pass, one safety walk, one parse (ONNX: the parse is shared by
the declared-input reader and the static analysis, :func:`mlfit.formats.onnx.proto.load_onnx_proto`).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

from mlfit.formats.base import Declared
from mlfit.formats.registry import declared_inputs, get
from mlfit.modelref import ModelRef, sha256_of, size_of


@dataclass(frozen=True)
class ModelFacts:
    ref: ModelRef  # the copy being measured (its path is the private copy), format, runtime, notes
    size_bytes: int  # on disk, every file of a folder
    static_bytes: int  # what it needs before it runs: parameters (ONNX) or size on disk
    notes: tuple[str, ...]  # from the format's static checks (custom operators loaded, ...)
    declared: Declared | None  # the inputs the file states; None where it does not say

    @cached_property
    def sha256(self) -> str:
        """Hashed once, when the result first needs it (a model refused before that is never hashed)."""
        return sha256_of(self.ref.path)


def model_facts(ref: ModelRef, custom_op_libraries: tuple[str, ...] | list[str], signature: str) -> ModelFacts:
    """Read the model once: the format's refusals that need the whole file (ModelError, exit 3),
    its static size, its declared inputs and its size (the hash follows on first use)."""
    fmt = get(ref.format)
    static_bytes, notes = fmt.static_size(ref.path, custom_op_libraries)
    declared = declared_inputs(ref.path, ref.format, signature)
    return ModelFacts(ref=ref, size_bytes=size_of(ref.path), static_bytes=static_bytes,
                      notes=tuple(notes), declared=declared)

