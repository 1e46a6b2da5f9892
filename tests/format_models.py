"""Real models of every non-ONNX format, built once per test session in a subprocess
(TensorFlow stays out of the pytest process): ``python tests/format_models.py FOLDER``.

Test modules call :func:`models` with the session's base temp folder; the first call builds,
later calls (other modules) reuse the files.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from shared_tmp import built_once

SENTINEL_NAME = "PWNED_SENTINEL"


def models(base: Path) -> dict[str, Path]:
    """Build (once) and return every fixture model by name."""
    return built_once(base, "format_models", __file__, 600)


def _build_keras(folder: Path, out: dict[str, str]) -> None:
    import keras
    import numpy as np
    import tensorflow as tf

    keras.utils.set_random_seed(0)
    inp = keras.Input((16, 16, 3), name="image")
    x = keras.layers.Conv2D(8, 3, activation="relu")(inp)
    x = keras.layers.MaxPooling2D()(x)
    x = keras.layers.Conv2D(8, 3, activation="relu")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    net = keras.Model(inp, keras.layers.Dense(4, activation="softmax")(x), name="convnet")
    net.save(folder / "convnet.keras")
    net.save(folder / "convnet.h5")
    # What Keras itself counts, for `mlfit inspect` to match without loading the model.
    (folder / "convnet_keras_counts.json").write_text(json.dumps({"count_params": net.count_params()}))
    net.export(str(folder / "convnet_savedmodel"), verbose=False)
    out.update(
        keras=str(folder / "convnet.keras"),
        h5=str(folder / "convnet.h5"),
        savedmodel=str(folder / "convnet_savedmodel"),
        keras_counts=str(folder / "convnet_keras_counts.json"),
    )

    converter = tf.lite.TFLiteConverter.from_keras_model(net)
    (folder / "convnet.tflite").write_bytes(converter.convert())

    def representative() -> object:
        rng = np.random.default_rng(0)
        for _ in range(8):
            yield [rng.random((1, 16, 16, 3), dtype=np.float32)]

    converter = tf.lite.TFLiteConverter.from_keras_model(net)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = representative
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    converter.inference_input_type = tf.int8
    converter.inference_output_type = tf.int8
    (folder / "convnet_int8.tflite").write_bytes(converter.convert())
    out.update(tflite=str(folder / "convnet.tflite"), tflite_int8=str(folder / "convnet_int8.tflite"))

    # Hostile Keras files: a Lambda at the top, and one nested inside an inner model.
    lam = keras.Sequential(
        [keras.Input((4,)), keras.layers.Dense(4), keras.layers.Lambda(lambda z: z * 2)], name="with_lambda"
    )
    lam.save(folder / "lambda.keras")
    lam.save(folder / "lambda.h5")
    inner = keras.Sequential(
        [keras.Input((4,)), keras.layers.Lambda(lambda z: z + 1, name="sneaky")], name="inner"
    )
    outer_in = keras.Input((4,), name="x")
    outer = keras.Model(outer_in, keras.layers.Dense(2)(inner(outer_in)), name="outer")
    outer.save(folder / "nested_lambda.keras")
    outer.save(folder / "nested_lambda.h5")
    # A string lookup with its vocabulary inline (Keras also stores it as an asset in the archive).
    words = keras.Input((1,), dtype="string", name="word")
    lookup = keras.layers.StringLookup(vocabulary=["cat", "dog", "fish"], name="lookup")(words)
    keras.Model(words, lookup, name="vocab").save(folder / "lookup.keras")
    out.update(
        lookup_keras=str(folder / "lookup.keras"),
        lambda_keras=str(folder / "lambda.keras"),
        lambda_h5=str(folder / "lambda.h5"),
        nested_keras=str(folder / "nested_lambda.keras"),
        nested_h5=str(folder / "nested_lambda.h5"),
    )

    # A SavedModel whose serving function writes a file.
    target = folder / "written_by_savedmodel.txt"

    class Writer(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([None, 4], tf.float32, name="x")])
        def serve(self, x: tf.Tensor) -> dict[str, tf.Tensor]:
            tf.io.write_file(str(target), tf.strings.as_string(tf.reduce_sum(x)))
            return {"y": x * 2.0}

    writer = Writer()
    tf.saved_model.save(
        writer, str(folder / "writer_savedmodel"), signatures={"serving_default": writer.serve}
    )
    out.update(writer_savedmodel=str(folder / "writer_savedmodel"), writer_target=str(target))


def _build_keras2_slots(folder: Path, out: dict[str, str]) -> None:
    """A SavedModel as a Keras 2 (tf.keras) export of a compiled, trained model stores it: the optimizer
    object holds slot variables for the weights. Keras 2 is not installed here, so the module is saved by
    TensorFlow and its object graph given the optimizer's slot, as tf.keras wrote it; TensorFlow without
    Keras 2 then fails to load it ('_UserObject' object has no attribute 'add_slot'), as it does the real one."""
    import tensorflow as tf
    from tensorflow.core.protobuf import saved_model_pb2

    class Net(tf.Module):
        def __init__(self) -> None:
            super().__init__()
            self.w = tf.Variable(tf.ones([4, 2]), name="w")
            self.optimizer = tf.Module()
            self.optimizer.m = tf.Variable(tf.zeros([4, 2]), name="w_m")

        @tf.function(input_signature=[tf.TensorSpec([None, 4], tf.float32, name="x")])
        def serve(self, x: tf.Tensor) -> dict[str, tf.Tensor]:
            return {"y": tf.matmul(x, self.w)}

    net = Net()
    target = folder / "keras2_slots_savedmodel"
    tf.saved_model.save(net, str(target), signatures={"serving_default": net.serve})
    proto = saved_model_pb2.SavedModel()
    proto.ParseFromString((target / "saved_model.pb").read_bytes())
    graph = proto.meta_graphs[0].object_graph_def
    ids = {child.local_name: child.node_id for node in graph.nodes for child in node.children}
    slot = graph.nodes[ids["optimizer"]].slot_variables.add()
    slot.original_variable_node_id, slot.slot_variable_node_id, slot.slot_name = ids["w"], ids["m"], "m"
    (target / "saved_model.pb").write_bytes(proto.SerializeToString())
    out.update(keras2_slots_savedmodel=str(target))
def _build_pair(folder: Path, out: dict[str, str]) -> None:
    """One small Keras CNN exported to ONNX (tf2onnx) and to TFLite: one network, two formats,
    which must get the same projection method and agree (issue 21 item 3)."""
    import keras
    import tensorflow as tf
    import tf2onnx

    keras.utils.set_random_seed(0)
    inp = keras.Input((64, 64, 3), batch_size=1, name="image")
    x = keras.layers.Conv2D(16, 3, strides=2, padding="same", activation="relu")(inp)
    x = keras.layers.DepthwiseConv2D(3, padding="same", activation="relu")(x)
    x = keras.layers.Conv2D(32, 1, activation="relu")(x)
    x = keras.layers.MaxPooling2D()(x)
    x = keras.layers.Conv2D(64, 3, padding="same", activation="relu")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    net = keras.Model(inp, keras.layers.Dense(10)(x), name="pair")
    spec = [tf.TensorSpec((1, 64, 64, 3), tf.float32, name="image")]
    tf2onnx.convert.from_keras(net, input_signature=spec, opset=17, output_path=str(folder / "pair.onnx"))
    (folder / "pair.tflite").write_bytes(tf.lite.TFLiteConverter.from_keras_model(net).convert())
    out.update(pair_onnx=str(folder / "pair.onnx"), pair_tflite=str(folder / "pair.tflite"))
    # One op of each family the flatbuffer analysis costs beyond convolutions: an LSTM (a WHILE loop
    # once converted), FULLY_CONNECTED on a sequence, BATCH_MATMUL, SOFTMAX.
    seq = keras.Input((16, 8), batch_size=1, name="seq")
    d = keras.layers.Dense(8)(keras.layers.LSTM(16, return_sequences=True)(seq))
    scores = keras.layers.Lambda(lambda z: tf.matmul(z, z, transpose_b=True))(d)
    ops = keras.Model(seq, keras.layers.Softmax()(scores), name="ops")
    (folder / "ops.tflite").write_bytes(tf.lite.TFLiteConverter.from_keras_model(ops).convert())
    out.update(ops_tflite=str(folder / "ops.tflite"))


def _build_inputs(folder: Path, out: dict[str, str]) -> None:
    """Models whose inputs need more than a batch (issue 14): an embedding over 258 byte values
    (fixed length), and tokens of free length plus a scalar sample rate nothing bounds."""
    import keras
    import tensorflow as tf

    keras.utils.set_random_seed(0)
    ids = keras.Input((32,), dtype="int32", name="bytes")
    x = keras.layers.GlobalAveragePooling1D()(keras.layers.Embedding(258, 8)(ids))
    embed = keras.Model(ids, keras.layers.Dense(2)(x), name="byte_embedding")
    embed.save(folder / "byte_embedding.keras")
    (folder / "byte_embedding.tflite").write_bytes(tf.lite.TFLiteConverter.from_keras_model(embed).convert())
    tokens = keras.Input((None,), dtype="int32", name="tokens")
    rate = keras.Input((), dtype="int32", name="rate")
    x = keras.layers.GlobalAveragePooling1D()(keras.layers.Embedding(300, 4)(tokens))
    y = keras.layers.Add()([x, keras.layers.Dense(4)(keras.layers.Reshape((1,))(rate))])
    keras.Model([tokens, rate], y, name="tokens_rate").save(folder / "tokens_rate.keras")
    out.update(embed_keras=str(folder / "byte_embedding.keras"), embed_tflite=str(folder / "byte_embedding.tflite"),
               tokens_rate_keras=str(folder / "tokens_rate.keras"))


def _build_sklearn(folder: Path, out: dict[str, str]) -> None:
    import joblib
    import skops.io as sio
    from sklearn.datasets import load_digits, load_iris
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    X, y = load_iris(return_X_y=True)
    iris = make_pipeline(StandardScaler(), LogisticRegression(max_iter=500)).fit(X, y)
    sio.dump(iris, folder / "iris.skops")
    joblib.dump(iris, folder / "iris.joblib")
    joblib.dump(iris, folder / "iris_zlib.joblib", compress=3)
    for method in ("gzip", "bz2", "xz", "lzma"):
        joblib.dump(iris, folder / f"iris_{method}.joblib", compress=(method, 3))
        out[f"joblib_{method}"] = str(folder / f"iris_{method}.joblib")
    Xd, yd = load_digits(return_X_y=True)
    forest = make_pipeline(
        StandardScaler(), RandomForestClassifier(n_estimators=5, max_depth=4, random_state=0)
    )
    forest.fit(Xd, yd)
    sio.dump(forest, folder / "digits_forest.skops")
    out.update(
        skops=str(folder / "iris.skops"),
        joblib=str(folder / "iris.joblib"),
        joblib_zlib=str(folder / "iris_zlib.joblib"),
        forest_skops=str(folder / "digits_forest.skops"),
    )


def _build_hostile_pickles(folder: Path, out: dict[str, str]) -> None:
    import pickle

    import joblib

    sentinel = folder / SENTINEL_NAME

    class Payload:
        def __reduce__(self) -> tuple[object, tuple[str]]:
            return (os.system, (f"touch {sentinel}",))

    (folder / "hostile.pkl").write_bytes(pickle.dumps({"model": Payload()}))
    joblib.dump({"model": Payload()}, folder / "hostile.joblib", compress=("gzip", 3))
    out.update(
        hostile_pkl=str(folder / "hostile.pkl"),
        hostile_joblib=str(folder / "hostile.joblib"),
        sentinel=str(sentinel),
    )


def main(folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    out: dict[str, str] = {}
    _build_hostile_pickles(folder, out)
    _build_sklearn(folder, out)
    _build_keras(folder, out)
    _build_inputs(folder, out)
    _build_keras2_slots(folder, out)
    _build_pair(folder, out)
    (folder / "index.json").write_text(json.dumps(out))


if __name__ == "__main__":
    main(Path(sys.argv[1]))
