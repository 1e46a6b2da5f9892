"""Real TensorFlow SavedModels, benign and hostile, built once per test session in a
subprocess (TensorFlow stays out of the pytest process): ``python tests/savedmodel_models.py DIR``.

Every hostile model is made with TensorFlow's own graph building (``tf.function``,
``tf.raw_ops``, a TF1 graph and ``SavedModelBuilder``); two are then edited the way an
attacker would (raw protobuf bytes, text format). Each would create a sentinel file named in
``index.json`` (``sentinel_<case>``) if its ops ever ran.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path
from typing import Any

from shared_tmp import built_once


def models(base: Path) -> dict[str, Path]:
    """Build (once per session) and return every SavedModel fixture by name."""
    return built_once(base, "savedmodel_models", __file__, 900)


HOSTILE = ("write_file", "tf1_init_writes", "print_to_file", "print_stream_from_caller", "fake_save_fn",
           "duplicate_op", "list_dir_dataset", "dataset_from_graph", "tf1_restore_elsewhere",
           "pbtxt_space", "pbtxt_split", "pbtxt_escape", "pbtxt_quote", "vocab_outside", "vocab_escape")


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


def _find_fn(graph: Any, op: str) -> tuple[int, int]:
    for i, fn in enumerate(graph.library.function):
        for j, node in enumerate(fn.node_def):
            if node.op == op:
                return i, j
    raise LookupError(op)


def _duplicate_op(folder: Path) -> None:
    """Give the WriteFile node a first ``op`` field "Identity": a reader that takes the first
    occurrence sees Identity, protobuf (and TensorFlow) keep the last: WriteFile."""
    from tensorflow.core.protobuf import saved_model_pb2

    sm = saved_model_pb2.SavedModel.FromString((folder / "saved_model.pb").read_bytes())
    meta = sm.meta_graphs[0]
    fi, ni = _find_fn(meta.graph_def, "WriteFile")
    fn = meta.graph_def.library.function[fi]
    node = fn.node_def[ni]
    hacked_node = _field(2, b"Identity") + node.SerializeToString()
    del fn.node_def[ni]
    fn_bytes = fn.SerializeToString() + _field(3, hacked_node)
    del meta.graph_def.library.function[fi]
    library = meta.graph_def.library.SerializeToString() + _field(1, fn_bytes)
    meta.graph_def.ClearField("library")
    graph = meta.graph_def.SerializeToString() + _field(2, library)
    meta.ClearField("graph_def")
    meta_bytes = meta.SerializeToString() + _field(2, graph)
    del sm.meta_graphs[0]
    (folder / "saved_model.pb").write_bytes(sm.SerializeToString() + _field(2, meta_bytes))


def _to_pbtxt(src: Path, dst: Path, rewrite: str) -> None:
    """A copy of ``src`` in text format with ``op: "WriteFile"`` rewritten as ``rewrite``."""
    from google.protobuf import text_format
    from tensorflow.core.protobuf import saved_model_pb2

    shutil.copytree(src, dst)
    sm = saved_model_pb2.SavedModel.FromString((dst / "saved_model.pb").read_bytes())
    text = text_format.MessageToString(sm)
    assert 'op: "WriteFile"' in text
    text = text.replace('op: "WriteFile"', rewrite)
    parsed = text_format.Parse(text, saved_model_pb2.SavedModel())  # TensorFlow's own reading
    assert any(n.op == "WriteFile" for f in parsed.meta_graphs[0].graph_def.library.function for n in f.node_def)
    (dst / "saved_model.pb").unlink()
    (dst / "saved_model.pbtxt").write_text(text)


def _stream_from_caller(folder: Path, sentinel: Path) -> None:
    """PrintV2 whose output_stream is a placeholder filled by the calling node's attr."""
    from tensorflow.core.framework import attr_value_pb2
    from tensorflow.core.protobuf import saved_model_pb2

    sm = saved_model_pb2.SavedModel.FromString((folder / "saved_model.pb").read_bytes())
    graph = sm.meta_graphs[0].graph_def
    callees = set()
    for fn in graph.library.function:
        for node in fn.node_def:
            if node.op == "PrintV2":
                node.attr["output_stream"].CopyFrom(attr_value_pb2.AttrValue(placeholder="stream"))
                arg = fn.signature.attr.add()
                arg.name, arg.type = "stream", "string"
                callees.add(fn.signature.name)
    done = 0
    for caller in graph.library.function:
        for node in caller.node_def:
            if "f" in node.attr and node.attr["f"].func.name in callees:
                # Call the function by name (the node's op), passing the stream as the node's attr.
                callee = graph.library.function[[f.signature.name for f in graph.library.function].index(
                    node.attr["f"].func.name)]
                out_name = callee.signature.output_arg[0].name
                old = node.name
                node.op = node.attr["f"].func.name
                for key in list(node.attr):
                    del node.attr[key]
                node.attr["stream"].CopyFrom(attr_value_pb2.AttrValue(s=f"file://{sentinel}".encode()))
                for other in caller.node_def:
                    other.input[:] = [i.replace(f"{old}:output:", f"{old}:{out_name}:") for i in other.input]
                for key, value in list(caller.ret.items()):
                    caller.ret[key] = value.replace(f"{old}:output:", f"{old}:{out_name}:")
                done += 1
    assert done, "no caller found"
    (folder / "saved_model.pb").write_bytes(sm.SerializeToString())


