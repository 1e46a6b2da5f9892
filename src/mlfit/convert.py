"""``--convert``: when a target lacks the model's runtime, convert the model to one the
target has and measure that artefact instead.

- scikit-learn -> ONNX with skl2onnx;
- Keras / SavedModel -> ONNX with tf2onnx, or -> TFLite with TensorFlow's own converter;
- TFLite -> ONNX with tf2onnx (which reads the flatbuffer: ``tf2onnx.convert.from_tflite``).

The destination is the first runtime, in the order the (first) target lists them, that a
converter is installed for. Conversion loads the model, so it runs in its own subprocess
(``python -m mlfit.convert REQUEST``) after the parent's safety checks, with the same trust
flags as the measurement; the parent never imports a runtime. Free leading dims of the
converted model are named ``batch`` so ``--dim batch=N`` works as for the original.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlfit.catalog.schema import Runtime
from mlfit.errors import ConfigError, ModelError
from mlfit.formats.registry import converters, format_for_runtime
from mlfit.lifeline import ChildTimeout, answer_request, run_child
from mlfit.modelref import ModelRef
from mlfit.safeio import loads_bounded, read_bounded
from mlfit.scratch import run_folder

if TYPE_CHECKING:
    from mlfit.catalog.loader import Target
    from mlfit.options import MeasureOptions

_MAX_ONNX_OPSET = {"skl2onnx": 21, "tf2onnx": 18}


@dataclass(frozen=True)
class Plan:
    destination: Runtime
    tool: str
    reason: str


def plan(source: Runtime, targets: Sequence[Target]) -> Plan | None:
    """Which runtime to convert to, or None when every target already has the model's runtime."""
    lacking = [t for t in targets if source not in t.profile.runtimes]
    if targets and not lacking:
        return None
    options = converters().get(source, {})
    if not options:
        where = f" to a runtime {lacking[0].name} provides" if lacking else ""
        raise ConfigError(f"--convert: mlfit has no converter for {source.value} models{where}",
                          (profile_line(lacking[0], source) + ", or c" if lacking else "c")
                          + "onvert the model yourself and check the converted file")
    wanted = list(lacking[0].profile.runtimes) if lacking else list(options)
    installed = [r for r in wanted if r in options and importlib.util.find_spec(options[r][0]) is not None]
    if not installed:
        known = [r for r in wanted if r in options]
        if known:
            module = options[known[0]][0]
            raise ModelError(
                f"--convert: no converter installed from {source.value} to {known[0].value}",
                f"pip install {module}",
            )
        provides = ", ".join(r.value for r in wanted)
        raise ConfigError(
            f"--convert: mlfit cannot convert a {source.value} model to what {lacking[0].name} "
            f"provides ({provides})",
            f"{profile_line(lacking[0], source)}, or convert the model yourself and check the converted file",
        )
    destination = installed[0]
    reason = f"{lacking[0].name} has no {source.value} runtime" if lacking else "--convert given"
    return Plan(destination, options[destination][1], reason)


def profile_line(target: Target, runtime: Runtime) -> str:
    """'if the target does run tflite, say so in its profile: `runtimes: [onnxruntime, sklearn, tflite]`'."""
    from mlfit.analysis.compat import runtimes_line

    return runtimes_line(target, runtime.value)


def _opset(targets: Sequence[Target], tool: str) -> int | None:
    ceiling = _MAX_ONNX_OPSET.get(tool)
    if ceiling is None:
        return None
    return min([ceiling, *(t.profile.opset.max for t in targets)])


@contextlib.contextmanager
def converted(
    ref: ModelRef, targets: Sequence[Target], options: MeasureOptions, timeout: float = 600.0
) -> Iterator[tuple[ModelRef, str | None]]:
    """The model to measure and a description of the artefact (None when not converted).

    The converted file lives in a temporary folder removed when the block ends.
    """
    chosen = plan(ref.runtime, targets)
    if chosen is None:
        yield ref, None
        return
    dest_format = format_for_runtime(chosen.destination)
    with run_folder("mlfit-convert-") as folder:
        out = Path(folder) / f"converted.{dest_format.value}"
        request = {
            "source": str(ref.path),
            "format": ref.format.value,
            "destination": chosen.destination.value,
            "output": str(out),
            "trust_model": options.trust_model,
            "trust_types": list(options.trust_types),
            "signature": options.signature,
            "opset": _opset(targets, chosen.tool),
        }
        request_path = Path(folder) / "request.json"
        answer_path = Path(folder) / "answer.json"
        request_path.write_text(json.dumps(request))
        env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": os.environ.get("TF_CPP_MIN_LOG_LEVEL", "3")}
        try:
            proc = run_child([sys.executable, "-m", "mlfit.convert", str(request_path), str(answer_path)],
                             timeout, env=env)
        except ChildTimeout:
            raise ModelError(
                f"--convert: {chosen.tool} did not finish within {timeout:g} s",
                "raise --timeout, or convert the model yourself",
            ) from None
        answer: dict[str, Any] = {}
        if answer_path.is_file():
            # Bounded like the worker's answer: a converter gone wrong cannot flood the parent.
            answer = loads_bounded(read_bounded(answer_path, "report", "the converter's answer"), answer_path,
                                   "the converter's answer")
            answer = answer if isinstance(answer, dict) else {"error": "the converter's answer is not an object"}
        if "error" in answer or not out.is_file():
            lines = [line for line in proc.stderr.strip().splitlines() if line.strip()]
            message = answer.get("error") or (lines[-1][:300] if lines else f"exit code {proc.returncode}")
            raise ModelError(
                f"--convert: {chosen.tool} could not convert {ref.path.name} to "
                f"{chosen.destination.value}: {message}",
                answer.get("hint") or "convert the model yourself, or measure it without --convert",
            )
        artefact = (
            f"{dest_format.value} converted from {ref.path.name} by {answer.get('tool', chosen.tool)} "
            f"({chosen.reason})"
        )
        yield ModelRef(path=out, format=dest_format, runtime=chosen.destination, notes=ref.notes), artefact


