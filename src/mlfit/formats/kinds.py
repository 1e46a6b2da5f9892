"""The closed set of model formats mlfit recognises (what a result's ``model.format`` says).
What mlfit knows about each one lives in its module (``mlfit.formats.<name>``), found through
:mod:`mlfit.formats.registry`."""

from __future__ import annotations

from enum import Enum


class ModelFormat(str, Enum):
    ONNX = "onnx"
    SAVEDMODEL = "savedmodel"
    KERAS = "keras"
    H5 = "h5"
    TFLITE = "tflite"
    SKOPS = "skops"
    PICKLE = "pickle"  # .pkl, .joblib, and joblib files compressed with zlib/gzip/bz2/xz/lzma/lz4
