"""Regression compare on hand-built results: statistics, verdict rules, host and pairing checks."""

from __future__ import annotations

import numpy as np
import pytest

from mlfit.compare import CompareOptions, Method, block_bootstrap, compare_reports, mann_whitney_p, row_statistics
from mlfit.errors import ConfigError
from mlfit.measure.stats import latency_stats
from mlfit.result import ChangeStatus, RunResult
from reportdata import failed_result, report, run_result, samples_ns
from reportdata import model as model_info


def edited(result: RunResult) -> RunResult:
    """The same model file name with other content: a new version of the model (what can regress).
    Two runs of the very same file, inputs and configuration never regress (issue 12)."""
    return result.model_copy(update={"model": result.model.model_copy(update={"sha256": "f" * 64})})


def statuses(comparison, metric_prefix: str = "") -> dict[str, ChangeStatus]:
    (model,) = comparison.models
    return {c.metric: c.status for c in model.changes if c.metric.startswith(metric_prefix)}


def test_row_statistics_match_the_reported_percentiles() -> None:
    raw = samples_ns(0.002, n=1500, seed=3)
    stats = latency_stats(raw)
    row = row_statistics(np.sort(np.asarray(raw, dtype=float) / 1e9)[None, :])
    for name in ("p50", "p90", "p95", "p99"):
        assert row[f"latency.{name}"][0] == pytest.approx(getattr(stats, name), rel=1e-12)
    assert row["latency.mean"][0] == pytest.approx(stats.mean)


def test_mann_whitney_matches_scipy() -> None:
    scipy_stats = pytest.importorskip("scipy.stats", reason="scipy comes with the sklearn extra")
    rng = np.random.default_rng(1)
    a = np.round(rng.normal(10, 1, 300), 1)  # rounded: ties on purpose
    b = np.round(rng.normal(10.2, 1, 250), 1)
    expected = scipy_stats.mannwhitneyu(a, b, alternative="two-sided", method="asymptotic").pvalue
    assert mann_whitney_p(a, b) == pytest.approx(expected, rel=1e-9)
    assert mann_whitney_p(a, a) == pytest.approx(1.0, abs=0.05)


def test_block_bootstrap_interval_covers_the_estimate_and_widens_with_drift() -> None:
    rng = np.random.default_rng(0)
    steady = rng.normal(1.0, 0.05, 2000)
    drifting = steady + np.repeat(rng.normal(0, 0.1, 20), 100)  # slow drift in blocks of 100 samples
    steady_boot = block_bootstrap(steady, 500, np.random.default_rng(1))["latency.p50"]
    drift_boot = block_bootstrap(drifting, 500, np.random.default_rng(1))["latency.p50"]
    assert np.quantile(steady_boot, 0.025) < np.median(steady) < np.quantile(steady_boot, 0.975)
    assert np.std(drift_boot) > 2 * np.std(steady_boot)


@pytest.mark.parametrize("seed", [1, 2, 3, 4, 5])
def test_same_distribution_is_never_a_regression(seed: int) -> None:
    base = report(run_result(0.004, seed=0))
    new = report(run_result(0.004, seed=seed))
    comparison = compare_reports(base, new, "base.json")
    assert not comparison.regressed, [c for c in comparison.models[0].changes if c.status is ChangeStatus.REGRESSION]
    assert comparison.same_host
    assert statuses(comparison)["latency.p50"] is ChangeStatus.UNCHANGED


def test_a_large_slowdown_is_a_regression_with_an_interval_above_the_effect() -> None:
    comparison = compare_reports(report(run_result(0.004)), report(edited(run_result(0.006, seed=9))), "base.json")
    assert comparison.regressed
    p50 = next(c for c in comparison.models[0].changes if c.metric == "latency.p50")
    assert p50.status is ChangeStatus.REGRESSION
    assert p50.change == pytest.approx(0.5, abs=0.05)
    assert p50.ci_low is not None and p50.ci_high is not None
    assert 0.05 < p50.ci_low < p50.change < p50.ci_high
    assert statuses(comparison)["throughput.single_stream"] is ChangeStatus.REGRESSION  # lower is worse


def test_a_speedup_is_an_improvement_not_a_regression() -> None:
    comparison = compare_reports(report(run_result(0.006)), report(edited(run_result(0.004, seed=9))), "base.json")
    assert not comparison.regressed
    assert statuses(comparison)["latency.p50"] is ChangeStatus.IMPROVEMENT


