"""The SavedModel reachability scan on small SavedModels built with TensorFlow's own
descriptors (no TensorFlow needed): calls, attribute placeholders, the TF1 restore path."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mlfit.errors import ModelError
from mlfit.formats import ModelFormat
from mlfit.formats.registry import check_model
from mlfit.safety.savedmodel_scan import (
    GraphScan,
    SavedModelError,
    _children,
    _object_functions,
    scan_saved_model_proto,
    scan_savedmodel,
)
from mlfit.safety.tf_ops import ALLOWED_OPS
from mlfit.safety.tfproto import ProtoError, message_class, parse_binary, parse_text
from test_fuzz import FUZZ


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


def test_names_given_twice_are_all_judged() -> None:
    """Two root children called 'signatures', two functions called 'serve': whichever one
    TensorFlow keeps, both are judged."""
    sm = _model()
    objects = sm.meta_graphs[0].object_graph_def
    objects.nodes[0].children.add(node_id=3, local_name="signatures")
    objects.nodes.add().children.add(node_id=4, local_name="serving_default")
    objects.nodes.add().bare_concrete_function.concrete_function_name = "other"
    _function(sm, "serve", ("mm", "MatMul"))
    _function(sm, "other", ("w", "WriteFile"))
    assert scan_saved_model_proto(sm).refused_ops == ["WriteFile"]
    sm2 = _model()
    _function(sm2, "serve", ("mm", "MatMul"))
    _function(sm2, "serve", ("r", "ReadFile"))
    assert scan_saved_model_proto(sm2).refused_ops == ["ReadFile"]


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
    meta.collection_def["train_op"].node_list.value.append("unused_save")  # never run by a loader
    scan = scan_saved_model_proto(sm)
    assert scan.layout == "tf1" and scan.refused_ops == ["WriteFile"]  # the saver's own RestoreV2 passes
    graph.node[2].input.append("^evil")  # restore_all now also runs a RestoreV2 of another path
    assert scan_saved_model_proto(sm).refused_ops == ["RestoreV2", "WriteFile"]
    del graph.node[2].input[-1]
    graph.node[1].input[0] = "save/Const:1"  # another output of the fed node: not what the loader feeds
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


# --- property-based fuzzing of the parser and the reachability walk ---------------------------


_OPS = ["MatMul", "Relu", "Identity", "WriteFile", "ReadFile", "SaveV2", "PrintV2", "MatchingFiles",
        "DatasetFromGraph", "NoOp", "Const"]
_FUNCS = [f"f{i}" for i in range(6)]

graphs = st.lists(  # function i: a list of (op, callee or None, how it calls)
    st.lists(st.tuples(st.sampled_from(_OPS), st.none() | st.sampled_from(_FUNCS),
                       st.sampled_from(["f", "then_branch", "list", "nested", "by_name"])), max_size=4),
    min_size=len(_FUNCS), max_size=len(_FUNCS))


def _build(spec: list[list[tuple[str, str | None, str]]]) -> Any:
    sm = _model()
    sm.meta_graphs[0].object_graph_def.nodes[2].bare_concrete_function.concrete_function_name = "f0"
    for index, nodes in enumerate(spec):
        fn = _function(sm, _FUNCS[index])
        for j, (op, callee, how) in enumerate(nodes):
            node = fn.node_def.add(name=f"n{j}", op=op)
            if callee is None:
                continue
            if how == "by_name":
                node.op = callee
            elif how == "list":
                node.attr["fs"].list.func.add().name = callee
            elif how == "nested":
                node.attr["f"].func.name = "f5"
                node.attr["f"].func.attr["g"].func.name = callee
            else:
                node.attr[how].func.name = callee
    return sm


def _reachable_ops(spec: list[list[tuple[str, str | None, str]]]) -> set[str]:
    """An independent, simple reference: every op in every function reachable from f0."""
    seen, todo, ops = set(), ["f0"], set()
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        for op, callee, how in spec[_FUNCS.index(name)]:
            if callee is not None and how == "by_name":
                todo.append(callee)
                continue
            ops.add(op)
            if callee is not None:
                todo.append(callee)
                if how == "nested":
                    todo.append("f5")
    return ops


@FUZZ
@given(graphs)
def test_walk_refuses_whatever_the_signature_can_reach(spec: list[list[tuple[str, str | None, str]]]) -> None:
    scan = scan_saved_model_proto(_build(spec))
    reached = _reachable_ops(spec)
    unsafe = {op for op in reached if op not in ALLOWED_OPS and op != "PrintV2"}
    assert unsafe <= set(scan.refused_ops), (unsafe, scan.refused_ops)
    assert set(scan.refused_ops) <= {op for op in reached if op not in ALLOWED_OPS} | {"PrintV2"}


@FUZZ
@given(st.binary(max_size=600))
def test_parser_on_random_bytes(data: bytes) -> None:
    try:
        result = scan_saved_model_proto(parse_binary(data))
    except (ProtoError, SavedModelError):
        return
    assert isinstance(result, GraphScan)


_PBTXT = ("meta_graphs { object_graph_def { nodes { children { node_id: 1 local_name: 'signatures' } } "
          "nodes { children { node_id: 2 local_name: 'serving_default' } } "
          "nodes { bare_concrete_function { concrete_function_name: 'serve' } } } "
          "graph_def { library { function { signature { name: 'serve' } "
          "node_def { name: 'w' op: 'WriteFile' } } } } }")


@FUZZ
@given(st.integers(0, len(_PBTXT)), st.text(max_size=12), st.integers(0, 4))
def test_pbtxt_parser_on_mutated_text(at: int, insert: str, cut: int) -> None:
    text = _PBTXT[:at] + insert + _PBTXT[at + cut:]
    try:
        parsed = parse_text(text)
        scan = scan_saved_model_proto(parsed)
    except (ProtoError, SavedModelError):
        return
    if len(parsed.meta_graphs) != 1 or not parsed.meta_graphs[0].HasField("object_graph_def"):
        return
    meta = parsed.meta_graphs[0]
    objects = meta.object_graph_def
    sigs = _children(objects, _children(objects, [0], "signatures"), "serving_default")
    names = {name for sig in sigs for name in _object_functions(objects, sig)}
    ops = {n.op for f in meta.graph_def.library.function if f.signature.name in names for n in f.node_def}
    if "WriteFile" in ops:  # whatever the text looks like, what TensorFlow would run is refused
        assert "WriteFile" in scan.refused_ops