def _build_tf2(folder: Path, out: dict[str, str]) -> None:
    import keras
    import tensorflow as tf

    spec = [tf.TensorSpec([None, 4], tf.float32, name="x")]

    def save(module: Any, name: str, fn: Any) -> Path:
        path = folder / name
        tf.saved_model.save(module, str(path), signatures={"serving_default": fn})
        out[name] = str(path)
        return path

    # --- benign ---
    class Dense(tf.Module):
        def __init__(self) -> None:
            self.w = tf.Variable(tf.ones([4, 3]))
            self.b = tf.Variable(tf.zeros([3]))
            self.table = tf.lookup.StaticHashTable(
                tf.lookup.KeyValueTensorInitializer(tf.constant([0, 1], tf.int64), tf.constant([2.0, 3.0])), -1.0)

        @tf.function(input_signature=spec)
        def serve(self, x: tf.Tensor) -> dict[str, tf.Tensor]:
            y = tf.nn.relu(tf.matmul(x, self.w) + self.b)
            y = tf.cond(tf.reduce_sum(y) > 0, lambda: y * 2.0, lambda: y - 1.0)
            i = tf.constant(0)
            _, y = tf.while_loop(lambda i, v: i < 3, lambda i, v: (i + 1, tf.tanh(v)), [i, y])
            scale = self.table.lookup(tf.constant(1, tf.int64))
            tf.print("serving", tf.shape(x))
            return {"y": y * scale}

    dense = Dense()
    save(dense, "module_savedmodel", dense.serve)

    keras.utils.set_random_seed(0)
    inp = keras.Input((8,), name="features")
    hidden = keras.layers.Dense(16, activation="relu")(inp)
    hidden = keras.layers.BatchNormalization()(hidden)
    hidden = keras.layers.Dropout(0.1)(hidden)
    net = keras.Model(inp, keras.layers.Dense(2, activation="softmax")(hidden))
    net.export(str(folder / "keras_export"), verbose=False)
    out["keras_export"] = str(folder / "keras_export")
    tf.saved_model.save(net, str(folder / "keras_saved"))
    out["keras_saved"] = str(folder / "keras_saved")

    vocab = folder / "vocab.txt"
    vocab.write_text("a\nb\nc\n")

    class Text(tf.Module):
        def __init__(self) -> None:
            init = tf.lookup.TextFileInitializer(str(vocab), tf.string, tf.lookup.TextFileIndex.WHOLE_LINE,
                                                 tf.int64, tf.lookup.TextFileIndex.LINE_NUMBER)
            self.table = tf.lookup.StaticHashTable(init, -1)

        @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="text")])
        def serve(self, text: tf.Tensor) -> dict[str, tf.Tensor]:
            return {"ids": self.table.lookup(tf.strings.lower(text))}

    text_model = Text()
    vocab_model = save(text_model, "vocab_asset", text_model.serve)

    # --- hostile ---
    def sentinel(case: str) -> Path:
        path = folder / f"SENTINEL_{case}"
        out[f"sentinel_{case}"] = str(path)
        return path

    target = sentinel("write_file")

    class Writer(tf.Module):
        @tf.function(input_signature=spec)
        def serve(self, x: tf.Tensor) -> dict[str, tf.Tensor]:
            tf.raw_ops.WriteFile(filename=str(target), contents=tf.strings.as_string(tf.reduce_sum(x)))
            return {"y": x * 2.0}

    writer = Writer()
    written = save(writer, "write_file", writer.serve)

    print_target = sentinel("print_to_file")

    class Printer(tf.Module):
        @tf.function(input_signature=spec)
        def serve(self, x: tf.Tensor) -> dict[str, tf.Tensor]:
            tf.print("leak", x, output_stream=f"file://{print_target}")
            return {"y": x + 1.0}

    printer = Printer()
    save(printer, "print_to_file", printer.serve)

    class QuietPrinter(tf.Module):
        @tf.function
        def inner(self, x: tf.Tensor) -> tf.Tensor:
            tf.print("leak", x)
            return x + 1.0

        @tf.function(input_signature=spec)
        def serve(self, x: tf.Tensor) -> dict[str, tf.Tensor]:
            return {"y": self.inner(x)}

    quiet = QuietPrinter()
    caller_case = save(quiet, "print_stream_from_caller", quiet.serve)
    _stream_from_caller(caller_case, sentinel("print_stream_from_caller"))

    save_target = sentinel("fake_save_fn")

    class FakeSaver(tf.Module):
        @tf.function
        def _traced_save(self, x: tf.Tensor) -> tf.Tensor:  # named like TensorFlow's own save function
            tf.raw_ops.SaveV2(prefix=str(save_target), tensor_names=["x"], shape_and_slices=[""], tensors=[x])
            return x

        @tf.function(input_signature=spec)
        def serve(self, x: tf.Tensor) -> dict[str, tf.Tensor]:
            return {"y": self._traced_save(x) * 3.0}

    fake = FakeSaver()
    save(fake, "fake_save_fn", fake.serve)

    secret = folder / "secret.txt"
    secret.write_text("secret\n")

    class OutsideVocab(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="text")])
        def serve(self, text: tf.Tensor) -> dict[str, tf.Tensor]:
            table = tf.raw_ops.HashTableV2(key_dtype=tf.string, value_dtype=tf.int64)
            init = tf.raw_ops.InitializeTableFromTextFileV2(table_handle=table, filename=str(secret), key_index=-2,
                                                            value_index=-1)
            with tf.control_dependencies([init]):
                return {"ids": tf.raw_ops.LookupTableFindV2(table_handle=table, keys=text,
                                                            default_value=tf.constant(-1, tf.int64))}

    outside = OutsideVocab()
    save(outside, "vocab_outside", outside.serve)
    escaped = folder / "vocab_escape"
    shutil.copytree(vocab_model, escaped)
    from tensorflow.core.protobuf import saved_model_pb2

    proto = saved_model_pb2.SavedModel.FromString((escaped / "saved_model.pb").read_bytes())
    proto.meta_graphs[0].asset_file_def[0].filename = "../../secret.txt"  # TensorFlow joins it to assets/
    (escaped / "saved_model.pb").write_bytes(proto.SerializeToString())
    out["vocab_escape"] = str(escaped)

    dup = folder / "duplicate_op"
    shutil.copytree(written, dup)
    _duplicate_op(dup)
    out["duplicate_op"] = str(dup)
    out["sentinel_duplicate_op"] = str(target)

    listed = folder / "listed_dir"
    listed.mkdir()
    (listed / "secret.txt").write_text("secret")

    class Lister(tf.Module):
        @tf.function(input_signature=spec)
        def serve(self, x: tf.Tensor) -> dict[str, tf.Tensor]:
            files = tf.data.Dataset.list_files(str(listed / "*"), shuffle=False)
            count = files.reduce(tf.constant(0.0), lambda acc, _: acc + 1.0)
            return {"y": x + count}

    lister = Lister()
    save(lister, "list_dir_dataset", lister.serve)

    class FromGraph(tf.Module):
        @tf.function(input_signature=spec)
        def serve(self, x: tf.Tensor) -> dict[str, tf.Tensor]:
            graph = tf.raw_ops.DatasetToGraphV2(input_dataset=tf.data.Dataset.range(3)._variant_tensor)
            ds = tf.raw_ops.DatasetFromGraph(graph_def=graph)
            with tf.control_dependencies([ds]):
                return {"y": tf.identity(x)}

    from_graph = FromGraph()
    save(from_graph, "dataset_from_graph", from_graph.serve)

    for case, rewrite in [("pbtxt_space", 'op : "WriteFile"'), ("pbtxt_split", 'op: "Write" "File"'),
                          ("pbtxt_escape", 'op: "\\127rite\\x46ile"'), ("pbtxt_quote", "op:'WriteFile'")]:
        _to_pbtxt(written, folder / case, rewrite)
        out[case] = str(folder / case)
        out[f"sentinel_{case}"] = str(target)


