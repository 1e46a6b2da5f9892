"""Where mlfit keeps a hand-written piece instead of a library (docs/libraries.md), it must agree
with the library's answer."""

from __future__ import annotations

import numpy as np
import pytest

from mlfit.compare import mann_whitney_p


@pytest.mark.parametrize("shift", [0.0, 0.05, 0.3])
def test_mann_whitney_matches_scipy(shift: float) -> None:
    stats = pytest.importorskip("scipy.stats", reason="scipy is only a test oracle here")
    rng = np.random.default_rng(7)
    a = np.round(rng.lognormal(0.0, 0.3, 400), 2)  # rounded: many ties, as timer resolution gives
    b = np.round(rng.lognormal(shift, 0.3, 300), 2)
    expected = stats.mannwhitneyu(a, b, alternative="two-sided", method="asymptotic", use_continuity=True).pvalue
    assert mann_whitney_p(a, b) == pytest.approx(expected, rel=1e-9, abs=1e-12)


def test_junit_reports_read_back_with_junitparser(tmp_path) -> None:
    junitparser = pytest.importorskip("junitparser", reason="junitparser is in the dev extra")
    from mlfit.report.junit import render_junit
    from reportdata import failed_result, report, run_result

    path = tmp_path / "r.xml"
    data = render_junit(report(run_result(0.004), failed_result()))
    path.write_bytes(data if isinstance(data, bytes) else data.encode())
    xml = junitparser.JUnitXml.fromfile(str(path))
    cases = [case for suite in xml for case in suite]
    assert cases and all(case.name for case in cases)
