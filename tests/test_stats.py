import pytest

from mlfit.measure.stats import latency_stats, nearest_rank, quality_warnings


def test_nearest_rank_is_an_observed_sample() -> None:
    values = list(range(1, 101))
    assert nearest_rank(values, 0.5) == 50
    assert nearest_rank(values, 0.99) == 99
    assert nearest_rank([7], 0.99) == 7


def test_percentiles_need_mlperf_minimum_samples() -> None:
    stats = latency_stats([1_000_000] * 100)
    assert stats.p50 == pytest.approx(1e-3) and stats.p90 == pytest.approx(1e-3)
    assert stats.p95 is None and stats.p99 is None
    assert stats.insufficient == ["p95", "p99"]
    full = latency_stats(list(range(1000, 1000 + 700)))
    assert full.p99 is not None and not full.insufficient
    assert full.n == 700 and len(full.samples_ns) == 700


def test_summary_fields() -> None:
    stats = latency_stats([1_000_000, 2_000_000, 3_000_000])
    assert stats.min == pytest.approx(1e-3) and stats.max == pytest.approx(3e-3)
    assert stats.mean == pytest.approx(2e-3)
    assert stats.cv == pytest.approx(0.5)


def test_noise_and_load_warnings() -> None:
    noisy = latency_stats([1_000_000] * 50 + [5_000_000] * 20)
    assert any(w.startswith("unstable") for w in quality_warnings(noisy, 0.0, 2))
    quiet = latency_stats([1_000_000] * 70)
    assert quality_warnings(quiet, 0.1, 2) == []
    assert any(w.startswith("busy") for w in quality_warnings(quiet, 4.0, 2))