def _build_tf1(folder: Path, out: dict[str, str]) -> None:
    import tensorflow as tf

    v1 = tf.compat.v1

    def build(name: str, hostile: str | None) -> None:
        graph = tf.Graph()
        with graph.as_default(), v1.Session(graph=graph) as sess:
            x = v1.placeholder(tf.float32, [None, 4], name="x")
            w = v1.get_variable("w", initializer=tf.ones([4, 2]))
            y = tf.identity(tf.matmul(x, w), name="y")
            main_op = v1.local_variables_initializer()
            saver = None
            if hostile == "tf1_init_writes":
                target = folder / "SENTINEL_tf1_init_writes"
                out["sentinel_tf1_init_writes"] = str(target)
                main_op = tf.group(main_op, tf.io.write_file(str(target), "pwned"))
            if hostile == "tf1_restore_elsewhere":
                # The saver's restore reads a checkpoint at a path fixed in the graph,
                # not the one the loader feeds (and the init op writes a file with it).
                target = folder / "SENTINEL_tf1_restore_elsewhere"
                out["sentinel_tf1_restore_elsewhere"] = str(target)
                restored = tf.raw_ops.RestoreV2(prefix="/etc/mlfit-not-here/ckpt", tensor_names=["w"],
                                                shape_and_slices=[""], dtypes=[tf.float32])
                saver = v1.train.Saver(sharded=True)
                sess.run(v1.global_variables_initializer())
                restore_all = tf.group(saver.saver_def.restore_op_name and graph.get_operation_by_name(
                    saver.saver_def.restore_op_name), restored[0].op, name="restore_all_hostile")
                saver.saver_def.restore_op_name = restore_all.name
            sess.run(v1.global_variables_initializer())
            builder = v1.saved_model.Builder(str(folder / name))
            signature = v1.saved_model.predict_signature_def({"x": x}, {"y": y})
            builder.add_meta_graph_and_variables(sess, [v1.saved_model.SERVING],
                                                 signature_def_map={"serving_default": signature},
                                                 main_op=main_op, saver=saver)
            builder.save()
        out[name] = str(folder / name)

    build("tf1_savedmodel", None)
    build("tf1_init_writes", "tf1_init_writes")
    build("tf1_restore_elsewhere", "tf1_restore_elsewhere")