def test_a_change_below_the_minimum_effect_is_not_a_regression() -> None:
    comparison = compare_reports(report(run_result(0.004)), report(run_result(0.0041, seed=9)), "base.json")
    assert not comparison.regressed
    strict_effect = compare_reports(report(run_result(0.004)), report(edited(run_result(0.0041, seed=9))), "base.json",
                                    CompareOptions(min_effect=0.001, run_noise=0.0))
    assert strict_effect.regressed  # with no noise allowance and a tiny effect, 2.5% is real


def test_run_to_run_noise_keeps_a_machine_step_from_being_a_regression() -> None:
    """A 7% step between two runs of one model (seen on a shared VM) is not proven at 5%."""
    base, new = report(run_result(0.004)), report(edited(run_result(0.00428, seed=9)))
    assert not compare_reports(base, new, "b").regressed
    assert compare_reports(base, new, "b", CompareOptions(run_noise=0.0)).regressed


def test_mann_whitney_method_reports_p_values() -> None:
    options = CompareOptions(method=Method.MANN_WHITNEY)
    slow = compare_reports(report(run_result(0.004)), report(edited(run_result(0.006, seed=9))), "b", options)
    same = compare_reports(report(run_result(0.004)), report(run_result(0.004, seed=9)), "b", options)
    assert slow.regressed and not same.regressed
    p50 = next(c for c in slow.models[0].changes if c.metric == "latency.p50")
    assert p50.p_value is not None and p50.p_value < 1e-6 and "Mann-Whitney" in p50.method


def test_noisy_tail_alone_cannot_establish_a_regression() -> None:
    quiet = samples_ns(0.004, n=2000, seed=1)
    spiky = list(quiet)
    for i in range(0, 2000, 15):  # a busy neighbour: same median, fat tail
        spiky[i] = int(spiky[i] * 6)
    base = report(run_result(raw=quiet))
    new = report(run_result(raw=spiky, unstable=True))
    comparison = compare_reports(base, new, "b")
    got = statuses(comparison, "latency.")
    assert got["latency.p50"] is ChangeStatus.UNCHANGED
    assert got["latency.mean"] is ChangeStatus.INCONCLUSIVE
    assert not comparison.regressed
    assert any("noisy" in w for w in comparison.warnings)


def test_memory_growth_beyond_effect_and_floor_is_a_regression() -> None:
    base = report(run_result(peak=120 * 2**20))
    grown = compare_reports(base, report(edited(run_result(peak=150 * 2**20))), "b")
    same = compare_reports(base, report(run_result(peak=120 * 2**20 + 300_000)), "b")
    assert statuses(grown)["memory.peak"] is ChangeStatus.REGRESSION
    assert statuses(same)["memory.peak"] is ChangeStatus.UNCHANGED
    assert statuses(grown)["cold_start"] is ChangeStatus.NOT_TESTED


def test_different_hosts_warn_or_refuse_under_strict() -> None:
    base = report(run_result(fingerprint="aaaaaaaaaaaaaaaa"))
    new = report(run_result(fingerprint="bbbbbbbbbbbbbbbb", seed=2))
    comparison = compare_reports(base, new, "b")
    assert not comparison.same_host
    assert any("different machines" in w for w in comparison.warnings)
    with pytest.raises(ConfigError, match=r"different machines.*--strict"):
        compare_reports(base, new, "b", CompareOptions(strict=True))


def test_models_are_paired_by_file_name_and_failures_are_skipped_with_a_warning() -> None:
    base = report(run_result(0.004, path="/a/one.onnx"), run_result(0.002, path="/a/two.onnx"))
    new = report(run_result(0.002, path="/b/two.onnx", seed=4), failed_result("/b/one.onnx"),
                 run_result(0.001, path="/b/three.onnx"))
    comparison = compare_reports(base, new, "b")
    assert [m.model for m in comparison.models] == ["/b/two.onnx"]
    assert not comparison.regressed
    assert any("three.onnx" in w and "no run of this model" in w for w in comparison.warnings)
    assert any("one.onnx" in w and "new run failed" in w for w in comparison.warnings)


def test_nothing_to_compare_is_a_usage_error() -> None:
    with pytest.raises(ConfigError, match="nothing to compare"):
        compare_reports(report(run_result()), report(failed_result()), "b")


@pytest.mark.parametrize("kwargs", [{"min_effect": -0.1}, {"confidence": 1.0}, {"resamples": 10},
                                    {"run_noise": 2.0}])
