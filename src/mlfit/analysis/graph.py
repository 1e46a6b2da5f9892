"""Static facts of an ONNX graph, read without executing anything.

Imports ``onnx`` lazily (it is a parser, not a runtime) and never loads external data.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

from mlfit.errors import ModelError

_CONTROL_FLOW = {"If", "Loop", "Scan"}


def _dtype_name(elem_type: int) -> str:
    import onnx

    name = onnx.helper.tensor_dtype_to_np_dtype(elem_type).name if elem_type else "undefined"
    return {"float32": "float32", "object": "string"}.get(name, name)


def _shape(value_info: Any) -> list[int | str | None]:
    dims: list[int | str | None] = []
    for dim in value_info.type.tensor_type.shape.dim:
        if dim.HasField("dim_value") and dim.dim_value > 0:
            dims.append(int(dim.dim_value))
        elif dim.HasField("dim_param") and dim.dim_param:
            dims.append(dim.dim_param)
        else:
            dims.append(None)
    return dims


def load_onnx_proto(path: Path) -> Any:
    import onnx
    from google.protobuf.message import DecodeError

    try:
        return onnx.load(str(path), load_external_data=False)
    except (DecodeError, ValueError, OSError) as exc:
        raise ModelError(f"{path}: not a valid onnx file ({exc})", "re-export the model") from None


def analyze_onnx(path: Path) -> dict[str, Any]:
    """Opset, IR version, op histogram, parameters by dtype, dtypes, I/O and control flow."""
    model = load_onnx_proto(path)
    graph = model.graph
    opsets = {o.domain or "ai.onnx": int(o.version) for o in model.opset_import}
    ops: Counter[str] = Counter()
    custom: set[str] = set()

    def walk(g: Any) -> None:
        for node in g.node:
            domain = node.domain or "ai.onnx"
            ops[node.op_type if domain in ("ai.onnx", "") else f"{domain}::{node.op_type}"] += 1
            if domain not in ("ai.onnx", "ai.onnx.ml", "com.microsoft"):
                custom.add(domain)
            for attr in node.attribute:
                if attr.g is not None and attr.g.node:
                    walk(attr.g)
                for sub in attr.graphs:
                    walk(sub)

    walk(graph)
    params = 0
    param_bytes: Counter[str] = Counter()
    external = 0
    for init in graph.initializer:
        count = 1
        for d in init.dims:
            count *= int(d)
        params += count
        dtype = _dtype_name(init.data_type)
        import numpy as np

        itemsize = np.dtype(dtype).itemsize if dtype not in ("string", "undefined", "bfloat16") else 2
        param_bytes[dtype] += count * itemsize
        if init.data_location == 1:
            external += 1
    initializer_names = {i.name for i in graph.initializer}
    inputs = [{"name": i.name, "dtype": _dtype_name(i.type.tensor_type.elem_type), "shape": _shape(i)}
              for i in graph.input if i.name not in initializer_names]
    outputs = [{"name": o.name, "dtype": _dtype_name(o.type.tensor_type.elem_type), "shape": _shape(o)}
               for o in graph.output]
    dtypes = sorted({*param_bytes, *(t["dtype"] for t in inputs), *(t["dtype"] for t in outputs)}
                    - {"undefined"})
    return {
        "format": "onnx",
        "ir_version": int(model.ir_version),
        "opset": opsets.get("ai.onnx"),
        "opsets": opsets,
        "producer": f"{model.producer_name} {model.producer_version}".strip(),
        "ops": dict(ops.most_common()),
        "node_count": sum(ops.values()),
        "parameters": params,
        "parameter_bytes": dict(param_bytes),
        "external_initializers": external,
        "inputs": inputs,
        "outputs": outputs,
        "dtypes": dtypes,
        "dynamic_dims": sorted({d for t in inputs for d in t["shape"] if isinstance(d, str)}),
        "control_flow": sorted(set(ops) & _CONTROL_FLOW),
        "custom_domains": sorted(custom),
    }
