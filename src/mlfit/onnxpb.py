"""ONNX's protobuf messages without the ``onnx`` package.

``import onnx`` imports ml_dtypes, whose extension alone costs 0.6 s of CPU (2.5 s of wall time
on a loaded 2-core host), and onnx's helpers on top. Reading a model's protobuf, building a
small graph and walking the descriptor need none of that: only the generated ``onnx_ml_pb2``
module, which imports nothing but google.protobuf. It is loaded here from the installed onnx
package's file under a private module name, so the ``onnx`` package itself is not imported.

The messages share protobuf's default descriptor pool with the real package: an ``onnx`` import
later in the same process adds the identical file again (the pool accepts that), and bytes
serialised by one parse with the other. Code that needs onnx's C++ parts (shape inference, the
checker, op schemas) still imports ``onnx``; everything else should use this.
"""

from __future__ import annotations

import functools
import importlib.util
import os
from types import ModuleType
from typing import Any

# tensor element types (TensorProto.DataType) to numpy dtype names: the ones numpy has.
# bfloat16 and the narrow float/int types are ml_dtypes' names, as onnx.helper gives them.
_DTYPES = {
    1: "float32", 2: "uint8", 3: "int8", 4: "uint16", 5: "int16", 6: "int32", 7: "int64", 8: "object",
    9: "bool", 10: "float16", 11: "float64", 12: "uint32", 13: "uint64", 14: "complex64", 15: "complex128",
    16: "bfloat16", 17: "float8_e4m3fn", 18: "float8_e4m3fnuz", 19: "float8_e5m2", 20: "float8_e5m2fnuz",
    21: "uint4", 22: "int4", 23: "float4_e2m1fn", 24: "float8_e8m0fnu", 25: "uint2", 26: "int2",
}


@functools.cache
def proto() -> ModuleType:
    """The generated ``onnx_ml_pb2`` module (ModelProto, TensorProto, ...), without ``import onnx``."""
    spec = importlib.util.find_spec("onnx")  # locates the package; does not import it
    if spec is None or spec.origin is None:
        raise ImportError("onnx is not installed")
    path = os.path.join(os.path.dirname(spec.origin), "onnx_ml_pb2.py")
    own = importlib.util.spec_from_file_location("mlfit._onnx_ml_pb2", path)
    if own is None or own.loader is None:
        raise ImportError(f"cannot load {path}")
    module = importlib.util.module_from_spec(own)
    own.loader.exec_module(module)
    return module


def model_proto() -> Any:
    """The ModelProto class."""
    return proto().ModelProto


def load_model(path: str | os.PathLike[str]) -> Any:
    """The ModelProto in ``path``, graph only: ``onnx.load(path, load_external_data=False)``."""
    with open(path, "rb") as fh:
        return model_proto().FromString(fh.read())


def dtype_name(elem_type: int) -> str:
    """numpy's name for an ONNX element type ("undefined" for 0), as onnx.helper would give it."""
    if not elem_type:
        return "undefined"
    return _DTYPES.get(int(elem_type), f"elem_type_{int(elem_type)}")


def tensor(name: str, array: Any) -> Any:
    """A float32 TensorProto holding ``array``'s bytes (what numpy_helper.from_array builds)."""
    out = proto().TensorProto()
    out.name = name
    out.data_type = proto().TensorProto.FLOAT
    out.dims.extend(int(d) for d in array.shape)
    out.raw_data = array.astype("<f4").tobytes()
    return out


def value_info(name: str, elem_type: int, shape: list[int]) -> Any:
    """A ValueInfoProto of a tensor with a fixed shape (onnx.helper.make_tensor_value_info)."""
    out = proto().ValueInfoProto()
    out.name = name
    kind = out.type.tensor_type
    kind.elem_type = elem_type
    for size in shape:
        kind.shape.dim.add().dim_value = int(size)
    return out


# element type -> (numpy dtype, the typed field that holds the values when raw_data is empty)
_PLAIN = {1: ("<f4", "float_data"), 2: ("u1", "int32_data"), 3: ("i1", "int32_data"), 4: ("<u2", "int32_data"),
          5: ("<i2", "int32_data"), 6: ("<i4", "int32_data"), 7: ("<i8", "int64_data"), 9: ("?", "int32_data"),
          11: ("<f8", "double_data"), 12: ("<u4", "uint64_data"), 13: ("<u8", "uint64_data")}


def to_array(tensor: Any) -> Any:
    """A TensorProto's values as a numpy array (onnx.numpy_helper.to_array for the plain numeric
    types, without importing onnx); other types (float16, bfloat16, strings, ...) and anything
    malformed go to numpy_helper itself, so the answer, or the error, is the same."""
    import numpy as np

    plain = _PLAIN.get(int(tensor.data_type))
    if plain is not None and tensor.data_location != 1:  # 1: EXTERNAL
        dtype, field = plain
        dims = tuple(int(d) for d in tensor.dims)
        native = np.dtype(dtype).newbyteorder("=")
        try:
            if tensor.raw_data:  # little-endian bytes on the wire
                return np.frombuffer(tensor.raw_data, dtype=dtype).reshape(dims).astype(native)
            return np.asarray(getattr(tensor, field), dtype=native).reshape(dims)
        except ValueError:
            pass
    from onnx import numpy_helper

    return numpy_helper.to_array(tensor)
