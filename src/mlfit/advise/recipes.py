"""How to reproduce a suggested variant, and ``--write-variants DIR``: the passing variants' files
with their recipe, written atomically beside each other."""

from __future__ import annotations

import json
import shlex
import shutil
from pathlib import Path
from typing import Any

from mlfit.advise.variants import Kind, Variant
from mlfit.errors import ConfigError
from mlfit.records import Suggestion

_CALLS = {
    Kind.INT8_DYNAMIC: ("from onnxruntime.quantization import QuantType, quantize_dynamic; "
                        "quantize_dynamic({src!r}, {out!r}, weight_type=QuantType.QInt8)"),
    Kind.FP16: ("import onnx; from onnxruntime.transformers.float16 import convert_float_to_float16; "
                "onnx.save(convert_float_to_float16(onnx.load({src!r}), keep_io_types=True), {out!r})"),
}
_SUFFIX = {Kind.TFLITE_FLOAT: ".tflite", Kind.TFLITE_INT8: ".tflite"}


def variant_name(model: Path, variant: Variant) -> str:
    """The file name a built variant is saved under: model.int8-dynamic.onnx,
    model.int8-dynamic+threads-2.onnx."""
    stem = model.stem if model.is_file() or model.suffix else model.name
    suffix = _SUFFIX.get(variant.file_kind, ".onnx") if variant.file_kind is not None else ".onnx"
    return f"{stem}.{variant.label.replace('=', '-')}{suffix}"


def _build_text(model: Path, out: str, kind: Kind) -> str:
    call = _CALLS.get(kind)
    if call is not None:
        return f"python -c {shlex.quote(call.format(src=str(model), out=out))}"
    if kind is Kind.INT8_STATIC:
        return ("onnxruntime.quantization.quantize_static(model, out, reader, quant_format=QuantFormat.QDQ, "
                "activation_type=QuantType.QInt8, weight_type=QuantType.QInt8) with a CalibrationDataReader "
                "over the first 16 samples of --data")
    int8 = kind is Kind.TFLITE_INT8
    return ("tf.lite.TFLiteConverter.from_keras_model(model) (from_saved_model for a SavedModel)"
            + ("; optimizations=[tf.lite.Optimize.DEFAULT]; representative_dataset over 16 samples" if int8 else ""))


def reproduce(model: Path, target: str, variant: Variant) -> str:
    """Commands that build (where needed) and check the variant, as a user would run them."""
    steps: list[str] = []
    file = str(model)
    if variant.file_kind is not None:
        file = variant_name(model, variant)
        steps.append(_build_text(model, file, variant.file_kind))
    edits = [f"`{key}: {value}`" for key, value in (("threads", variant.threads), ("batch_size", variant.batch))
             if value is not None]
    where = shlex.quote(target)
    if edits:
        steps.append(f"set {' and '.join(edits)} in a copy of the profile {target}")
        where = "COPY.yaml"
    dims = "".join(f" --dim {shlex.quote(f'{name}={size}')}" for name, size in variant.dims)
    steps.append(f"`mlfit check {shlex.quote(file)} --target {where}{dims}`")
    return "; then ".join(steps)


def write_variants(folder: Path, saved: list[tuple[Suggestion, Path | None, dict[str, Any]]]) -> dict[int, str]:
    """Copy each passing variant's file (or, for a deployment setting, only its recipe) into
    ``folder`` beside a ``.recipe.json``; returns where each file went, by index in ``saved``."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"--write-variants {folder}: cannot create the folder ({exc.strerror or exc})",
                          "choose a folder you can write") from None
    written: dict[int, str] = {}
    for i, (suggestion, built, recipe) in enumerate(saved):
        name = recipe["name"]
        if built is not None:
            dest = folder / name
            tmp = folder / f".{name}.tmp"
            shutil.copyfile(built, tmp)
            tmp.replace(dest)
            written[i] = str(dest)
        record = {**recipe, "file": written.get(i), "suggestion": suggestion.model_dump(mode="json")}
        tmp = folder / f".{name}.recipe.json.tmp"
        tmp.write_text(json.dumps(record, indent=2) + "\n")
        tmp.replace(folder / f"{name}.recipe.json")
    return written
