import pytest

from mlfit.catalog import units


@pytest.mark.parametrize(("text", "seconds"), [("50 ms", 0.05), ("1.5 s", 1.5), ("800us", 0.0008), ("2 min", 120)])
def test_durations(text: str, seconds: float) -> None:
    assert units.parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize(("text", "n_bytes"), [("512 MiB", 512 * 2**20), ("2 GB", 2e9), ("64 kB", 64e3),
                                               ("1 GiB", 2**30)])
def test_sizes(text: str, n_bytes: float) -> None:
    assert units.parse_size(text) == pytest.approx(n_bytes)


def test_rates_bandwidth_flops_frequency() -> None:
    assert units.parse_rate("30/s") == 30
    assert units.parse_rate("600/min") == pytest.approx(10)
    assert units.parse_bandwidth("25.6 GB/s") == pytest.approx(25.6e9)
    assert units.parse_flops("1.2 TFLOPS") == pytest.approx(1.2e12)
    assert units.parse_frequency("1.8 GHz") == pytest.approx(1.8e9)


@pytest.mark.parametrize("bad", ["50 mss", "50", "fast", "-5 ms", "0 ms", "1e99 s", True, None, [1], "5 ms ms"])
def test_strict_rejections(bad: object) -> None:
    with pytest.raises(ValueError):
        units.parse_duration(bad)


def test_error_names_expected_form() -> None:
    with pytest.raises(ValueError, match="unknown duration unit 'mss'"):
        units.parse_duration("50 mss")
