"""The format registry: every member has one entry, and what used to be written per format in
other modules (suffixes, the SavedModel folder test, the convert table) is derived from it."""

from __future__ import annotations

from pathlib import Path

from mlfit.catalog.schema import Runtime
from mlfit.formats import ModelFormat
from mlfit.formats.registry import (
    FORMATS,
    by_suffix,
    converters,
    folder_format,
    format_for_runtime,
    get,
    model_suffixes,
)


def test_every_member_has_one_entry() -> None:
    assert set(FORMATS) == set(ModelFormat)
    for fmt in ModelFormat:
        assert get(fmt).kind is fmt
        for suffix in get(fmt).suffixes:
            assert by_suffix(suffix.upper()) is fmt


def test_derived_tables_match_what_was_written_by_hand() -> None:
    assert model_suffixes() == (".onnx", ".keras", ".h5", ".hdf5", ".tflite", ".skops", ".pkl", ".pickle", ".joblib")
    assert converters() == {
        Runtime.SKLEARN: {Runtime.ONNXRUNTIME: ("skl2onnx", "skl2onnx")},
        Runtime.TENSORFLOW: {Runtime.ONNXRUNTIME: ("tf2onnx", "tf2onnx"),
                             Runtime.TFLITE: ("tensorflow", "the TFLite converter")},
        Runtime.TFLITE: {Runtime.ONNXRUNTIME: ("tf2onnx", "tf2onnx")},  # tf2onnx reads .tflite (issue 23)
    }
    assert format_for_runtime(Runtime.ONNXRUNTIME) is ModelFormat.ONNX
    assert format_for_runtime(Runtime.TFLITE) is ModelFormat.TFLITE


def test_folder_models_come_from_the_registry(tmp_path: Path) -> None:
    assert folder_format(tmp_path) is None
    (tmp_path / "saved_model.pbtxt").write_text("")
    assert folder_format(tmp_path) is ModelFormat.SAVEDMODEL
    policy = get(ModelFormat.SAVEDMODEL).copy_policy
    assert policy.tensor_data("variables/variables.data-00000-of-00001")
    assert not policy.tensor_data("saved_model.pb") and not policy.tensor_data("variables/variables.index")
    assert get(ModelFormat.ONNX).copy_policy.onnx_external
