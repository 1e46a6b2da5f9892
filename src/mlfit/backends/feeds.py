"""Build input arrays from resolved shapes and the input spec (numpy only, in the worker).

Random data is seeded per input so runs are reproducible; integer inputs default to a
small non-negative range because indices over the whole int64 range crash embedding
lookups; ``--range`` widens or narrows it.
"""

from __future__ import annotations

import zlib
from typing import Any

import numpy as np

from mlfit.errors import ConfigError
from mlfit.inputspec import InputSpec
from mlfit.result import TensorInfo

_DTYPES: dict[str, Any] = {
    "float32": np.float32, "float16": np.float16, "float64": np.float64, "int8": np.int8,
    "uint8": np.uint8, "int16": np.int16, "uint16": np.uint16, "int32": np.int32, "int64": np.int64,
    "uint32": np.uint32, "uint64": np.uint64, "bool": np.bool_,
}  # fmt: skip
_DEFAULT_INT_RANGE = (0, 100)


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


def _random(tensor: TensorInfo, shape: list[int], spec: InputSpec,
            quant: tuple[float, int] | None = None) -> np.ndarray:
    dtype = numpy_dtype(tensor.dtype)
    rng = np.random.default_rng([spec.seed, zlib.crc32(tensor.name.encode())])
    if quant is not None and np.issubdtype(dtype, np.integer):
        # A quantized input: --value and --range are in real units; q = x / scale + zero_point.
        scale, zero_point = quant
        info = np.iinfo(dtype)
        if tensor.name in spec.values:
            real = np.full(shape, spec.values[tensor.name], dtype=np.float64)
        else:
            low_q, high_q = spec.ranges.get(tensor.name, (0.0, 1.0))
            real = rng.uniform(low_q, high_q, size=shape)
        return np.clip(np.round(real / scale + zero_point), info.min, info.max).astype(dtype)
    if tensor.name in spec.values:
        return np.full(shape, spec.values[tensor.name], dtype=dtype)
    if dtype is np.bool_:
        return rng.integers(0, 2, size=shape).astype(np.bool_)
    if np.issubdtype(dtype, np.integer):
        info = np.iinfo(dtype)
        low, high = spec.ranges.get(tensor.name, _DEFAULT_INT_RANGE)
        low, high = max(int(low), int(info.min)), min(int(high), int(info.max))
        return rng.integers(low, high, size=shape, endpoint=False).astype(dtype)
    low_f, high_f = spec.ranges.get(tensor.name, (0.0, 1.0))
    return rng.uniform(low_f, high_f, size=shape).astype(dtype)


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
