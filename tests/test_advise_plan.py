"""check --suggest without measuring: which variants a target gets, the accuracy arithmetic, the
guard, and the "what would fit" section in every reporter (hand-built results)."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

import reportdata as rd
from mlfit.advise.child import agreement
from mlfit.advise.combos import plan_combos
from mlfit.advise.engine import agrees
from mlfit.advise.recipes import reproduce
from mlfit.advise.variants import Kind, Variant, parse_what_if, plan_variants
from mlfit.api import resolve_targets
from mlfit.catalog.schema import Runtime
from mlfit.errors import ConfigError
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


def test_what_if_sizes_come_after_settings_before_builds() -> None:
    edge = resolve_targets(["edge"])[0]
    what_if = parse_what_if(["dim=height:256,224", "dim=width:224"])
    assert what_if == (("height", (256, 224)), ("width", (224,)))
    labels = [v.label for v in plan_variants(Runtime.ONNXRUNTIME, edge, False, what_if=what_if)]
    assert labels == ["threads=1", "threads=2", "threads=3", "height=256", "height=224", "width=224", "int8-dynamic"]
    for bad in ("height:224", "dim=height", "dim=:224", "dim=height:2x", "dim=height:0", "shape=x:1"):
        with pytest.raises(ConfigError):
            parse_what_if([bad])
    with pytest.raises(ConfigError, match="twice"):
        parse_what_if(["dim=h:1", "dim=h:2"])


def _tried(variant: str, kind: str, status: str, p95: float) -> Suggestion:
    check = VariantCheck(metric="latency.p95", verdict="FAIL", value=p95, limit=0.010, margin=(0.010 - p95) / 0.010)
    return Suggestion(variant=variant, kind=kind, change="", status=status, checks=[check])


def test_combinations_predicted_to_fit_first_then_cheapest() -> None:
    original = [VariantCheck(metric="latency.p95", verdict="FAIL", value=0.020, limit=0.010, margin=-1.0)]
    threads1, threads2 = Variant(Kind.THREADS, "threads=1", "", threads=1), Variant(Kind.THREADS, "threads=2", "",
                                                                                     threads=2)
    small = Variant(Kind.DIM, "side=96", "", dims=(("side", 96),))
    int8 = Variant(Kind.INT8_DYNAMIC, "int8-dynamic", "")
    tried = [(threads1, _tried("threads=1", "threads", "does-not-fit", 0.030)),  # 1.5x slower
             (threads2, _tried("threads=2", "threads", "inconclusive", 0.016)),  # 0.8x
             (small, _tried("side=96", "dim", "inconclusive", 0.012)),  # 0.6x
             (int8, _tried("int8-dynamic", "int8-dynamic", "inconclusive", 0.014))]  # 0.7x
    labels = [v.label for v in plan_combos(tried, original)]
    # predicted: int8+side 0.42x (fits), threads=2+side 0.48x (fits), int8+threads=2 0.56x (no),
    # threads=1+side 0.9x and threads=1+int8 1.05x (no gain: not tried); the same group never pairs.
    assert labels == ["threads=2+side=96", "int8-dynamic+side=96", "int8-dynamic+threads=2",
                      "threads=1+side=96"], labels
    combo = plan_combos(tried, original)[1]
    assert combo.kind is Kind.COMBO and combo.file_kind is Kind.INT8_DYNAMIC and combo.dims == (("side", 96),)
    text = reproduce(Path("m.onnx"), "edge", plan_combos(tried, original)[2])
    assert "quantize_dynamic" in text and "`threads: 2`" in text and "m.int8-dynamic+threads-2.onnx" in text
    assert plan_combos(tried, [original[0].model_copy(update={"verdict": "PASS"})]) == []


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


def test_inconclusive_reason_gives_the_centre_relative_to_the_original() -> None:
    from mlfit.advise.engine import _relative

    original = rd.run_result().targets[1]  # latency.p99 INCONCLUSIVE at 3x the host's p99
    p99 = next(c for c in original.checks if c.metric == "latency.p99")
    assert p99.value is not None
    check = VariantCheck(metric="latency.p99", verdict="INCONCLUSIVE", value=p99.value * 0.42, limit=p99.limit)
    variant = Suggestion(variant="int8-dynamic", kind="int8-dynamic", change="", status="inconclusive",
                         checks=[check], reason="its band straddles the budget: latency.p99")
    assert _relative(variant, original).reason.endswith("latency.p99; centre 0.42x the original's")
    fails = variant.model_copy(update={"status": "does-not-fit"})
    assert _relative(fails, original) == fails
