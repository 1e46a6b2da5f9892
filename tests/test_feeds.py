import numpy as np
import pytest

from mlfit.backends.feeds import build_feeds, data_shapes, load_data
from mlfit.errors import ConfigError
from mlfit.inputspec import parse_input_flags
from mlfit.result import TensorInfo

DTYPES = ["float32", "float16", "float64", "int8", "uint8", "int32", "int64", "bool"]


@pytest.mark.parametrize("dtype", DTYPES)
def test_every_dtype_builds_reproducibly(dtype: str) -> None:
    tensor = TensorInfo(name="x", dtype=dtype, shape=[2, 3])
    integer = dtype.startswith(("int", "uint"))
    spec = parse_input_flags(seed=7, ranges=["x=0:100"] if integer else None)
    first = build_feeds([tensor], {"x": [2, 3]}, spec, {})[0]["x"]
    again = build_feeds([tensor], {"x": [2, 3]}, spec, {})[0]["x"]
    assert first.dtype == np.dtype(dtype) and first.shape == (2, 3)
    np.testing.assert_array_equal(first, again)


def test_an_integer_input_never_gets_a_guessed_range() -> None:
    ids = TensorInfo(name="ids", dtype="int64", shape=[1, 8])
    with pytest.raises(ConfigError) as info:
        build_feeds([ids], {"ids": [1, 8]}, parse_input_flags(), {})
    assert "--range ids=LOW:HIGH" in info.value.one_line()
    derived = parse_input_flags().model_copy(update={"derived_ranges": {"ids": (0, 258)},
                                                     "range_sources": {"ids": "a 258-row table"}})
    feed = build_feeds([ids], {"ids": [1, 8]}, derived, {})[0]["ids"]
    assert feed.min() >= 0 and feed.max() < 258


def test_range_and_value() -> None:
    ids = TensorInfo(name="ids", dtype="int64", shape=[1, 1000])
    rate = TensorInfo(name="rate", dtype="int64", shape=[])
    spec = parse_input_flags(ranges=["ids=5:9"], values=["rate=16000"])
    feed = build_feeds([ids, rate], {"ids": [1, 1000], "rate": []}, spec, {})[0]
    assert feed["ids"].min() >= 5 and feed["ids"].max() < 9
    assert feed["rate"] == 16000


def test_real_samples_are_cycled_and_checked(tmp_path) -> None:
    x = TensorInfo(name="x", dtype="float32", shape=["batch", 4])
    np.savez(tmp_path / "d.npz", x=np.arange(12, dtype=np.float32).reshape(3, 1, 4))
    spec = parse_input_flags(data=[str(tmp_path / "d.npz")])
    data = load_data(spec)
    assert data_shapes([x], data) == {"x": (1, 4)}
    feeds = build_feeds([x], {"x": [1, 4]}, spec, data)
    assert len(feeds) == 3 and feeds[2]["x"][0, 0] == 8
    np.savez(tmp_path / "bad.npz", x=np.zeros((1, 4), dtype=np.float64))
    with pytest.raises(ConfigError, match="dtype float64, the model expects float32"):
        data_shapes([x], load_data(parse_input_flags(data=[str(tmp_path / "bad.npz")])))
    np.savez(tmp_path / "bad2.npz", x=np.zeros((1, 5), dtype=np.float32))
    with pytest.raises(ConfigError, match="dim 1 must be 4"):
        data_shapes([x], load_data(parse_input_flags(data=[str(tmp_path / "bad2.npz")])))
