"""Build a small Keras CNN with random weights and convert it to TFLite.

    python benchmarks/make_tflite.py OUT.tflite

Used by bench_peers.py; run in its own process because importing TensorFlow is slow and
heavy. The network is MobileNet-shaped (conv, depthwise and pointwise blocks) at 160x160 so
one inference takes a few milliseconds on a laptop core.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path


def build(out: Path) -> None:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import numpy as np
    import tensorflow as tf

    tf.keras.utils.set_random_seed(0)
    layers = tf.keras.layers
    inputs = tf.keras.Input(shape=(160, 160, 3), batch_size=1, name="image")
    x = layers.Conv2D(32, 3, strides=2, padding="same", activation="relu6")(inputs)
    for filters, stride in ((64, 1), (128, 2), (128, 1), (256, 2), (256, 1), (512, 2), (512, 1)):
        x = layers.DepthwiseConv2D(3, strides=stride, padding="same", activation="relu6")(x)
        x = layers.Conv2D(filters, 1, activation="relu6")(x)
    x = layers.GlobalAveragePooling2D()(x)
    outputs = layers.Dense(10, activation="softmax")(x)
    model = tf.keras.Model(inputs, outputs)
    model(np.zeros((1, 160, 160, 3), np.float32))
    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    blob = converter.convert()
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".tmp")
    tmp.write_bytes(blob)
    tmp.replace(out)


if __name__ == "__main__":
    build(Path(sys.argv[1]))
