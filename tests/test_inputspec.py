import pytest

from mlfit.errors import ConfigError
from mlfit.inputspec import parse_input_flags, resolve_shapes
from mlfit.result import TensorInfo

IMAGE = TensorInfo(name="image", dtype="float32", shape=["batch", 3, "height", "width"])
IDS = TensorInfo(name="input_ids", dtype="int64", shape=["batch", "seq"])
RATE = TensorInfo(name="sample_rate", dtype="int64", shape=[])


def test_parse_all_flags(tmp_path) -> None:
    spec = parse_input_flags(dims=["batch=1", "height = 320"], shapes=["image=1x3x224x224"],
                             values=["sample_rate=16000"], ranges=["input_ids=0:30000"])
    assert spec.dims == {"batch": 1, "height": 320}
    assert spec.shapes == {"image": [1, 3, 224, 224]}
    assert spec.values == {"sample_rate": 16000.0}
    assert spec.ranges == {"input_ids": (0.0, 30000.0)}


@pytest.mark.parametrize(("kwargs", "fragment"), [
    ({"dims": ["batch"]}, "expected NAME=VALUE"),
    ({"dims": ["batch=0"]}, "out of range"),
    ({"dims": ["batch=-1"]}, "not a whole number"),
    ({"shapes": ["image=1x3xAx4"]}, "not a whole number"),
    ({"ranges": ["ids=5:1"]}, "LOW must be below HIGH"),
    ({"ranges": ["ids=5"]}, "LOW:HIGH"),
    ({"values": ["rate=abc"]}, "not a number"),
    ({"data": ["nope.npz"]}, "does not exist"),
])
def test_bad_flags(kwargs: dict, fragment: str) -> None:
    with pytest.raises(ConfigError, match=fragment):
        parse_input_flags(**kwargs)


def test_unfilled_dims_stop_with_every_input_and_an_example() -> None:
    with pytest.raises(ConfigError) as info:
        resolve_shapes([IMAGE, IDS], parse_input_flags(), {})
    text = info.value.one_line()
    assert "image float32[batch, 3, height, width]" in text
    assert "input_ids int64[batch, seq]" in text
    assert "--dim batch=1" in text and "--dim height=N" in text


def test_dims_fill_everywhere_and_shapes_override() -> None:
    spec = parse_input_flags(dims=["batch=2", "seq=16", "height=8", "width=8"])
    assert resolve_shapes([IMAGE, IDS], spec, {}) == {"image": [2, 3, 8, 8], "input_ids": [2, 16]}
    spec = parse_input_flags(dims=["batch=1", "seq=4"], shapes=["image=1x3x32x32"])
    assert resolve_shapes([IMAGE, IDS], spec, {})["image"] == [1, 3, 32, 32]


@pytest.mark.parametrize(("kwargs", "fragment"), [
    ({"dims": ["colour=3"]}, "not a symbolic dim"),
    ({"shapes": ["image=1x3x32"]}, "rank 3 does not match"),
    ({"shapes": ["image=1x4x32x32"]}, "fixed at 3"),
    ({"shapes": ["nope=1"]}, "which the model does not have"),
])
def test_flags_that_do_not_match_the_model(kwargs: dict, fragment: str) -> None:
    with pytest.raises(ConfigError, match=fragment):
        resolve_shapes([IMAGE], parse_input_flags(**kwargs), {})


def test_scalar_input_needs_nothing() -> None:
    assert resolve_shapes([RATE], parse_input_flags(values=["sample_rate=16000"]), {}) == {"sample_rate": []}


def test_lenient_dims_for_several_models() -> None:
    fixed = TensorInfo(name="x", dtype="float32", shape=[1, 4])
    spec = parse_input_flags(dims=["batch=1"]).model_copy(update={"lenient_dims": True})
    assert resolve_shapes([fixed], spec, {}) == {"x": [1, 4]}
