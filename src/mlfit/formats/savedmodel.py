"""TensorFlow SavedModel folders: recognised by ``saved_model.pb`` (or ``.pbtxt``), judged by
the SavedModel scan (every op loading it or calling the signature runs, against an allowlist),
declared inputs read by hand from the signature def in ``saved_model.pb``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mlfit.catalog.schema import Runtime
from mlfit.formats._wire.protobuf import fields, int64, messages
from mlfit.formats.base import TENSORFLOW_CONVERTERS, BaseFormat, Declared, free_leading
from mlfit.formats.kinds import ModelFormat
from mlfit.result import TensorInfo
from mlfit.safety.snapshot import CopyPolicy

GRAPH_FILES = ("saved_model.pb", "saved_model.pbtxt")
_MAX_PB_BYTES = 512 * 2**20  # saved_model.pb larger than this: leave it to the worker


# Known reasons TensorFlow cannot load a SavedModel, and their known fixes: (text in TensorFlow's
# error, what it means, the fix). The first that matches names the cause in mlfit's message.
KNOWN_LOAD_PROBLEMS: tuple[tuple[tuple[str, ...], str, str], ...] = (
    (("add_slot", "_create_or_restore_slot_variable"),
     "a Keras 2 (tf.keras before TensorFlow 2.16) export that holds its optimizer's slot variables, which "
     "TensorFlow without Keras 2 cannot restore",
     "re-export it for serving with Keras 2: `pip install tf_keras`, then `TF_USE_LEGACY_KERAS=1 python -c "
     "\"import tf_keras; tf_keras.models.load_model('DIR', compile=False).export('DIR-serving')\"` (the export "
     "leaves the optimizer out); or check the model's ONNX or TFLite export instead"),
    (("Op type not registered",),
     "the graph uses an op that this TensorFlow does not register (an add-on such as tensorflow_text, or a "
     "newer TensorFlow)",
     "install the package that registers the op (e.g. `pip install tensorflow-text` matching this TensorFlow), "
     "or check the model's ONNX or TFLite export instead"),
)


def load_problem(error: str) -> tuple[str, str] | None:
    """(what it means, the fix) for a known SavedModel load failure, else None."""
    for needles, cause, fix in KNOWN_LOAD_PROBLEMS:
        if any(needle in error for needle in needles):
            return cause, fix
    return None


def is_savedmodel(path: Path) -> bool:
    """Whether the folder ``path`` is a SavedModel (the one test mlfit uses)."""
    return any((path / name).is_file() for name in GRAPH_FILES)


def pure_tensor_data(rel: str) -> bool:
    """A variable shard: tensor values only, read by the graph's restore ops (the private copy may
    link it when large; every other file, graph, index and assets, is copied)."""
    parts = Path(rel).parts
    return len(parts) == 2 and parts[0] == "variables" and parts[1].startswith("variables.data-")


_TF_DTYPES = {1: "float32", 2: "float64", 3: "int32", 4: "uint8", 5: "int16", 6: "int8", 7: "string", 9: "int64",
              10: "bool", 14: "bfloat16", 17: "uint16", 19: "float16", 22: "uint32", 23: "uint64"}


def declared_inputs(path: Path, signature: str) -> Declared | None:
    """The inputs of signature ``signature`` in ``saved_model.pb``, read by hand (no TensorFlow)."""
    from mlfit import safeio
    from mlfit.errors import MlfitError

    pb = path / "saved_model.pb"
    if not pb.is_file() or pb.stat().st_size > _MAX_PB_BYTES:
        return None
    try:  # a regular file inside the folder, read within its cap (mlfit.safeio)
        data = memoryview(safeio.read_bounded(pb, "saved_model_pb", "saved_model.pb", within=path))
    except MlfitError:
        return None
    for meta in messages(data, 2):
        for entry in messages(meta, 5):  # map<string, SignatureDef>
            key = next((bytes(v).decode("utf-8", "replace") for n, v in fields(entry)
                        if n == 1 and isinstance(v, memoryview)), "")
            if key != signature:
                continue
            inputs: list[TensorInfo] = []
            for sig in messages(entry, 2):
                for item in messages(sig, 1):  # map<string, TensorInfo>
                    name, dtype, shape = "", "", None
                    for n, v in fields(item):
                        if n == 1 and isinstance(v, memoryview):
                            name = bytes(v).decode("utf-8", "replace")
                        elif n == 2 and isinstance(v, memoryview):
                            info = dict(fields(v))
                            dtype_code = info.get(2)
                            dtype = _TF_DTYPES.get(dtype_code, "") if isinstance(dtype_code, int) else ""
                            shape_msg = info.get(3)
                            if isinstance(shape_msg, memoryview):
                                shape_fields = list(fields(shape_msg))
                                if any(k == 3 and v2 for k, v2 in shape_fields):
                                    return None  # unknown rank: only the worker can say
                                dims = []
                                for k, dim in shape_fields:
                                    if k == 2 and isinstance(dim, memoryview):
                                        size = next((d for m, d in fields(dim) if m == 1 and isinstance(d, int)), 0)
                                        dims.append(int64(size))
                                shape = dims
                            else:
                                shape = []
                    if not dtype or shape is None:
                        return None
                    inputs.append(TensorInfo(name=name, dtype=dtype, shape=free_leading(shape)))
            return Declared(inputs=sorted(inputs, key=lambda t: t.name))
    return None  # no such signature: the worker says which exist


# Bytes per element of the dtypes above, for the variables' parameter bytes.
_ITEMSIZE = {"float32": 4, "float64": 8, "int32": 4, "uint8": 1, "int16": 2, "int8": 1, "int64": 8, "bool": 1,
             "bfloat16": 2, "float16": 2, "uint16": 2, "uint32": 4, "uint64": 8}
_VARIABLE_OPS = ("VarHandleOp", "VariableV2", "Variable")


def _variables(meta: Any) -> list[tuple[int, list[int]]]:
    """(dtype, shape) of each variable: the object graph's (TF2; the graph_def also holds the
    loader's restore copies), else the graph's variable ops (TF1), one per name."""
    saved = [n.variable for n in meta.object_graph_def.nodes if n.WhichOneof("kind") == "variable"]
    if saved:  # a Keras export tracks each variable twice (the layers' and a flat list): one per name
        unique = {v.name or str(i): v for i, v in enumerate(saved)}
        return [(v.dtype, [d.size for d in v.shape.dim]) for v in unique.values()]
    found: dict[str, tuple[int, list[int]]] = {}
    for node in meta.graph_def.node:
        if node.op in _VARIABLE_OPS:
            found.setdefault(node.name, (node.attr["dtype"].type, [d.size for d in node.attr["shape"].shape.dim]))
    return list(found.values())


def structure(path: Path, signature: str) -> dict[str, Any]:
    """The signature's inputs and outputs, the ops loading it and calling the signature run (the
    safety scan's walk), and the parameters of the graph's variables (shape and dtype attributes)."""
    from mlfit.safety.savedmodel_scan import parse_savedmodel, scan_saved_model_proto

    saved = parse_savedmodel(path)
    scan = scan_saved_model_proto(saved, signature)
    params, by_dtype = 0, dict[str, int]()
    meta = saved.meta_graphs[0] if saved.meta_graphs else None
    outputs: list[dict[str, Any]] = []
    if meta is not None:
        for dtype_code, dims in _variables(meta):
            name = _TF_DTYPES.get(dtype_code, f"dtype {dtype_code}")
            count = 1
            for d in dims:
                count *= max(d, 0)
            params += count
            by_dtype[name] = by_dtype.get(name, 0) + count * _ITEMSIZE.get(name, 4)
        if signature in meta.signature_def:
            for key, info in sorted(meta.signature_def[signature].outputs.items()):
                dims = [d.size for d in info.tensor_shape.dim] if not info.tensor_shape.unknown_rank else []
                dtype = _TF_DTYPES.get(info.dtype, f"dtype {info.dtype}")
                outputs.append({"name": key, "dtype": dtype, "shape": free_leading(dims)})
    declared = declared_inputs(path, signature)
    return {
        "signature": signature,
        "inputs": [t.model_dump(exclude_none=True) for t in declared.inputs] if declared else [],
        "outputs": outputs,
        "ops": dict(sorted(scan.ops.items(), key=lambda kv: (-kv[1], kv[0]))),
        "node_count": sum(scan.ops.values()),
        "parameters": params,
        "parameter_bytes": by_dtype,
        "notes": ["ops: those loading the SavedModel and calling the signature run (functions "
                  f"reached: {scan.functions}); FLOPs are not counted for TensorFlow graphs"],
    }


class SavedModel(BaseFormat):
    kind = ModelFormat.SAVEDMODEL
    runtime = Runtime.TENSORFLOW
    copy_policy = CopyPolicy(tensor_data=pure_tensor_data)
    converters = TENSORFLOW_CONVERTERS

    def claims_folder(self, path: Path) -> bool:
        return is_savedmodel(path)

    def check_safety(self, path: Path, trust_model: bool, signature: str) -> None:
        if not trust_model:
            from mlfit.safety import check_savedmodel

            check_savedmodel(path, signature)

    def declared_inputs(self, path: Path, signature: str) -> Declared | None:
        return declared_inputs(path, signature)

    def structure(self, path: Path, signature: str) -> dict[str, Any] | None:
        return structure(path, signature)


FORMAT = SavedModel()
