"""TensorFlow backend: SavedModel folders (a signature), Keras 3 ``.keras`` and legacy ``.h5``.

TensorFlow and Keras are imported when this module is imported, so their cost lands in
the worker's runtime baseline, not in the model's load figure.

Safety: the parent has already walked the Keras config / scanned the SavedModel graph
(mlfit.safety) unless ``--trust-model`` was given. ``.keras`` files are loaded with
Keras's safe mode on unless the model is trusted; ``.h5`` files ignore safe mode, which is
why the parent's walk matters for them.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras
import numpy as np
import tensorflow as tf

from mlfit.backends.base import Backend, LoadOptions
from mlfit.catalog.schema import Runtime
from mlfit.errors import ModelError
from mlfit.formats import ModelFormat, sniff
from mlfit.formats.registry import check_model
from mlfit.result import TensorInfo

BATCH_DIM = "batch"  # the name given to a free leading dim, so --dim batch=N fills it


def tf_dtype_name(dtype: Any) -> str:
    name = tf.as_dtype(dtype).name
    return {"half": "float16", "float": "float32", "double": "float64"}.get(name, name)


def spec_shape(shape: Any) -> list[int | str | None]:
    """A TensorShape with free dims: the leading one is 'batch', others unknown (--shape fills them)."""
    dims = shape.as_list() if hasattr(shape, "as_list") else list(shape)
    return [
        d if isinstance(d, int) and d >= 0 else (BATCH_DIM if i == 0 else None) for i, d in enumerate(dims)
    ]


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:300] if text else type(exc).__name__


class TensorFlowBackend(Backend):
    runtime = Runtime.TENSORFLOW

    def __init__(self) -> None:
        self.format: ModelFormat | None = None
        self.signature = ""
        self._inputs: list[TensorInfo] = []
        self._outputs: list[TensorInfo] = []
        self._fn: Callable[..., Any] | None = None
        self._keep: Any = None  # the loaded object: signatures hold weak references to it

    def load(self, path: str, options: LoadOptions) -> None:
        # Thread pools are fixed when TensorFlow runs its first op, which has not happened yet.
        tf.config.threading.set_intra_op_parallelism_threads(options.threads)
        tf.config.threading.set_inter_op_parallelism_threads(1)
        self.format = sniff(Path(path))
        # The parent ran these checks already; running them again here (cheap, static) keeps
        # a worker started some other way from loading an untrusted .h5, which ignores safe mode.
        check_model(Path(path), self.format, options.trust_model, options.signature)
        if self.format is ModelFormat.SAVEDMODEL:
            self._load_savedmodel(path, options.signature)
        elif self.format in (ModelFormat.KERAS, ModelFormat.H5):
            self._load_keras(path, options.trust_model)
        else:
            raise ModelError(
                f"the tensorflow runtime cannot run a {self.format.value} model",
                "leave out --runtime so mlfit picks the runtime from the file",
            )

    def _load_savedmodel(self, path: str, signature: str) -> None:
        try:
            loaded = tf.saved_model.load(path)
        except Exception as exc:
            from mlfit.formats.savedmodel import load_problem

            known = load_problem(f"{type(exc).__name__}: {exc}")
            cause = f" ({known[0]})" if known else ""
            raise ModelError(
                f"TensorFlow {tf.__version__} could not load the SavedModel: {_first_line(exc)}{cause}",
                known[1] if known else "check that it was exported by a compatible TensorFlow",
            ) from None
        signatures = dict(getattr(loaded, "signatures", {}) or {})
        if signature not in signatures:
            names = ", ".join(sorted(signatures)) or "none"
            raise ModelError(
                f"the SavedModel has no signature '{signature}' (it has: {names})",
                "choose one with --signature NAME"
                if signatures
                else "export it with a serving signature (model.export or signatures=...)",
            )
        fn = signatures[signature]
        self.signature = signature
        _, kwargs = fn.structured_input_signature
        self._inputs = [
            TensorInfo(name=name, dtype=tf_dtype_name(spec.dtype), shape=spec_shape(spec.shape))
            for name, spec in sorted(kwargs.items())
        ]
        outputs = fn.structured_outputs
        self._outputs = (
            [
                TensorInfo(name=name, dtype=tf_dtype_name(spec.dtype), shape=spec_shape(spec.shape))
                for name, spec in sorted(outputs.items())
            ]
            if isinstance(outputs, dict)
            else []
        )
        self._keep = loaded

        def call(feeds: dict[str, Any]) -> Any:
            return {k: v.numpy() for k, v in fn(**feeds).items()}

        self._fn = call

    def _load_keras(self, path: str, trusted: bool) -> None:
        try:
            model = keras.saving.load_model(path, compile=False, safe_mode=not trusted)
        except Exception as exc:
            hint = "re-save it with model.save('model.keras') from a compatible Keras"
            if "safe_mode" in str(exc) or "Lambda" in str(exc):
                hint = "it needs code to load; --trust-model loads it with Keras safe mode off"
            raise ModelError(
                f"Keras {keras.__version__} could not load the model: {_first_line(exc)}", hint
            ) from None
        self.signature = "__call__"
        names: list[str] = []
        self._inputs = []
        for i, tensor in enumerate(model.inputs):
            name = str(getattr(tensor, "name", "") or f"input_{i}")
            names.append(name)
            self._inputs.append(
                TensorInfo(
                    name=name, dtype=tf_dtype_name(tensor.dtype), shape=spec_shape(tuple(tensor.shape))
                )
            )
        self._outputs = [
            TensorInfo(
                name=str(getattr(t, "name", "") or f"output_{i}"),
                dtype=tf_dtype_name(t.dtype),
                shape=spec_shape(tuple(t.shape)),
            )
            for i, t in enumerate(model.outputs)
        ]
        specs = [
            tf.TensorSpec(
                [None if not isinstance(d, int) else d for d in t.shape], tf.as_dtype(t.dtype), name=f"x{i}"
            )
            for i, t in enumerate(self._inputs)
        ]
        # A traced function, as a serving stack runs it; eager model(x) would time Python dispatch.
        graph_fn = tf.function(
            lambda *xs: model(list(xs) if len(xs) > 1 else xs[0], training=False),
            input_signature=specs,
            reduce_retracing=True,
        )
        order = names

        def call(feeds: dict[str, Any]) -> Any:
            out = graph_fn(*(feeds[n] for n in order))
            return [o.numpy() for o in out] if isinstance(out, (list, tuple)) else out.numpy()

        self._fn = call
        self._keep = model

    def inputs(self) -> list[TensorInfo]:
        return list(self._inputs)

    def outputs(self) -> list[TensorInfo]:
        return list(self._outputs)

    def prepare(self, feeds: dict[str, Any]) -> Any:
        return {name: tf.constant(np.asarray(value)) for name, value in feeds.items()}

    def run(self, prepared: Any) -> Any:
        assert self._fn is not None
        return self._fn(prepared)

    def runner(self) -> Callable[[Any], Any]:
        assert self._fn is not None
        return self._fn

    def version(self) -> str:
        return str(tf.__version__)

    def details(self) -> dict[str, Any]:
        return {
            "format": self.format.value if self.format else None,
            "signature": self.signature,
            "keras_version": str(keras.__version__),
        }
