"""TensorFlow SavedModel folders: recognised by ``saved_model.pb`` (or ``.pbtxt``), judged by
the SavedModel scan (every op loading it or calling the signature runs, against an allowlist),
declared inputs read by hand from the signature def in ``saved_model.pb``."""

from __future__ import annotations

from pathlib import Path

from mlfit.catalog.schema import Runtime
from mlfit.formats._wire.protobuf import fields, int64, messages
from mlfit.formats.base import TENSORFLOW_CONVERTERS, BaseFormat, Declared, free_leading
from mlfit.formats.kinds import ModelFormat
from mlfit.result import TensorInfo
from mlfit.safety.snapshot import CopyPolicy

GRAPH_FILES = ("saved_model.pb", "saved_model.pbtxt")
_MAX_PB_BYTES = 512 * 2**20  # saved_model.pb larger than this: leave it to the worker


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


FORMAT = SavedModel()
