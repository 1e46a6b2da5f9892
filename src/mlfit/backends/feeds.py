"""Build input arrays from resolved shapes and the input spec (numpy only, in the worker).

Random data is seeded per input so runs are reproducible. Floats default to uniform [0, 1).
Integer inputs never get a guessed range: ``--value``/``--range``, or the range the run read
from the model (:mod:`mlfit.plan.inputs`, from each format's reader: an embedding table's rows, a OneHot depth, a Clip);
an integer input with none of these stops the run before this module is reached
(:func:`mlfit.inputspec.refuse_unranged_integers`). :func:`fill_for` records what was used.
"""

from __future__ import annotations

import zlib
from typing import Any

import numpy as np

from mlfit.errors import ConfigError
from mlfit.inputspec import InputSpec
from mlfit.result import InputFill, TensorInfo

_DTYPES: dict[str, Any] = {
    "float32": np.float32, "float16": np.float16, "float64": np.float64, "int8": np.int8,
    "uint8": np.uint8, "int16": np.int16, "uint16": np.uint16, "int32": np.int32, "int64": np.int64,
    "uint32": np.uint32, "uint64": np.uint64, "bool": np.bool_,
}  # fmt: skip
_FLOAT_RANGE = (0.0, 1.0)


def numpy_dtype(name: str) -> Any:
    if name not in _DTYPES:
        raise ConfigError(f"input dtype '{name}' is not supported for generated data",
                          "give real samples with --data FILE.npz")
    return _DTYPES[name]


def load_data(spec: InputSpec) -> dict[str, np.ndarray]:
    arrays: dict[str, np.ndarray] = {}
    if spec.data_file:
        try:
            with np.load(spec.data_file, allow_pickle=False) as npz:
                arrays.update({k: npz[k] for k in npz.files})
        except (OSError, ValueError) as exc:
            raise ConfigError(f"--data {spec.data_file}: not a readable .npz ({exc})",
                              "save with numpy.savez(path, input_name=array)") from None
    for name, path in spec.data_arrays.items():
        try:
            arrays[name] = np.load(path, allow_pickle=False)
        except (OSError, ValueError) as exc:
            raise ConfigError(f"--data {name}={path}: not a readable .npy ({exc})") from None
    return arrays


def data_shapes(inputs: list[TensorInfo], data: dict[str, np.ndarray]) -> dict[str, tuple[int, ...]]:
    """Shapes implied by --data, checked against the model; arrays may carry a leading sample axis."""
    shapes: dict[str, tuple[int, ...]] = {}
    by_name = {t.name: t for t in inputs}
    for name, array in data.items():
        tensor = by_name.get(name)
        if tensor is None:
            raise ConfigError(f"--data has array '{name}', which is not a model input",
                              f"inputs: {', '.join(by_name)}")
        want = numpy_dtype(tensor.dtype)
        if array.dtype != want:
            raise ConfigError(f"--data '{name}' has dtype {array.dtype}, the model expects {tensor.dtype}",
                              f"convert with array.astype('{tensor.dtype}')")
        shape = array.shape
        if len(shape) == len(tensor.shape) + 1:
            shape = shape[1:]  # a stack of samples
        if len(shape) != len(tensor.shape):
            raise ConfigError(f"--data '{name}' has shape {array.shape}, the model expects rank "
                              f"{len(tensor.shape)} ({tensor.shape})")
        for i, (dim, have) in enumerate(zip(tensor.shape, shape, strict=True)):
            if isinstance(dim, int) and dim > 0 and dim != have:
                raise ConfigError(f"--data '{name}' has shape {array.shape}; dim {i} must be {dim}")
        shapes[name] = tuple(shape)
    return shapes


