"""The ``--suggest`` child process: builds a variant file, or compares a variant's outputs with
the original's. It imports the runtimes and converters; the parent never does
(``python -m mlfit.advise.child REQUEST.json ANSWER.json``, started by :mod:`mlfit.advise.spawn`).

Builds use the libraries made for them, never a hand-written quantiser:
- int8-dynamic: ``onnxruntime.quantization.quantize_dynamic`` (int8 weights, activations
  quantised at run time: what helps MatMul-heavy models on CPUs);
- int8-static: ``onnxruntime.quantization.quantize_static`` in QDQ format, calibrated on --data;
- fp16: ``onnxruntime.transformers.float16.convert_float_to_float16`` (keeps float32 inputs and
  outputs, so callers and the comparison feed the same arrays);
- tflite-float / tflite-int8: TensorFlow's ``TFLiteConverter`` (int8 with a representative dataset).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import numpy as np

from mlfit.catalog.schema import Runtime
from mlfit.errors import ModelError
from mlfit.inputspec import InputSpec
from mlfit.lifeline import answer_request

# Samples used to calibrate static int8 and TFLite int8 (representative data).
CALIBRATION_SAMPLES = 16


def _backend(path: str, runtime: str, request: dict[str, Any]) -> Any:
    from mlfit.backends.base import LoadOptions, create_backend

    backend = create_backend(Runtime(runtime))
    backend.load(path, LoadOptions(threads=1, trust_model=request.get("trust_model", False),
                                   trust_types=tuple(request.get("trust_types", ())),
                                   signature=request.get("signature", "serving_default")))
    return backend


def sample_feeds(backend: Any, spec: InputSpec, count: int) -> tuple[list[dict[str, np.ndarray]], str]:
    """``count`` feeds for the backend's model, and where they came from: the first rows of --data,
    or generated inputs with seeds ``spec.seed .. spec.seed + count - 1`` (the worker's rules)."""
    from mlfit.backends.feeds import build_feeds, data_shapes, load_data
    from mlfit.inputspec import resolve_shapes

    declared = backend.inputs()
    data = load_data(spec)
    shapes = resolve_shapes(declared, spec, data_shapes(declared, data))
    quantization = backend.quantization()
    if data:
        feeds = build_feeds(declared, shapes, spec, data, quantization)[:count]
        return feeds, f"the first {len(feeds)} sample(s) of --data"
    feeds = [build_feeds(declared, shapes, spec.model_copy(update={"seed": spec.seed + i}), data, quantization)[0]
             for i in range(count)]
    return feeds, f"{count} generated inputs (seeds {spec.seed}..{spec.seed + count - 1}; give --data for real ones)"


def _as_arrays(out: Any) -> list[np.ndarray]:
    if isinstance(out, dict):
        return [np.asarray(out[k]) for k in sorted(out)]
    if isinstance(out, (list, tuple)):
        return [np.asarray(o) for o in out]
    return [np.asarray(out)]


def _for_variant(feed: dict[str, np.ndarray], names: list[str]) -> dict[str, np.ndarray]:
    """The original's feed keyed by the variant's input names (a TFLite build renames inputs:
    matched by position then)."""
    if set(names) == set(feed):
        return feed
    return dict(zip(names, feed.values(), strict=False))


# ---------------------------------------------------------------- builds


def _int8_dynamic(request: dict[str, Any]) -> str:
    import onnxruntime
    from onnxruntime.quantization import QuantType, quantize_dynamic

    quantize_dynamic(request["source"], request["output"], weight_type=QuantType.QInt8)
    return f"onnxruntime.quantization.quantize_dynamic (onnxruntime {onnxruntime.__version__}, weight_type=QInt8)"


def _int8_static(request: dict[str, Any]) -> str:
    import onnxruntime
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    backend = _backend(request["source"], "onnxruntime", request)
    feeds, _ = sample_feeds(backend, InputSpec.model_validate(request["input_spec"]), CALIBRATION_SAMPLES)

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.rows = iter(feeds)

        def get_next(self) -> dict[str, np.ndarray] | None:
            return next(self.rows, None)

    quantize_static(request["source"], request["output"], Reader(), quant_format=QuantFormat.QDQ,
                    activation_type=QuantType.QInt8, weight_type=QuantType.QInt8)
    return (f"onnxruntime.quantization.quantize_static (onnxruntime {onnxruntime.__version__}, QDQ, int8, "
            f"calibrated on {len(feeds)} --data sample(s))")


def _fp16(request: dict[str, Any]) -> str:
    import onnx
    import onnxruntime
    from onnxruntime.transformers.float16 import convert_float_to_float16

    model = convert_float_to_float16(onnx.load(request["source"]), keep_io_types=True)
    onnx.save(model, request["output"])
    return (f"onnxruntime.transformers.float16.convert_float_to_float16 (onnxruntime {onnxruntime.__version__}, "
            "keep_io_types=True)")


def _tflite(request: dict[str, Any], int8: bool) -> str:
    feeds: list[dict[str, np.ndarray]] = []
    if int8:  # first: the backend sets TensorFlow's thread pools, which a converter would initialise
        backend = _backend(request["source"], "tensorflow", request)
        feeds, source = sample_feeds(backend, InputSpec.model_validate(request["input_spec"]), CALIBRATION_SAMPLES)
    import tensorflow as tf

    from mlfit.convert import _keras_or_function

    if request["format"] == "savedmodel":
        converter = tf.lite.TFLiteConverter.from_saved_model(request["source"],
                                                             signature_keys=[request["signature"]])
    else:
        model, _, _ = _keras_or_function({**request, "trust_model": request.get("trust_model", False)})
        converter = tf.lite.TFLiteConverter.from_keras_model(model)
    how = "float32"
    if int8:
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = lambda: ([np.asarray(v) for v in f.values()] for f in feeds)
        how = f"int8 (Optimize.DEFAULT, representative data: {source})"
    Path(request["output"]).write_bytes(converter.convert())
    return f"tf.lite.TFLiteConverter (TensorFlow {tf.__version__}), {how}"


BUILDERS = {
    "int8-dynamic": _int8_dynamic,
    "int8-static": _int8_static,
    "fp16": _fp16,
    "tflite-float": lambda r: _tflite(r, int8=False),
    "tflite-int8": lambda r: _tflite(r, int8=True),
}


# ---------------------------------------------------------------- the accuracy guard


def _classifier_shaped(array: np.ndarray) -> bool:
    """(batch, classes) with at least two classes: argmax along the last axis is a label."""
    return array.ndim == 2 and array.shape[1] >= 2 and np.issubdtype(array.dtype, np.floating)


def agreement(originals: list[list[np.ndarray]], variants: list[list[np.ndarray]]) -> dict[str, Any]:
    """Max absolute and relative difference, cosine similarity of every output flattened, and the
    share of rows whose argmax agrees over classifier-shaped outputs (None when there are none)."""
    a = np.concatenate([o.astype(np.float64).ravel() for outs in originals for o in outs])
    b = np.concatenate([v.astype(np.float64).ravel() for outs in variants for v in outs])
    if a.shape != b.shape:
        raise ModelError(f"the variant's outputs have {b.size} values, the original's {a.size}")
    diff = float(np.max(np.abs(a - b))) if a.size else 0.0
    scale = float(np.max(np.abs(a))) if a.size else 0.0
    norm = float(np.linalg.norm(a) * np.linalg.norm(b))
    cosine = float(np.dot(a, b) / norm) if norm > 0 else float(np.array_equal(a, b))
    agree = rows = 0
    for outs, vouts in zip(originals, variants, strict=True):
        for o, v in zip(outs, vouts, strict=True):
            if _classifier_shaped(o) and o.shape == v.shape:
                agree += int(np.sum(np.argmax(o, axis=1) == np.argmax(v, axis=1)))
                rows += o.shape[0]
    return {"max_abs": diff, "max_rel": diff / scale if scale > 0 else diff, "cosine": max(-1.0, min(1.0, cosine)),
            "top1": agree / rows if rows else None}


def compare(request: dict[str, Any]) -> dict[str, Any]:
    """Run the original and the variant on the same inputs and measure how far apart they are."""
    spec = InputSpec.model_validate(request["input_spec"])
    original = _backend(request["original"], request["original_runtime"], request)
    variant = _backend(request["variant"], request["variant_runtime"], request)
    feeds, source = sample_feeds(original, spec, int(request["count"]))
    names = [t.name for t in variant.inputs()]
    first = [_as_arrays(original.run(original.prepare(f))) for f in feeds]
    second = [_as_arrays(variant.run(variant.prepare(_for_variant(f, names)))) for f in feeds]
    return {"inputs": len(feeds), "source": source, **agreement(first, second)}


def _answer(request: dict[str, Any]) -> dict[str, Any]:
    return compare(request) if request["action"] == "compare" else {"tool": BUILDERS[request["kind"]](request)}


def main(argv: list[str]) -> int:
    return answer_request(argv, _answer)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