def _build_tflite(folder: Path, out: dict[str, str]) -> None:
    """TFLite models with Flex (Select TF) and custom ops, converted by TensorFlow's converter."""
    import tensorflow as tf

    target = folder / "SENTINEL_tflite"
    out["sentinel_tflite"] = str(target)
    spec = [tf.TensorSpec([1, 4], tf.float32)]

    @tf.function(input_signature=spec)
    def writer(x: tf.Tensor) -> tf.Tensor:
        done = tf.raw_ops.WriteFile(filename=str(target), contents=tf.strings.as_string(tf.reduce_sum(x)))
        with tf.control_dependencies([done]):
            return tf.identity(x * 2.0)

    @tf.function(input_signature=spec)
    def strings(x: tf.Tensor) -> tf.Tensor:
        joined = tf.strings.reduce_join(tf.strings.as_string(x), axis=-1)
        return tf.cast(tf.strings.length(joined), tf.float32) + tf.reduce_sum(x)

    select = [tf.lite.OpsSet.TFLITE_BUILTINS, tf.lite.OpsSet.SELECT_TF_OPS]
    for name, fn, ops, custom in [("flex_write", writer, select, False),
                                  ("custom_write", writer, [tf.lite.OpsSet.TFLITE_BUILTINS], True),
                                  ("flex_benign", strings, select, False)]:
        converter = tf.lite.TFLiteConverter.from_concrete_functions([fn.get_concrete_function()], fn)
        converter.target_spec.supported_ops = ops
        converter.allow_custom_ops = custom
        (folder / f"{name}.tflite").write_bytes(converter.convert())
        out[name] = str(folder / f"{name}.tflite")


def main(folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    out: dict[str, str] = {}
    _build_tf2(folder, out)
    _build_tf1(folder, out)
    _build_tflite(folder, out)
    # Building ran nothing hostile: tracing a tf.function does not execute its ops.
    leaked = [k for k, v in out.items() if k.startswith("sentinel_") and Path(v).exists()]
    if leaked:
        for key in leaked:
            Path(out[key]).unlink()
    (folder / "index.json").write_text(json.dumps(out))


if __name__ == "__main__":
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    main(Path(sys.argv[1]))