def fill_for(tensor: TensorInfo, spec: InputSpec, data_names: set[str] | frozenset[str] = frozenset(),
             quant: tuple[float, int] | None = None) -> InputFill:
    """What an input is fed with and why; the one place that decides it (used to build and to record)."""
    if tensor.name in data_names:
        where = spec.data_arrays.get(tensor.name) or spec.data_file or ""
        return InputFill(kind="data", source=f"--data {where}".strip())
    integer = tensor.dtype not in ("bool",) and np.issubdtype(numpy_dtype(tensor.dtype), np.integer)
    if tensor.name in spec.values:
        return InputFill(kind="constant", value=spec.values[tensor.name], source="--value")
    if quant is not None and integer:
        low_q, high_q = spec.ranges.get(tensor.name, _FLOAT_RANGE)
        source = "--range" if tensor.name in spec.ranges else "default for a quantized input"
        return InputFill(kind="quantized", low=low_q, high=high_q,
                         source=f"{source} (real units; scale {quant[0]:g}, zero point {quant[1]})")
    if tensor.dtype == "bool":
        return InputFill(kind="uniform", low=0, high=2, source="random booleans")
    if tensor.name in spec.ranges:
        low, high = spec.ranges[tensor.name]
        return InputFill(kind="uniform", low=low, high=high, source="--range")
    if tensor.name in spec.derived_ranges:  # an embedding index may be a float the model casts
        low, high = spec.derived_ranges[tensor.name]
        return InputFill(kind="uniform", low=low, high=high, source=spec.range_sources.get(tensor.name, "the model"))
    if integer:
        raise ConfigError(f"integer input '{tensor.name}' has no known valid range",
                          f"give --range {tensor.name}=LOW:HIGH or --value {tensor.name}=N")
    return InputFill(kind="uniform", low=_FLOAT_RANGE[0], high=_FLOAT_RANGE[1], source="default for floats")


def _random(tensor: TensorInfo, shape: list[int], spec: InputSpec,
            quant: tuple[float, int] | None = None) -> np.ndarray:
    dtype = numpy_dtype(tensor.dtype)
    rng = np.random.default_rng([spec.seed, zlib.crc32(tensor.name.encode())])
    fill = fill_for(tensor, spec, frozenset(), quant)
    if fill.kind == "quantized" and quant is not None:
        # A quantized input: --value and --range are in real units; q = x / scale + zero_point.
        scale, zero_point = quant
        info = np.iinfo(dtype)
        real = rng.uniform(fill.low or 0.0, fill.high or 1.0, size=shape)
        return np.clip(np.round(real / scale + zero_point), info.min, info.max).astype(dtype)
    if fill.kind == "constant":
        if quant is not None and np.issubdtype(dtype, np.integer):
            scale, zero_point = quant
            info = np.iinfo(dtype)
            return np.full(shape, np.clip(round(float(fill.value or 0) / scale + zero_point), info.min, info.max),
                           dtype=dtype)
        return np.full(shape, fill.value, dtype=dtype)
    assert fill.low is not None and fill.high is not None
    if dtype is np.bool_:
        return rng.integers(0, 2, size=shape).astype(np.bool_)
    if np.issubdtype(dtype, np.integer):
        info = np.iinfo(dtype)
        low, high = max(int(fill.low), int(info.min)), min(int(fill.high), int(info.max))
        return rng.integers(low, high, size=shape, endpoint=False).astype(dtype)
    return rng.uniform(fill.low, fill.high, size=shape).astype(dtype)


def build_feeds(inputs: list[TensorInfo], shapes: dict[str, list[int]], spec: InputSpec,
                data: dict[str, np.ndarray],
                quantization: dict[str, tuple[float, int]] | None = None) -> list[dict[str, np.ndarray]]:
    """One feed dict per distinct sample: real samples are cycled through, random data is one sample.

    ``quantization`` maps quantized integer inputs to (scale, zero point) (TFLite int8/uint8).
    """
    count = 1
    stacked: dict[str, bool] = {}
    for tensor in inputs:
        if tensor.name in data:
            is_stack = data[tensor.name].ndim == len(tensor.shape) + 1
            stacked[tensor.name] = is_stack
            if is_stack:
                count = max(count, data[tensor.name].shape[0])
    feeds: list[dict[str, np.ndarray]] = []
    quant = quantization or {}
    randoms = {t.name: _random(t, shapes[t.name], spec, quant.get(t.name)) for t in inputs if t.name not in data}
    for i in range(count):
        feed: dict[str, np.ndarray] = {}
        for tensor in inputs:
            if tensor.name in data:
                array = data[tensor.name]
                feed[tensor.name] = array[i % array.shape[0]] if stacked[tensor.name] else array
            else:
                feed[tensor.name] = randoms[tensor.name]
        feeds.append(feed)
    return feeds
