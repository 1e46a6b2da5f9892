"""Keras models: ``.keras`` (a zip with config.json) and legacy ``.h5`` (HDF5). Judged by the
Keras config scan (Lambda layers and unregistered classes run code); declared inputs and
Embedding ranges read from the same config (Sequential or Functional)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mlfit.catalog.schema import Runtime
from mlfit.formats.base import TENSORFLOW_CONVERTERS, BaseFormat, Declared, free_leading
from mlfit.formats.kinds import ModelFormat
from mlfit.result import TensorInfo


def _keras_dtype(value: Any) -> str:
    if isinstance(value, dict):  # a DTypePolicy
        value = (value.get("config") or {}).get("name")
    return {"float": "float32", "half": "float16", "double": "float64"}.get(str(value), str(value or "float32"))


def inbound_names(layer: dict[str, Any]) -> list[str]:
    """Names of the layers feeding ``layer`` (Keras 3 keras_history, or Keras 2 nested lists)."""
    names: list[str] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            history = (node.get("config") or {}).get("keras_history") if "config" in node else None
            if isinstance(history, list) and history and isinstance(history[0], str):
                names.append(history[0])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            if len(node) >= 3 and isinstance(node[0], str) and isinstance(node[1], int):
                names.append(node[0])
            for value in node:
                walk(value)

    walk(layer.get("inbound_nodes", []))
    return names


def keras_declared(config: Any) -> Declared | None:
    """Inputs and Embedding ranges from a Keras model config (Sequential or Functional)."""
    if not isinstance(config, dict):
        return None
    body = config.get("config") or {}
    layers = [layer for layer in body.get("layers", []) if isinstance(layer, dict)]
    inputs: list[TensorInfo] = []
    ranges: dict[str, tuple[float, float]] = {}
    sources: dict[str, str] = {}
    for layer in layers:
        if layer.get("class_name") != "InputLayer":
            continue
        cfg = layer.get("config") or {}
        shape = cfg.get("batch_shape", cfg.get("batch_input_shape"))
        if not isinstance(shape, list):
            return None
        inputs.append(TensorInfo(name=str(cfg.get("name") or layer.get("name")), dtype=_keras_dtype(cfg.get("dtype")),
                                 shape=free_leading(shape)))
    if config.get("class_name") == "Sequential":
        if not inputs:  # Keras 2 Sequential: no InputLayer, and the worker names the input itself
            return None
        body_layers = [la for la in layers if la.get("class_name") != "InputLayer"]
        if len(inputs) == 1 and body_layers and body_layers[0].get("class_name") == "Embedding":
            n = (body_layers[0].get("config") or {}).get("input_dim")
            if isinstance(n, int) and n > 0:
                ranges[inputs[0].name] = (0, n)
                sources[inputs[0].name] = f"the model: feeds Embedding '{body_layers[0]['config'].get('name')}' " \
                                          f"of input_dim {n}"
    else:
        input_names = {t.name for t in inputs}
        for layer in layers:
            if layer.get("class_name") != "Embedding":
                continue
            n = (layer.get("config") or {}).get("input_dim")
            feeding = sorted({name for name in inbound_names(layer) if name in input_names})
            if isinstance(n, int) and n > 0 and len(feeding) == 1:
                ranges[feeding[0]] = (0, n)
                label = layer.get("name") or layer["config"].get("name")
                sources[feeding[0]] = f"the model: feeds Embedding '{label}' of input_dim {n}"
        declared_order = body.get("input_layers")
        if isinstance(declared_order, list) and declared_order and isinstance(declared_order[0], list):
            order = [str(item[0]) for item in declared_order if isinstance(item, list) and item]
            if sorted(order) == sorted(t.name for t in inputs):
                inputs = sorted(inputs, key=lambda t: order.index(t.name))
    if not inputs:
        return None
    return Declared(inputs=inputs, ranges=ranges, range_sources=sources)


def keras_config(path: Path, zipped: bool) -> Any:
    """The model's config, read as the safety scan reads it (bounded; KerasConfigError if absent)."""
    from mlfit.safety.keras_scan import h5_config, keras_zip_config

    return keras_zip_config(path) if zipped else h5_config(path)


