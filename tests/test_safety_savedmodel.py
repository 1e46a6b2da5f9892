"""The SavedModel op scan on hand-built protobuf bytes: where checkpoint ops are allowed."""

from __future__ import annotations

from pathlib import Path

import pytest

from mlfit.errors import ModelError
from mlfit.formats import ModelFormat
from mlfit.safety import check_model
from mlfit.safety.savedmodel_scan import SavedModelError, scan_graph_bytes, scan_savedmodel


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def _field(number: int, payload: bytes) -> bytes:
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload


def _node(name: str, op: str, attr: bytes = b"") -> bytes:
    return _field(1, name.encode()) + _field(2, op.encode()) + (_field(5, attr) if attr else b"")


def _function(name: str, *nodes: bytes) -> bytes:
    return _field(1, _field(1, name.encode())) + b"".join(_field(3, n) for n in nodes)


def _saved_model(top: list[bytes], functions: list[bytes]) -> bytes:
    library = b"".join(_field(1, f) for f in functions)
    graph = b"".join(_field(1, n) for n in top) + _field(2, library)
    return _field(2, _field(2, graph))  # SavedModel.meta_graphs[0].graph_def


def test_checkpoint_ops_only_on_the_restore_path() -> None:
    clean = _saved_model([_node("save/SaveV2", "SaveV2")], [
        _function("__inference__traced_restore_123", _node("RestoreV2", "RestoreV2")),
        _function("__inference__traced_save_120", _node("s", "SaveV2"), _node("m", "MergeV2Checkpoints")),
        _function("__inference_serve_7", _node("mm", "MatMul")),
    ])  # fmt: skip
    scan = scan_graph_bytes(clean)
    assert scan.problems == [] and scan.functions == 3 and scan.ops["SaveV2"] == 2
    hostile = _saved_model([], [_function("__inference_serve_7", _node("steal", "RestoreV2"))])
    problems = scan_graph_bytes(hostile).problems
    assert problems == [
        "function __inference_serve_7: op RestoreV2 ('steal') reads or writes checkpoint files "
        "outside the standard restore path"
    ]


@pytest.mark.parametrize(
    "op",
    [
        "ReadFile",
        "WriteFile",
        "PyFunc",
        "DebugIdentityV2",
        "InitializeTableFromTextFileV2",
        "TFRecordDataset",
        "CreateSummaryFileWriter",
        "MatchingFiles",
    ],
)
def test_refused_ops_anywhere(op: str) -> None:
    top_level = scan_graph_bytes(_saved_model([_node("x", op)], []))
    in_function = scan_graph_bytes(
        _saved_model([], [_function("__inference__traced_restore_1", _node("x", op))])
    )
    assert top_level.problems and in_function.problems


def test_print_to_file_is_refused_but_print_to_stderr_is_not() -> None:
    to_file = _node("p", "PrintV2", _field(1, b"output_stream") + _field(2, _field(2, b"file:///tmp/leak")))
    to_err = _node("p", "PrintV2", _field(1, b"output_stream") + _field(2, _field(2, b"stderr")))
    assert scan_graph_bytes(_saved_model([], [_function("f", to_file)])).problems
    assert not scan_graph_bytes(_saved_model([], [_function("f", to_err)])).problems


def test_unreadable_savedmodel_is_refused(tmp_path: Path) -> None:
    folder = tmp_path / "broken"
    folder.mkdir()
    (folder / "saved_model.pb").write_bytes(b"\x12\xff\xff\xff\x0f")
    with pytest.raises(SavedModelError):
        scan_savedmodel(folder)
    with pytest.raises(ModelError, match="cannot scan"):
        check_model(folder, ModelFormat.SAVEDMODEL, trust_model=False)


def test_pbtxt_is_scanned_too(tmp_path: Path) -> None:
    folder = tmp_path / "text"
    folder.mkdir()
    (folder / "saved_model.pbtxt").write_text(
        'meta_graphs { graph_def { node { name: "r" op: "ReadFile" } } }'
    )
    assert scan_savedmodel(folder).problems
