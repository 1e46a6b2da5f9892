"""The SavedModel reachability scan on small SavedModels built with TensorFlow's own
descriptors (no TensorFlow needed): calls, attribute placeholders, the TF1 restore path."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from mlfit.errors import ModelError
from mlfit.formats import ModelFormat
from mlfit.safety import check_model
from mlfit.safety.savedmodel_scan import SavedModelError, scan_saved_model_proto, scan_savedmodel
from mlfit.safety.tfproto import message_class


def _model(tf2: bool = True) -> Any:
    sm = message_class("tensorflow.SavedModel")()
    meta = sm.meta_graphs.add()
    if tf2:  # root -> signatures -> serving_default -> function "serve"
        objects = meta.object_graph_def
        root = objects.nodes.add()
        root.children.add(node_id=1, local_name="signatures")
        objects.nodes.add().children.add(node_id=2, local_name="serving_default")
        objects.nodes.add().bare_concrete_function.concrete_function_name = "serve"
    return sm


def _function(sm: Any, name: str, *nodes: tuple[str, str]) -> Any:
    fn = sm.meta_graphs[0].graph_def.library.function.add()
    fn.signature.name = name
    for node_name, op in nodes:
        node = fn.node_def.add()
        node.name, node.op = node_name, op
    return fn


def test_calls_are_followed_and_unreached_functions_ignored() -> None:
    sm = _model()
    serve = _function(sm, "serve", ("mm", "MatMul"), ("call", "StatefulPartitionedCall"))
    serve.node_def[1].attr["f"].func.name = "inner"
    _function(sm, "inner", ("w", "WriteFile"))
    _function(sm, "__inference__traced_save_1", ("s", "SaveV2"))  # never reached: not judged
    scan = scan_saved_model_proto(sm)
    assert scan.refused_ops == ["WriteFile"] and "SaveV2" not in scan.ops


def test_every_function_attr_is_followed() -> None:
    sm = _model()
    serve = _function(sm, "serve", ("if", "StatelessIf"), ("map", "SomeOp"), ("direct", "by_name"))
    serve.node_def[0].attr["then_branch"].func.name = "then"
    serve.node_def[0].attr["else_branch"].func.name = "other"
    serve.node_def[1].attr["fs"].list.func.add().name = "in_list"
    nested = serve.node_def[0].attr["then_branch"].func.attr["inner"].func
    nested.name = "nested"
    for name, op in [("then", "Relu"), ("other", "ReadFile"), ("in_list", "PyFunc"), ("nested", "Save"),
                     ("by_name", "WriteFile")]:
        _function(sm, name, ("n", op))
    refused = set(scan_saved_model_proto(sm).refused_ops)
    assert refused == {"SomeOp", "ReadFile", "PyFunc", "Save", "WriteFile"}


def test_placeholder_attrs_take_the_callers_value() -> None:
    sm = _model()
    serve = _function(sm, "serve", ("call", "PartitionedCall"))
    serve.node_def[0].attr["f"].func.name = "printer"
    serve.node_def[0].attr["f"].func.attr["stream"].s = b"file:///tmp/leak"
    printer = _function(sm, "printer", ("p", "PrintV2"))
    printer.node_def[0].attr["output_stream"].placeholder = "stream"
    assert scan_saved_model_proto(sm).refused_ops == ["PrintV2"]
    serve.node_def[0].attr["f"].func.attr["stream"].s = b"stderr"
    assert scan_saved_model_proto(sm).problems == []
    del serve.node_def[0].attr["f"].func.attr["stream"]  # unbound: refused, not guessed
    assert scan_saved_model_proto(sm).refused_ops == ["PrintV2"]


def test_tf1_restore_path_and_init_ops() -> None:
    sm = _model(tf2=False)
    meta = sm.meta_graphs[0]
    meta.saver_def.filename_tensor_name = "save/Const:0"
    meta.saver_def.restore_op_name = "save/restore_all"
    graph = meta.graph_def
    for name, op, inputs in [("save/Const", "PlaceholderWithDefault", []),
                             ("save/RestoreV2", "RestoreV2", ["save/Const"]),
                             ("save/restore_all", "NoOp", ["^save/RestoreV2"]),
                             ("evil", "RestoreV2", ["path"]), ("path", "Const", []),
                             ("init", "NoOp", ["^write"]), ("write", "WriteFile", []),
                             ("unused_save", "SaveV2", [])]:
        node = graph.node.add(name=name, op=op)
        node.input.extend(inputs)
    meta.collection_def["saved_model_main_op"].node_list.value.append("init")
    scan = scan_saved_model_proto(sm)
    assert scan.layout == "tf1" and scan.refused_ops == ["WriteFile"]  # the saver's own RestoreV2 passes
    graph.node[2].input.append("^evil")  # restore_all now also runs a RestoreV2 of another path
    assert scan_saved_model_proto(sm).refused_ops == ["RestoreV2", "WriteFile"]


def _field(number: int, payload: bytes) -> bytes:
    assert len(payload) < 128  # one-byte lengths keep the hand encoding simple
    return bytes([number << 3 | 2, len(payload)]) + payload


def test_last_occurrence_of_a_field_wins(tmp_path: Path) -> None:
    """A node with ``op`` twice: protobuf (and TensorFlow) keep the last one, so must the scan."""
    meta = _model().meta_graphs[0].SerializeToString()  # the object graph naming 'serve'
    node = _field(1, b"n") + _field(2, b"Identity") + _field(2, b"WriteFile")
    function = _field(1, _field(1, b"serve")) + _field(3, node)
    graph = _field(2, _field(1, function))  # GraphDef.library.function
    data = bytes([0x12]) + _encode_len(len(meta) + len(graph) + 2) + meta + _field(2, graph)
    folder = tmp_path / "dup"
    folder.mkdir()
    (folder / "saved_model.pb").write_bytes(data)
    assert scan_savedmodel(folder).refused_ops == ["WriteFile"]


def _encode_len(value: int) -> bytes:
    out = bytearray()
    while True:
        out.append((value & 0x7F) | (0x80 if value > 0x7F else 0))
        value >>= 7
        if not value:
            return bytes(out)


def test_unreadable_savedmodel_is_refused(tmp_path: Path) -> None:
    folder = tmp_path / "broken"
    folder.mkdir()
    (folder / "saved_model.pb").write_bytes(b"\x12\xff\xff\xff\x0f")
    with pytest.raises(SavedModelError):
        scan_savedmodel(folder)
    with pytest.raises(ModelError, match="cannot check the SavedModel"):
        check_model(folder, ModelFormat.SAVEDMODEL, trust_model=False)


@pytest.mark.parametrize("op_text", ['op: "WriteFile"', 'op : "WriteFile"', 'op: "Write" "File"',
                                     'op: "\\127rite\\x46ile"', "op:'WriteFile'", 'op: "Identity" op: "WriteFile"'])
def test_pbtxt_is_parsed_like_tensorflow(tmp_path: Path, op_text: str) -> None:
    folder = tmp_path / "text"
    folder.mkdir()
    (folder / "saved_model.pbtxt").write_text(
        "meta_graphs { object_graph_def { nodes { children { node_id: 1 local_name: 'signatures' } } "
        "nodes { children { node_id: 2 local_name: 'serving_default' } } "
        "nodes { bare_concrete_function { concrete_function_name: 'serve' } } } "
        "graph_def { library { function { signature { name: 'serve' } node_def { name: 'w' " + op_text + " } } } } }"
    )
    if op_text.count("op") == 2:  # a singular field given twice: text_format.Parse (TensorFlow's) refuses
        with pytest.raises(SavedModelError, match="text-format"):
            scan_savedmodel(folder)
        return
    assert scan_savedmodel(folder).refused_ops == ["WriteFile"]
