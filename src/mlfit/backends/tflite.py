"""TFLite backend: the LiteRT interpreter (``ai-edge-litert``) when installed, else
``tf.lite.Interpreter``. Imported at module import time so the interpreter's cost is the
runtime baseline.

Dynamic dims (-1 in ``shape_signature``) are declared free: the leading one as ``batch``
(``--dim batch=N``), others unknown (``--shape``). Inputs are resized with
``resize_tensor_input`` before timing; the timed call only copies and invokes.
Quantized int8/uint8 inputs are generated in real units and quantized with the tensor's
scale and zero point (see :meth:`TFLiteBackend.quantization`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

try:
    from ai_edge_litert import interpreter as _litert

    Interpreter: Any = _litert.Interpreter
    INTERPRETER = "ai-edge-litert"
    _VERSION = ""
    try:
        from importlib.metadata import version as _dist_version

        _VERSION = _dist_version("ai-edge-litert")
    except Exception:  # metadata missing in an odd install: the version is only informative
        _VERSION = "unknown"
except ImportError:  # pragma: no cover - exercised only without ai-edge-litert
    import tensorflow as _tf

    Interpreter = _tf.lite.Interpreter
    INTERPRETER = "tf.lite"
    _VERSION = str(_tf.__version__)

from mlfit.backends.base import Backend, LoadOptions
from mlfit.catalog.schema import Runtime
from mlfit.errors import ModelError
from mlfit.result import TensorInfo

BATCH_DIM = "batch"


def _shape(signature: Any) -> list[int | str | None]:
    return [int(d) if d >= 0 else (BATCH_DIM if i == 0 else None) for i, d in enumerate(signature)]


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:300] if text else type(exc).__name__


class TFLiteBackend(Backend):
    runtime = Runtime.TFLITE

    def __init__(self) -> None:
        self.interpreter: Any = None
        self._input_details: list[dict[str, Any]] = []
        self._output_details: list[dict[str, Any]] = []
        self._current: tuple[tuple[int, ...], ...] = ()
        self.threads = 1

    def load(self, path: str, options: LoadOptions) -> None:
        self.threads = options.threads
        try:
            self.interpreter = Interpreter(model_path=path, num_threads=options.threads)
            self.interpreter.allocate_tensors()
        except Exception as exc:
            message = _first_line(exc)
            hint = (
                "the model needs custom or Select TF ops this interpreter lacks; convert with builtins only"
                if "op" in message.lower()
                else "re-export with the TFLite converter"
            )
            raise ModelError(
                f"the {INTERPRETER} interpreter could not load the model: {message}", hint
            ) from None
        self._input_details = list(self.interpreter.get_input_details())
        self._output_details = list(self.interpreter.get_output_details())
        self._current = tuple(tuple(int(x) for x in d["shape"]) for d in self._input_details)

    def _info(self, detail: dict[str, Any]) -> TensorInfo:
        signature = detail.get("shape_signature")
        if signature is None or len(signature) == 0:
            signature = detail["shape"]
        return TensorInfo(
            name=str(detail["name"]), dtype=np.dtype(detail["dtype"]).name, shape=_shape(signature)
        )

    def inputs(self) -> list[TensorInfo]:
        return [self._info(d) for d in self._input_details]

    def outputs(self) -> list[TensorInfo]:
        return [self._info(d) for d in self._output_details]

    def quantization(self) -> dict[str, tuple[float, int]]:
        """Scale and zero point of each quantized integer input."""
        out: dict[str, tuple[float, int]] = {}
        for detail in self._input_details:
            scale, zero_point = detail.get("quantization", (0.0, 0))
            if scale and np.issubdtype(np.dtype(detail["dtype"]), np.integer):
                out[str(detail["name"])] = (float(scale), int(zero_point))
        return out

    def prepare(self, feeds: dict[str, Any]) -> Any:
        arrays = tuple(
            np.ascontiguousarray(feeds[str(d["name"])], dtype=d["dtype"]) for d in self._input_details
        )
        return tuple(a.shape for a in arrays), arrays

    def _resize(self, shapes: tuple[tuple[int, ...], ...]) -> None:
        for detail, shape in zip(self._input_details, shapes, strict=True):
            self.interpreter.resize_tensor_input(detail["index"], list(shape), strict=False)
        self.interpreter.allocate_tensors()
        self._current = shapes

    def run(self, prepared: Any) -> Any:
        shapes, arrays = prepared
        if shapes != self._current:  # a new batch size: resize once, outside the steady state
            try:
                self._resize(shapes)
            except Exception as exc:
                raise ModelError(
                    f"the model cannot take input shapes {list(shapes)}: {_first_line(exc)}",
                    "use the shapes the model declares (see --shape)",
                ) from None
        interpreter = self.interpreter
        for detail, array in zip(self._input_details, arrays, strict=True):
            interpreter.set_tensor(detail["index"], array)
        interpreter.invoke()
        return [interpreter.get_tensor(d["index"]) for d in self._output_details]

    def runner(self) -> Callable[[Any], Any]:
        return self.run

    def version(self) -> str:
        return _VERSION

    def details(self) -> dict[str, Any]:
        return {"interpreter": INTERPRETER, "quantized_inputs": sorted(self.quantization())}
