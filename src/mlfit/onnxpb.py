"""ONNX's protobuf messages without the ``onnx`` package.

``import onnx`` imports ml_dtypes, whose extension alone costs 0.6 s of CPU (2.5 s of wall time
on a loaded 2-core host), and onnx's helpers on top. Reading a model's protobuf, building a
small graph and walking the descriptor need none of that: only the generated ``onnx_ml_pb2``
module, which imports nothing but google.protobuf. It is loaded here from the installed onnx
package's file under a private module name, so the ``onnx`` package itself is not imported.

The messages share protobuf's default descriptor pool with the real package: an ``onnx`` import
later in the same process adds the identical file again (the pool accepts that), and bytes
serialised by one parse with the other. Shape inference is onnx's C++ extension, loaded here the
same way (:func:`infer_shapes`: the very function ``onnx.shape_inference.infer_shapes`` calls, so the
shapes are the same). Code that needs the rest of onnx (the checker, op schemas, numpy_helper for
the rarer element types) still imports ``onnx``; everything else should use this.
"""

from __future__ import annotations

import functools
import importlib.machinery
import importlib.util
import os
import sys
import threading
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
    path = os.path.join(_package_dir(), "onnx_ml_pb2.py")
    own = importlib.util.spec_from_file_location("mlfit._onnx_ml_pb2", path)
    if own is None or own.loader is None:
        raise ImportError(f"cannot load {path}")
    module = importlib.util.module_from_spec(own)
    own.loader.exec_module(module)
    return module


def _package_dir() -> str:
    spec = importlib.util.find_spec("onnx")  # locates the package; does not import it
    if spec is None or spec.origin is None:
        raise ImportError("onnx is not installed")
    return os.path.dirname(spec.origin)


_CPP = "onnx.onnx_cpp2py_export"
_cpp_lock = threading.Lock()  # the static analysis runs in a thread: one load, never two


def _cpp() -> ModuleType:
    """onnx's C++ extension (shape inference, checker, schemas) without running ``onnx/__init__``.

    It is registered under its own name in ``sys.modules``: the extension may be initialised once
    per process (a second load fails: "an object of the same name already exists"), so an
    ``import onnx`` later in this process must find this one, and it does (onnx's own modules import
    it by that name). Where onnx is already imported, its copy is used.
    """
    with _cpp_lock:
        loaded = sys.modules.get(_CPP)
        if loaded is not None:
            return loaded
        if "onnx" in sys.modules:
            return importlib.import_module(_CPP)
        folder = _package_dir()
        name = next((f for f in os.listdir(folder) if f.startswith("onnx_cpp2py_export.")
                     and f.endswith(tuple(importlib.machinery.EXTENSION_SUFFIXES))), None)
        if name is None:
            return importlib.import_module(_CPP)  # an unusual build: the package knows where it is
        path = os.path.join(folder, name)
        loader = importlib.machinery.ExtensionFileLoader(_CPP, path)
        spec = importlib.util.spec_from_file_location(_CPP, path, loader=loader)
        if spec is None:
            raise ImportError(f"cannot load {path}")
        module = importlib.util.module_from_spec(spec)
        loader.exec_module(module)
        sys.modules[_CPP] = module
        return module


def infer_shapes(model: Any, data_prop: bool = False) -> Any:
    """``onnx.shape_inference.infer_shapes(model, data_prop=data_prop)`` (check_type and strict_mode
    off, as there) through the same C++ function, without importing onnx."""
    inferred = _cpp().shape_inference.infer_shapes(model.SerializeToString(), False, False, data_prop)
    return model_proto().FromString(inferred)


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


def tensor(name: str, array: Any, elem_type: int = 1) -> Any:
    """A TensorProto of a plain numeric ``elem_type`` (float32 by default) holding ``array``'s
    values as raw little-endian bytes (what numpy_helper.from_array builds)."""
    out = proto().TensorProto()
    out.name = name
    out.data_type = int(elem_type)
    out.dims.extend(int(d) for d in array.shape)
    out.raw_data = array.astype(_PLAIN[int(elem_type)][0]).tobytes()
    return out


def filled(name: str, elem_type: int, shape: list[int], value: float) -> Any | None:
    """A TensorProto of ``shape`` with every element ``value`` (what
    ``numpy_helper.from_array(np.full(shape, value, dtype))`` builds), or None for an element type
    that is not a plain numeric one (float16, bfloat16, strings ...: onnx's helpers build those)."""
    if int(elem_type) not in _PLAIN:
        return None
    import numpy as np

    return tensor(name, np.full(shape, value, dtype=np.dtype(_PLAIN[int(elem_type)][0])), elem_type)


def value_info(name: str, elem_type: int, shape: list[int]) -> Any:
    """A ValueInfoProto of a tensor with a fixed shape (onnx.helper.make_tensor_value_info)."""
    out = proto().ValueInfoProto()
    out.name = name
    kind = out.type.tensor_type
    kind.elem_type = elem_type
    kind.shape.SetInParent()  # a scalar has an empty shape, not none (as make_tensor_value_info writes it)
    for size in shape:
        kind.shape.dim.add().dim_value = int(size)
    return out


# AttributeProto.AttributeType -> the field holding the value, and whether it is repeated
_ATTRIBUTE_FIELDS = {1: ("f", False), 2: ("i", False), 3: ("s", False), 4: ("t", False), 5: ("g", False),
                     11: ("sparse_tensor", False), 13: ("tp", False), 6: ("floats", True), 7: ("ints", True),
                     8: ("strings", True), 9: ("tensors", True), 10: ("graphs", True),
                     12: ("sparse_tensors", True), 14: ("type_protos", True)}


def attribute_value(attr: Any) -> Any:
    """An attribute's value as ``onnx.helper.get_attribute_value`` gives it (lists for the repeated
    kinds, None for UNDEFINED), and its errors for a reference or an unknown kind."""
    if attr.ref_attr_name:
        raise ValueError(f"Cannot get value of reference attribute: {attr}")
    if attr.type == 0:
        return None
    kind = _ATTRIBUTE_FIELDS.get(int(attr.type))
    if kind is None:
        raise ValueError(f"Unsupported ONNX attribute: {attr}")
    value = getattr(attr, kind[0])
    return list(value) if kind[1] else value


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
