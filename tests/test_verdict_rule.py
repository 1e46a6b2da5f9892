"""The verdict rule (issue 12): bounds decide, noise only widens them.

PASS when the conservative bound clears the limit, FAIL when the optimistic bound breaks it,
INCONCLUSIVE only when the band straddles it (or a bound is missing). Noise (an unstable
measurement) never decides by itself. A percentile below its MLPerf minimum sample count is
still decided by its order-statistic bounds; when they do not decide, the reason names the
``--max-time`` that would give it enough samples.
"""

from __future__ import annotations

import math

import pytest

from mlfit.api import resolve_targets
from mlfit.catalog.loader import Target
from mlfit.catalog.schema import Percentile
from mlfit.checks.engine import evaluate, max_time_for
from mlfit.checks.verdict import three_way
from mlfit.measure.stats import latency_stats
from mlfit.result import ColdStart, Measurement, MemoryPhases, ModelInfo, Throughput, Verdict

MODEL = ModelInfo(path="m.onnx", sha256="0" * 64, format="onnx", runtime="onnxruntime", size_bytes=1000)


@pytest.mark.parametrize(
    ("lower", "upper", "limit", "higher_is_better", "expected"),
    [
        # latency-like (lower is better)
        (10, 20, 30, False, Verdict.PASS),  # the whole band under the limit
        (10, 30, 30, False, Verdict.PASS),  # the conservative bound exactly at the limit
        (20, 40, 30, False, Verdict.INCONCLUSIVE),  # straddles
        (31, 40, 30, False, Verdict.FAIL),  # even the optimistic bound over
        (30, 40, 30, False, Verdict.INCONCLUSIVE),  # optimistic bound at the limit: not a FAIL
        (None, 20, 30, False, Verdict.PASS),  # no optimistic bound: the conservative one still decides
        (20, None, 30, False, Verdict.INCONCLUSIVE),  # no conservative bound: cannot PASS
        (31, None, 30, False, Verdict.FAIL),  # ... but can FAIL
        (None, None, 30, False, Verdict.INCONCLUSIVE),
        # throughput-like (higher is better): lower is the pessimistic bound
        (20, 40, 10, True, Verdict.PASS),
        (5, 40, 10, True, Verdict.INCONCLUSIVE),
        (2, 8, 10, True, Verdict.FAIL),
        (None, 8, 10, True, Verdict.FAIL),
        (None, 40, 10, True, Verdict.INCONCLUSIVE),
    ],
)
def test_three_way_table(lower: float | None, upper: float | None, limit: float, higher_is_better: bool,
                         expected: Verdict) -> None:
    assert three_way(lower, upper, limit, higher_is_better) is expected


def _measurement(samples_ns: list[int], unstable: bool = False) -> Measurement:
    memory = MemoryPhases(method="VmHWM", interpreter_bytes=10, runtime_baseline_bytes=20, load_peak_bytes=30,
                          inference_peak_bytes=40, peak_bytes=40)
    return Measurement(runtime="onnxruntime", runtime_version="1", threads=1, execution_provider="CPU",
                       cold_start=ColdStart(import_s=0.1, load_s=0.1, first_inference_s=0.01),
                       latency=latency_stats(samples_ns), memory=memory,
                       throughput=Throughput(single_stream_per_s=100.0),
                       warnings=["unstable: test"] if unstable else [], unstable=unstable)


def _target(budgets: dict[Percentile, float]) -> Target:
    base = resolve_targets(["edge"])[0]
    profile = base.profile.model_copy(
        update={"budgets": base.profile.budgets.model_copy(update={"latency": budgets, "cold_start": None})})
    return Target(profile, base.hardware, "test")


def _spread(n: int, low_ms: float, high_ms: float) -> list[int]:
    """n samples spread evenly between low and high (shuffled order does not matter to the rule)."""
    return [int((low_ms + (high_ms - low_ms) * i / max(1, n - 1)) * 1e6) for i in range(n)]


@pytest.mark.parametrize(
    ("case", "samples", "unstable", "percentile", "limit_s", "expected", "reason_has"),
    [
        ("steady, far under", _spread(700, 10, 11), False, Percentile.P95, 0.08, Verdict.PASS, ""),
        ("noisy, far under: noise does not veto", _spread(700, 5, 40), True, Percentile.P95, 0.08,
         Verdict.PASS, ""),
        ("noisy, straddling", _spread(700, 5, 40), True, Percentile.P95, 0.038, Verdict.INCONCLUSIVE,
         "straddles"),
        ("noisy, far over: noise does not rescue", _spread(700, 90, 150), True, Percentile.P95, 0.08,
         Verdict.FAIL, "optimistic bound"),
        # 100 samples: p95 needs 130, yet its order-statistic bounds exist (n >= 59) and decide
        ("few samples, bounds clear the limit", _spread(100, 10, 12), False, Percentile.P95, 0.08,
         Verdict.PASS, "decided by its bounds below the minimum sample count"),
        ("few samples, bounds break the limit", _spread(100, 515, 600), False, Percentile.P95, 0.1,
         Verdict.FAIL, "decided by its bounds below the minimum sample count"),
        # 100 samples: no 95% upper bound of p99 exists (needs n >= 299): cannot PASS, says --max-time
        ("few samples, no conservative bound", _spread(100, 10, 12), False, Percentile.P99, 0.08,
         Verdict.INCONCLUSIVE, "--max-time "),
        ("few samples, optimistic bound over", _spread(100, 515, 600), False, Percentile.P99, 0.1,
         Verdict.FAIL, "decided by its bounds"),
    ],
)
def test_latency_verdict_table(case: str, samples: list[int], unstable: bool, percentile: Percentile,
                               limit_s: float, expected: Verdict, reason_has: str) -> None:
    m = _measurement(samples, unstable)
    # Measured on the target itself: the samples are the target's, so the rule alone decides (a host
    # figure that nothing projected is never judged, whatever its bounds).
    report = evaluate(_target({percentile: limit_s}), MODEL, m, None, on_target=True)
    check = next(c for c in report.checks if c.metric == f"latency.{percentile.value}")
    assert check.verdict is expected, (case, check)
    assert reason_has in check.reason, (case, check.reason)
    assert "noisy run cannot pass" not in check.reason


def test_max_time_names_enough_time_for_the_samples() -> None:
    m = _measurement(_spread(100, 10, 12))  # mean 11 ms
    needed = max_time_for(m, Percentile.P99)
    assert needed >= 662 * 0.011  # enough for 662 samples at the measured mean ...
    assert needed <= math.ceil(662 * 0.011 * 1.2 * 10) / 10 + 1e-9  # ... with a fifth to spare, no more
    report = evaluate(_target({Percentile.P99: 0.08}), MODEL, m, None, on_target=True)
    check = next(c for c in report.checks if c.metric == "latency.p99")
    assert f"--max-time {needed:g}" in check.reason and "insufficient samples: 100 collected" in check.reason