def test_bad_options_are_refused(kwargs: dict[str, float]) -> None:
    with pytest.raises(ConfigError):
        CompareOptions(**kwargs)  # type: ignore[arg-type]


def test_the_same_file_measured_twice_never_regresses() -> None:
    """A 50% slower second run of the same file, inputs and configuration: the host's doing."""
    comparison = compare_reports(report(run_result(0.004)), report(run_result(0.006, seed=9)), "b")
    assert not comparison.regressed
    p50 = next(c for c in comparison.models[0].changes if c.metric == "latency.p50")
    assert p50.status is ChangeStatus.INCONCLUSIVE and "the host's, not the model's" in p50.reason
    assert any("only the host differs" in n for n in comparison.models[0].notes)


def test_runs_that_are_not_comparable_are_refused_with_the_reason() -> None:
    base = run_result(0.004)
    other_input = base.model_copy(update={"model": model_info(shape=(2, 3, 64, 64))})
    with pytest.raises(ConfigError, match=r"not comparable.*different inputs"):
        compare_reports(report(base), report(other_input), "b")
    assert base.measurement is not None
    threads = base.model_copy(update={"measurement": base.measurement.model_copy(update={"threads": 4})})
    with pytest.raises(ConfigError, match=r"not comparable.*thread count differs"):
        compare_reports(report(base), report(threads), "b")
    # another file may take other inputs: that is the change a compare is for
    compare_reports(report(base), report(edited(other_input)), "b")


def _with_cost(result: RunResult, low_us: float, halves: tuple[float, float], reference: float) -> RunResult:
    """A run with the contention-proof figures: a single-thread node profile's fast fifth and the
    reference kernel's rate (what a worker records since result schema 2)."""
    from mlfit.records import NodeProfile
    from mlfit.result import Contention, ReferenceKernel

    assert result.measurement is not None
    profile = NodeProfile.model_validate(
        {"by_threads": {"1": {"nodes_us": low_us * 1.2, "nodes_us_low": low_us, "overhead_us_low": 0.0,
                              "nodes_us_low_halves": list(halves), "node_us": {}, "node_us_low": {}}},
         "nodes": {}})
    contention = Contention(reference=ReferenceKernel(name="gemm", flops=1.0, flops_per_s=reference))
    return result.model_copy(update={"node_profile": profile, "measurement": result.measurement.model_copy(
        update={"contention": contention})})


def test_uncontended_cost_carried_by_the_reference_kernel_judges_the_change() -> None:
    base = _with_cost(run_result(0.004), 2000.0, (1990.0, 2010.0), 100e9)
    # the new version ran on a host twice as slow (its reference kernel too): wall p50 +50%, not the model
    slowed_host = _with_cost(edited(run_result(0.006, seed=9)), 4000.0, (3980.0, 4020.0), 50e9)
    comparison = compare_reports(report(base), report(slowed_host), "b")
    got = statuses(comparison)
    assert got["cost.uncontended"] is ChangeStatus.UNCHANGED
    assert got["latency.p50"] is ChangeStatus.INCONCLUSIVE and not comparison.regressed
    cost = next(c for c in comparison.models[0].changes if c.metric == "cost.uncontended")
    assert "reference kernel" in cost.method and cost.new == 2000.0 / 1e6
    # the same host speed and twice the cost: a regression, and the wall figures may say so too
    slower_model = _with_cost(edited(run_result(0.008, seed=9)), 4000.0, (3980.0, 4020.0), 100e9)
    comparison = compare_reports(report(base), report(slower_model), "b")
    assert statuses(comparison)["cost.uncontended"] is ChangeStatus.REGRESSION and comparison.regressed
    assert statuses(comparison)["latency.p50"] is ChangeStatus.REGRESSION


def test_the_runs_own_noise_keeps_a_small_cost_change_inconclusive() -> None:
    base = _with_cost(run_result(0.004), 2000.0, (1800.0, 2200.0), 100e9)  # halves 10% apart
    new = _with_cost(edited(run_result(0.004, seed=9)), 2200.0, (2000.0, 2400.0), 100e9)  # +10%
    cost = next(c for c in compare_reports(report(base), report(new), "b").models[0].changes
                if c.metric == "cost.uncontended")
    assert cost.status is ChangeStatus.INCONCLUSIVE and "runs' own noise" in cost.reason
