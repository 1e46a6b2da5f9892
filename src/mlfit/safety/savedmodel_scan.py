"""Scan a TensorFlow SavedModel for ops that touch files, the network or Python, reading
``saved_model.pb`` with a small protobuf wire-format walker (TensorFlow is never imported).

Every graph is scanned: each MetaGraphDef's top-level GraphDef and every function of its
function library. Refused ops (see ``REFUSED_OPS`` and docs/formats.md) read or write
files, open readers or writers on files, log to files or remote debuggers, run Python,
or make remote calls.

The checkpoint ops (``SaveV2``, ``RestoreV2``, ``MergeV2Checkpoints``) are the standard
restore path: TensorFlow's loader runs them with the variables folder it chooses. They
are allowed only there: in the top-level saver graph and in the functions TensorFlow
generates for saving and restoring (``__inference__traced_save_*``,
``__inference__traced_restore_*``); anywhere else (a serving function, say) they are
refused like ``WriteFile``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from mlfit.formats import read_varint

REFUSED_OPS: dict[str, str] = {
    **dict.fromkeys(["ReadFile", "WriteFile", "MatchingFiles", "ImmutableConst"], "reads or writes files"),
    **dict.fromkeys(["Save", "SaveSlices", "Restore", "RestoreSlice", "SaveV2", "RestoreV2",
                     "MergeV2Checkpoints"],
                    "reads or writes checkpoint files outside the standard restore path"),
    **dict.fromkeys(["WholeFileReader", "WholeFileReaderV2", "TextLineReader", "TextLineReaderV2",
                     "FixedLengthRecordReader", "FixedLengthRecordReaderV2", "TFRecordReader",
                     "TFRecordReaderV2", "LMDBReader", "IdentityReader", "IdentityReaderV2"], "reads files"),
    **dict.fromkeys(["TFRecordDataset", "TFRecordDatasetV2", "TextLineDataset", "FixedLengthRecordDataset",
                     "FixedLengthRecordDatasetV2", "CSVDataset", "CSVDatasetV2", "ExperimentalCSVDataset",
                     "LMDBDataset", "ExperimentalLMDBDataset", "SqlDataset", "ExperimentalSqlDataset",
                     "LoadDataset", "ExperimentalLoadDataset"], "reads files or databases"),
    **dict.fromkeys(["SaveDataset", "SaveDatasetV2", "ExperimentalSaveDataset", "DatasetToTFRecord",
                     "ExperimentalDatasetToTFRecord", "SnapshotDataset", "SnapshotDatasetV2", "CacheDataset",
                     "CacheDatasetV2"], "writes files"),
    **dict.fromkeys(["InitializeTableFromTextFile", "InitializeTableFromTextFileV2"],
                    "reads a vocabulary file named in the graph"),
    **dict.fromkeys(["CreateSummaryFileWriter", "CreateSummaryDbWriter", "WriteSummary", "WriteScalarSummary",
                     "WriteHistogramSummary", "WriteImageSummary", "WriteAudioSummary", "WriteGraphSummary",
                     "WriteRawProtoSummary", "ImportEvent", "FlushSummaryWriter"], "writes summary files"),
    **dict.fromkeys(["DebugIdentity", "DebugIdentityV2", "DebugIdentityV3", "DebugNanCount",
                     "DebugNumericSummary", "DebugNumericSummaryV2"], "sends tensors to debug files or URLs"),
    **dict.fromkeys(["PyFunc", "PyFuncStateless", "EagerPyFunc"], "runs Python code"),
    **dict.fromkeys(["Rpc", "TryRpc", "RpcClient", "RpcCall", "RpcServer", "RpcServerStart",
                     "RpcServerRegister", "RpcCheckStatus", "RpcGetValue", "DeleteRpcFutureResource",
                     "GcsConfigureCredentials", "GcsConfigureBlockCache", "BigQueryReader",
                     "GenerateBigQueryReaderPartitions", "FileSystemSetConfiguration"],
                    "talks to the network or a remote file system"),
}  # fmt: skip
_CHECKPOINT_OPS = {"SaveV2", "RestoreV2", "MergeV2Checkpoints"}
_RESTORE_FUNCTION = re.compile(r"^__inference__traced_(save|restore)_\d+$")
_PRINT_TO_FILE = b"file://"  # PrintV2's output_stream may name a file


class SavedModelError(Exception):
    """saved_model.pb cannot be parsed."""


@dataclass
class GraphScan:
    ops: dict[str, int] = field(default_factory=dict)  # op -> count, over every graph and function
    functions: int = 0
    problems: list[str] = field(default_factory=list)  # 'where: Op (why)'


def _varint(data: bytes, pos: int) -> tuple[int, int]:
    try:
        return read_varint(data, pos)
    except ValueError as exc:
        raise SavedModelError(str(exc)) from None


def fields(data: bytes) -> list[tuple[int, int, bytes | int]]:
    """Top-level fields of a protobuf message: (number, wire type, bytes or int)."""
    out: list[tuple[int, int, bytes | int]] = []
    pos = 0
    end = len(data)
    while pos < end:
        key, pos = _varint(data, pos)
        number, wire = key >> 3, key & 7
        if number == 0:  # invalid in protobuf (a file of zeros): refuse at once, as protobuf does
            raise SavedModelError(f"invalid protobuf field number 0 at byte {pos - 1}")
        if wire == 0:
            value, pos = _varint(data, pos)
            out.append((number, wire, value))
        elif wire == 2:
            length, pos = _varint(data, pos)
            if pos + length > end:
                raise SavedModelError("truncated length-delimited field")
            out.append((number, wire, data[pos : pos + length]))
            pos += length
        elif wire == 1:
            pos += 8
        elif wire == 5:
            pos += 4
        else:
            raise SavedModelError(f"unsupported wire type {wire}")
    if pos != end:
        raise SavedModelError("truncated fixed-width field")
    return out


def _sub(message: bytes, number: int) -> list[bytes]:
    return [v for n, w, v in fields(message) if n == number and w == 2 and isinstance(v, bytes)]


def _text(message: bytes, number: int) -> str:
    values = _sub(message, number)
    return values[0].decode("utf-8", "replace") if values else ""


def _scan_nodes(nodes: list[bytes], where: str, restore_path: bool, scan: GraphScan) -> None:
    for node in nodes:
        name = _text(node, 1)  # NodeDef.name
        op = _text(node, 2)  # NodeDef.op
        scan.ops[op] = scan.ops.get(op, 0) + 1
        if op in _CHECKPOINT_OPS and restore_path:
            continue
        if op in REFUSED_OPS:
            scan.problems.append(f"{where}: op {op} ('{name}') {REFUSED_OPS[op]}")
        elif op == "PrintV2" and any(_PRINT_TO_FILE in attr for attr in _sub(node, 5)):
            scan.problems.append(f"{where}: op PrintV2 ('{name}') prints to a file")


def scan_graph_bytes(data: bytes) -> GraphScan:
    """Scan a serialized SavedModel proto."""
    scan = GraphScan()
    meta_graphs = _sub(data, 2)  # SavedModel.meta_graphs
    if not meta_graphs:
        raise SavedModelError("no meta graph in saved_model.pb")
    for index, meta in enumerate(meta_graphs):
        for graph in _sub(meta, 2):  # MetaGraphDef.graph_def
            # The top-level graph holds the saver (TF1 layouts run their graph through it too,
            # so its non-checkpoint ops are checked like any function's).
            _scan_nodes(_sub(graph, 1), f"meta graph {index}", True, scan)
            for library in _sub(graph, 2):  # GraphDef.library
                for function in _sub(library, 1):  # FunctionDefLibrary.function
                    scan.functions += 1
                    signature = _sub(function, 1)  # FunctionDef.signature (OpDef)
                    fname = _text(signature[0], 1) if signature else "?"
                    restore = bool(_RESTORE_FUNCTION.match(fname))
                    _scan_nodes(_sub(function, 3), f"function {fname}", restore, scan)
    return scan


def scan_pbtxt(text: str) -> GraphScan:
    """A text-format SavedModel: ops are read from ``op: "Name"`` lines (no function names)."""
    scan = GraphScan()
    for op in re.findall(r'\bop:\s*"([A-Za-z0-9_>]+)"', text):
        scan.ops[op] = scan.ops.get(op, 0) + 1
        if op in REFUSED_OPS and op not in _CHECKPOINT_OPS:
            scan.problems.append(f"graph: op {op} {REFUSED_OPS[op]}")
    return scan


def scan_savedmodel(folder: Path) -> GraphScan:
    """Scan ``folder/saved_model.pb`` (or ``.pbtxt``)."""
    from mlfit import safeio

    pb = folder / "saved_model.pb"
    if pb.is_file():  # regular, inside the folder, capped before reading (mlfit.safeio)
        return scan_graph_bytes(safeio.read_bounded(pb, "saved_model_pb", "saved_model.pb", within=folder))
    text = safeio.read_bounded(folder / "saved_model.pbtxt", "saved_model_pbtxt", "saved_model.pbtxt",
                               within=folder)
    return scan_pbtxt(text.decode("utf-8", "replace"))
