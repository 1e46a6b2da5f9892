"""check --suggest without measuring: which variants a target gets, the accuracy arithmetic, the
guard, and the "what would fit" section in every reporter (hand-built results)."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest

import reportdata as rd
from mlfit.advise.child import agreement
from mlfit.advise.engine import agrees
from mlfit.advise.variants import Kind, plan_variants
from mlfit.api import resolve_targets
from mlfit.catalog.schema import Runtime
from mlfit.records import Agreement, Suggestion, SuggestSearch, VariantCheck
from mlfit.report.compact import render_compact
from mlfit.report.html import render_html
from mlfit.report.markdown import render_markdown
from mlfit.report.suggestions import text_lines
from mlfit.result import Report


def test_cpu_target_gets_threads_then_int8_cheapest_first() -> None:
    edge = resolve_targets(["edge"])[0]  # 4 cores, 4 threads, batch 1
    kinds = [(v.kind, v.threads) for v in plan_variants(Runtime.ONNXRUNTIME, edge, False)]
    assert kinds == [(Kind.THREADS, 1), (Kind.THREADS, 2), (Kind.THREADS, 3), (Kind.INT8_DYNAMIC, None)]
    with_data = plan_variants(Runtime.ONNXRUNTIME, edge, True)
    assert [v.kind for v in with_data][-2:] == [Kind.INT8_DYNAMIC, Kind.INT8_STATIC]


def test_gpu_target_gets_batches_and_fp16_not_threads() -> None:
    gpu = resolve_targets(["gpu-server"])[0]
    gpu = replace(gpu, profile=gpu.profile.model_copy(update={"batch_size": 8}))
    labels = [v.label for v in plan_variants(Runtime.ONNXRUNTIME, gpu, False)]
    assert labels == ["batch=4", "batch=2", "batch=1", "fp16"]


def test_keras_model_gets_tflite_builds_for_a_tflite_target() -> None:
    edge = resolve_targets(["edge"])[0]  # runtimes: onnxruntime, tflite
    labels = [v.label for v in plan_variants(Runtime.TENSORFLOW, edge, False)]
    # edge has no TensorFlow: no thread count makes the Keras file run there, only a build does
    assert labels == ["tflite-float", "tflite-int8"]
    converted = [v.label for v in plan_variants(Runtime.TENSORFLOW, edge, False, convert=True)]
    assert converted[:3] == ["threads=1", "threads=2", "threads=3"] and converted[-1] == "tflite-int8"


def test_agreement_top1_for_classifiers_cosine_for_others() -> None:
    logits = [[np.array([[1.0, 2.0, 3.0], [3.0, 2.0, 1.0]], np.float32)]]
    flipped = [[np.array([[1.0, 2.0, 3.0], [1.0, 2.0, 3.0]], np.float32)]]
    same = agreement(logits, logits)
    assert same["top1"] == 1.0 and same["max_abs"] == 0.0 and same["cosine"] == pytest.approx(1.0)
    half = agreement(logits, flipped)
    assert half["top1"] == 0.5 and half["max_abs"] == pytest.approx(2.0)
    hidden = [[np.ones((1, 4, 8), np.float32)]]
    other = agreement(hidden, [[np.ones((1, 4, 8), np.float32) * 1.01]])
    assert other["top1"] is None and other["cosine"] == pytest.approx(1.0)


def test_guard_uses_top1_when_there_is_one() -> None:
    close = Agreement(inputs=16, source="x", max_abs=0.1, max_rel=0.01, cosine=0.999, top1=0.5)
    assert not agrees(close, 0.99)  # cosine alone would pass: the labels changed
    assert agrees(close.model_copy(update={"top1": None}), 0.99)
    assert agrees(Agreement(inputs=0, source="", max_abs=0, max_rel=0, cosine=1.0, same_model=True), 1.0)


def _suggested_report() -> Report:
    result = rd.run_result()
    target = result.targets[0]
    p95 = VariantCheck(metric="latency.p95", verdict="PASS", value=0.002, lower=0.001, upper=0.003, limit=0.004,
                       unit="s", margin=0.5, provenance="projected")
    agree = Agreement(inputs=16, source="16 generated inputs", max_abs=0.4, max_rel=0.05, cosine=0.999, top1=0.62)
    suggestions = [
        Suggestion(variant="threads=1", kind="threads", change="1 thread", status="does-not-fit", verdict="FAIL",
                   reason="still over budget: latency.p95"),
        Suggestion(variant="int8-dynamic", kind="int8-dynamic", change="int8", status="changes-outputs",
                   verdict="PASS", checks=[p95], agreement=agree, reason="fits but changes outputs: top-1 62%",
                   reproduce="python -c '...' | " + rd.HOSTILE),
        Suggestion(variant="fp16", kind="fp16", change="fp16", status="failed", reason=rd.HOSTILE),
        Suggestion(variant="tflite-int8", kind="tflite-int8", change="t", status="not-tried", reason="time"),
    ]
    search = SuggestSearch(seconds=12.0, budget_s=60.0, tried=3, not_tried=1, min_agreement=0.99,
                           inputs="16 generated inputs")
    target = target.model_copy(update={"suggestions": suggestions, "suggest_search": search})
    return rd.report(result.model_copy(update={"targets": [target, *result.targets[1:]]}))


def test_reporters_show_what_would_fit() -> None:
    doc = _suggested_report()
    lines = text_lines(doc.results[0].targets[0], 80)
    assert lines[0].startswith("What would fit on") and all(len(line) <= 80 for line in lines)
    rows = [line.split() for line in lines if line.startswith("  ") and not line.startswith("    ")]
    assert rows[0][:2] == ["fits*", "int8-dynamic"] and rows[1][:2] == ["no", "fit"]  # the best first
    assert any("not tried" in line and "tflite-int8" in line for line in lines)
    from rich.console import Console

    console = Console(width=80, record=True)
    console.print(render_compact(doc, 80))
    shown = console.export_text()
    assert "What would fit" in shown and all(len(line) <= 80 for line in shown.splitlines())
    md = render_markdown(doc)
    assert "| int8-dynamic | fits* |" in md and "<script>" not in md
    html = render_html(doc)
    assert "What would fit" in html and "<script>alert" not in html
    back = json.loads(doc.model_dump_json())
    assert back["results"][0]["targets"][0]["suggestions"][1]["agreement"]["top1"] == 0.62
