"""The HTML report as a sign-off document (issue 14): per-op costs from the node profile and the
projection, latency shown per target against its own budget (never the host's samples against a
target's budget), legible timeline labels, notes under the target they belong to."""

from __future__ import annotations

import html
import re

from mlfit.errors import printable
from mlfit.records import NodeProfile, ProjectionSummary
from mlfit.report import svgkit
from mlfit.report.html import render_html
from mlfit.result import RunResult
from reportdata import RICH_EXTRA, report, run_result

NODE_PROFILE = {
    "runtime_version": "1.20.0",
    "nodes": {"conv_1": {"op": "Conv"}, "conv_2": {"op": "Conv"}, "gemm_9": {"op": "Gemm"}, "relu_3": {"op": "Relu"}},
    "by_threads": {
        "1": {"node_us_low": {"conv_1": 900.0, "conv_2": 700.0, "gemm_9": 300.0, "relu_3": 100.0}},
        "2": {"node_us_low": {"conv_1": 500.0, "conv_2": 400.0, "gemm_9": 200.0, "relu_3": 100.0}},
    },
}


def profiled(result: RunResult) -> RunResult:
    """The result as a real onnxruntime run leaves it: a node profile and per-target projections."""
    targets = []
    for i, target in enumerate(result.targets):
        scale = 10.0 * (i + 1)
        projection = {
            "method": "device model",
            "top_ops": [{"op": "Conv", "seconds": 0.0009 * scale, "share": 0.75},
                        {"op": "Gemm", "seconds": 0.0002 * scale, "share": 0.2}],
            "top_nodes": [{"name": "conv_1", "op": "Conv", "seconds": 0.0005 * scale, "share": 0.4}],
        }
        targets.append(target.model_copy(update={"projection": ProjectionSummary.model_validate(projection),
                                                 "notes": [f"note of {target.target} #1"]}))
    return result.model_copy(update={"node_profile": NodeProfile.model_validate(NODE_PROFILE), "targets": targets})


def test_per_op_costs_come_from_the_node_profile_and_each_targets_projection() -> None:
    result = profiled(run_result())
    text = render_html(report(result))
    assert "ops are counted, not costed" not in text
    section = text.split("<h3>Per-op costs</h3>", 1)[1].split("<h3>", 1)[0]
    # host: measured at the run's 2 threads, 0.9 ms of 1.2 ms for Conv
    assert "this host: measured, 2 thread(s)" in section and "900.0 µs (75%)" in section
    assert "edge: projected" in section and section.count(": projected</th>") == len(result.targets)
    for i in range(len(result.targets)):
        assert f"{0.0009 * 10.0 * (i + 1) * 1e3:.2f} ms (75%)" in section  # Conv's projected time and share
    assert "Costliest ops on edge (projected share)" in text and "Costliest nodes on edge (projected)" in text


def test_without_a_node_profile_ops_are_counted_and_it_says_why() -> None:
    text = render_html(report(run_result(analysis={"ops": {"Conv": 3, "Relu": 2}})))
    assert "Op histogram (static, from the model file)" in text and "no node profile" in text


def test_host_samples_are_never_drawn_against_a_targets_budget() -> None:
    result = run_result()
    text = render_html(report(result))
    histogram = next(s for s in re.findall(r"<svg.*?</svg>", text, re.S) if "Latency histogram" in s)
    cdf = next(s for s in re.findall(r"<svg.*?</svg>", text, re.S) if "Latency CDF" in s)
    assert "this host, measured" in histogram and "this host, measured" in cdf
    for chart in (histogram, cdf):
        assert not any(t.target in chart for t in result.targets)  # no target, no target's budget
    lanes = next(s for s in re.findall(r"<svg.*?</svg>", text, re.S) if "beside each target" in s)
    latency_checks = [(t, c) for t in result.targets for c in t.checks if c.metric.startswith("latency.")]
    assert lanes.count("≤ ") >= sum(1 for _, c in latency_checks if c.limit)  # each budget drawn in its lane
    assert "projected" in lanes and "this host" in lanes and "measured" in lanes


def test_notes_are_grouped_under_their_target() -> None:
    result = profiled(run_result())
    text = render_html(report(result))
    blocks = text.split("<h4>Notes for ")[1:]
    assert len(blocks) == len(result.targets)
    for target, block in zip(result.targets, blocks, strict=True):
        items = block.split("</ul>", 1)[0]
        shown = html.escape(printable(target.target, keep_lines=True))  # control characters shown as '?'
        assert items.count("<li>") == 1 and f"note of {shown} #1" in items


def test_timeline_phase_labels_never_overprint() -> None:
    phases = [("start", 1.675), ("import", 1.698), ("load", 1.83), ("inputs", 2.18), ("first inference", 2.27),
              ("warmup", 2.31), ("measure", 2.65), ("profile", 5.86), ("done", 8.41)]
    xs = [150 + 586 * t / 8.6 for _, t in phases]
    placed = svgkit._label_rows([(name, x) for (name, _), x in zip(phases, xs, strict=True)], 9)
    spans: dict[int, list[tuple[float, float]]] = {}
    for (name, _), x, (row, before) in zip(phases, xs, placed, strict=True):
        width = svgkit._text_width(name, 9)
        start = x - 3 - width if before else x + 3
        assert start >= 0 and start + width <= svgkit.WIDTH  # inside the chart
        for a, b in spans.get(row, []):
            assert start >= b or start + width <= a, (name, row)
        spans.setdefault(row, []).append((start, start + width))
    text = render_html(report(run_result(extra=RICH_EXTRA)))
    assert "Memory over time" in text and "first inference" in text


def test_a_narrow_latency_axis_still_has_labelled_ticks() -> None:
    """A quiet run (5.4 to 6.7 ms) with no budget on the host histogram used to get no tick at all."""
    ticks = svgkit.Scale(5.4e-3, 6.7e-3, 0, 100, log=True).ticks()
    assert len(ticks) >= 2 and all(5.4e-3 <= t <= 6.7e-3 for t in ticks)
    assert svgkit.Scale(1e-4, 1.0, 0, 100, log=True).ticks()[:2] == [1e-4, 1e-3]  # wide: decades, as before
