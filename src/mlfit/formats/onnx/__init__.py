"""ONNX models: recognised by walking the ModelProto's top-level fields (:mod:`.sniff`); judged
by mlfit's own bounded protobuf walk (:mod:`.safety`: external data that leaves the folder,
custom operators, protobuf's 2 GiB limit); declared inputs and integer ranges from the graph
(:mod:`.inputs`); parsed for the static analysis through :mod:`.proto`."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from mlfit.catalog.schema import Runtime
from mlfit.formats.base import BaseFormat, Declared
from mlfit.formats.kinds import ModelFormat
from mlfit.safety.snapshot import CopyPolicy


class Onnx(BaseFormat):
    kind = ModelFormat.ONNX
    runtime = Runtime.ONNXRUNTIME
    suffixes: tuple[str, ...] = (".onnx",)
    copy_policy = CopyPolicy(onnx_external=True)
    recheck_after_copy = False  # no runtime of another kind would load what it became

    def declared_inputs(self, path: Path, signature: str) -> Declared | None:
        from mlfit.formats.onnx.inputs import declared_inputs

        return declared_inputs(path)

    def static_size(self, path: Path, custom_op_libraries: Sequence[str]) -> tuple[int, list[str]]:
        """Parameter bytes (inline and external), after the safety walk's refusals."""
        from mlfit.formats.onnx.safety import validate_onnx

        safety = validate_onnx(path, custom_op_libraries)
        return max(safety.tensor_bytes, 0), safety.notes

    def external_files(self, path: Path) -> list[Path]:
        from mlfit.formats.onnx.safety import external_files

        return external_files(path)


FORMAT = Onnx()