# ---- the conversion subprocess (imports the runtimes) ----


def _name_batch_dims(path: Path) -> None:
    """Name free leading dims 'batch' so --dim batch=N fills them as in the original model."""
    import onnx

    model = onnx.load(str(path))
    for tensor in model.graph.input:
        dims = tensor.type.tensor_type.shape.dim
        if dims and not dims[0].HasField("dim_value"):
            dims[0].dim_param = "batch"
    onnx.save(model, str(path))


def _load_sklearn(source: str, fmt: str, trust_model: bool, trust_types: list[str]) -> Any:
    from mlfit.backends.sklearn import load_pickle, load_skops

    return load_skops(source, tuple(trust_types)) if fmt == "skops" else load_pickle(source, trust_model)


def _sklearn_to_onnx(request: dict[str, Any]) -> str:
    import skl2onnx
    from skl2onnx.common.data_types import FloatTensorType
    from sklearn.base import is_classifier

    model = _load_sklearn(
        request["source"], request["format"], request["trust_model"], request["trust_types"]
    )
    n = getattr(model, "n_features_in_", None)
    if n is None:
        raise ModelError("the model does not record n_features_in_", "fit it with scikit-learn >= 1.0")
    options = {id(model): {"zipmap": False}} if is_classifier(model) else None
    onnx_model = skl2onnx.to_onnx(
        model,
        initial_types=[("X", FloatTensorType([None, int(n)]))],
        target_opset=request["opset"],
        options=options,
    )
    Path(request["output"]).write_bytes(onnx_model.SerializeToString())
    _name_batch_dims(Path(request["output"]))
    return f"skl2onnx {skl2onnx.__version__}"


def _keras_or_function(request: dict[str, Any]) -> tuple[Any, Any, list[Any]]:
    """(keras model or None, concrete function or None, input specs) of a TensorFlow model."""
    import keras
    import tensorflow as tf

    if request["format"] == "savedmodel":
        loaded = tf.saved_model.load(request["source"])
        if request["signature"] not in loaded.signatures:
            raise ModelError(
                f"the SavedModel has no signature '{request['signature']}'",
                f"choose one with --signature ({', '.join(loaded.signatures) or 'none'})",
            )
        fn = loaded.signatures[request["signature"]]
        specs = [
            tf.TensorSpec(s.shape, s.dtype, name=k)
            for k, s in sorted(fn.structured_input_signature[1].items())
        ]
        return loaded, fn, specs
    model = keras.saving.load_model(request["source"], compile=False, safe_mode=not request["trust_model"])
    specs = [tf.TensorSpec(t.shape, t.dtype, name=str(t.name)) for t in model.inputs]
    return model, None, specs


def _tf_to_onnx(request: dict[str, Any]) -> str:
    import tf2onnx

    model, fn, specs = _keras_or_function(request)
    if fn is None:
        tf2onnx.convert.from_keras(
            model, input_signature=specs, opset=request["opset"], output_path=request["output"]
        )
    else:
        import tensorflow as tf

        names = [spec.name for spec in specs]
        # tf2onnx traces a tf.function with positional specs; a signature takes keywords.
        wrapped = tf.function(lambda *xs: fn(**dict(zip(names, xs, strict=True))), input_signature=specs)
        tf2onnx.convert.from_function(
            wrapped, input_signature=specs, opset=request["opset"], output_path=request["output"]
        )
    _name_batch_dims(Path(request["output"]))
    return f"tf2onnx {tf2onnx.__version__}"


def _tf_to_tflite(request: dict[str, Any]) -> str:
    import tensorflow as tf

    if request["format"] == "savedmodel":
        converter = tf.lite.TFLiteConverter.from_saved_model(
            request["source"], signature_keys=[request["signature"]]
        )
    else:
        model, _, _ = _keras_or_function(request)
        converter = tf.lite.TFLiteConverter.from_keras_model(model)
    Path(request["output"]).write_bytes(converter.convert())
    return f"TFLite converter (TensorFlow {tf.__version__})"


def _tflite_to_onnx(request: dict[str, Any]) -> str:
    import tf2onnx

    tf2onnx.convert.from_tflite(request["source"], opset=request["opset"], output_path=request["output"])
    _name_batch_dims(Path(request["output"]))
    return f"tf2onnx {tf2onnx.__version__}"


def convert_in_subprocess(request: dict[str, Any]) -> str:
    """Do the conversion a request describes; returns the tool and version used."""
    source, destination = request["format"], request["destination"]
    if source in ("skops", "pickle") and destination == "onnxruntime":
        return _sklearn_to_onnx(request)
    if source in ("keras", "h5", "savedmodel") and destination == "onnxruntime":
        return _tf_to_onnx(request)
    if source in ("keras", "h5", "savedmodel") and destination == "tflite":
        return _tf_to_tflite(request)
    if source == "tflite" and destination == "onnxruntime":
        return _tflite_to_onnx(request)
    raise ModelError(f"no conversion from {source} to {destination}")


def main(argv: list[str]) -> int:
    return answer_request(argv, lambda request: {"tool": convert_in_subprocess(request)})


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