class Keras(BaseFormat):
    runtime = Runtime.TENSORFLOW
    converters = TENSORFLOW_CONVERTERS

    def __init__(self, kind: ModelFormat, suffixes: tuple[str, ...], zipped: bool) -> None:
        self.kind, self.suffixes, self.zipped = kind, suffixes, zipped

    def check_safety(self, path: Path, trust_model: bool, signature: str) -> None:
        from mlfit.safety import check_keras

        # Trusted: the config is still read, since files outside the archive stay out even then.
        check_keras(path, lambda: keras_config(path, self.zipped), trusted=trust_model)

    def declared_inputs(self, path: Path, signature: str) -> Declared | None:
        from mlfit.safety.keras_scan import KerasConfigError

        try:
            config = keras_config(path, self.zipped)
        except KerasConfigError:
            return None
        declared = keras_declared(config)
        return declared if declared is not None and declared.inputs else None

    def structure(self, path: Path, signature: str) -> dict[str, Any] | None:
        """Inputs and the layer histogram from the model's config (read as the safety scan reads it),
        parameters from the shapes of the stored weights (:mod:`mlfit.formats.keras_weights`); FLOPs
        are added by :mod:`mlfit.analysis.kerascost` from the same config."""
        from mlfit.formats.keras_weights import keras_weights

        config = keras_config(path, self.zipped)
        layers: dict[str, int] = {}
        _layers(config, layers)
        declared = keras_declared(config)
        top = config.get("config", {}) if isinstance(config, dict) else {}
        named = top.get("output_layers", []) if isinstance(top, dict) else []
        named = [named] if isinstance(named, list) and named and isinstance(named[0], str) else named
        outputs = [{"name": str(o[0]), "dtype": "", "shape": []} for o in named if isinstance(o, list) and o] \
            if isinstance(named, list) else []
        if not outputs and isinstance(config, dict) and config.get("class_name") == "Sequential":
            outputs = _sequential_output(top)  # a Sequential config names no output: its last layer is it
        weights = keras_weights(path, self.zipped)
        counted = {} if weights.problem else {"parameters": weights.parameters, "parameter_bytes": weights.by_dtype}
        return {
            "inputs": [t.model_dump(exclude_none=True) for t in declared.inputs] if declared else [],
            "outputs": outputs,
            "ops": dict(sorted(layers.items(), key=lambda kv: (-kv[1], kv[0]))),
            "node_count": sum(layers.values()),
            **counted,
            "notes": ["ops: the config's layers; parameters: the stored weights' shapes (optimizer state left out)"
                      if not weights.problem else
                      f"ops: the config's layers; parameters not counted: {weights.problem}"],
        }


def _layers(node: Any, out: dict[str, int], depth: int = 0) -> None:
    """Layer class names of a Keras config, nested models' layers included."""
    if depth > 64:
        return
    if isinstance(node, dict):
        config = node.get("config")
        if isinstance(config, dict) and isinstance(config.get("layers"), list):
            for layer in config["layers"]:
                if isinstance(layer, dict) and isinstance(layer.get("class_name"), str):
                    out[layer["class_name"]] = out.get(layer["class_name"], 0) + 1
                _layers(layer, out, depth + 1)


KERAS = Keras(ModelFormat.KERAS, (".keras",), zipped=True)
H5 = Keras(ModelFormat.H5, (".h5", ".hdf5"), zipped=False)


def _sequential_output(config: Any) -> list[dict[str, Any]]:
    """The one output of a Sequential model's config: its last layer (shape filled in by the cost walk)."""
    layers = config.get("layers") if isinstance(config, dict) else None
    last = layers[-1] if isinstance(layers, list) and layers else None
    inner = last.get("config") if isinstance(last, dict) else None
    name = inner.get("name") if isinstance(inner, dict) else None
    return [{"name": str(name), "dtype": "", "shape": []}] if isinstance(name, str) else []
