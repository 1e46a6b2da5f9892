"""Item 8, peers: mlfit's figures beside the runtimes' own Python benchmarking paths.

    python benchmarks/bench_peers.py [--quick]

ONNX (the example CNN, batch 1): mlfit (`mlfit profile --threads T`) against
onnxruntime's own test tool shipped in the wheel (`python -m onnxruntime.tools.onnxruntime_test
MODEL N --symbolic_dims batch=1`, which prints the mean over N runs; it cannot set a
thread count, so onnxruntime picks its default, and its mean includes the first, cold
call) and against the bare InferenceSession loop.

TFLite (a small Keras CNN built and converted by make_tflite.py): mlfit (`mlfit profile
MODEL.tflite --threads T`, where this build supports it) against the interpreter loop a
user writes (bare_tflite.py: ai_edge_litert Interpreter.invoke timed with perf_counter_ns)
and against ai_edge_litert's own benchmark tool (`python -m
ai_edge_litert.tools.benchmark_litert_model`, the CompiledModel API; it rounds to 0.01 ms).

All in one run, interleaved, same thread count and sample count; medians and ratios. The
issue sets no goal here: this is a side-by-side comparison.
"""

from __future__ import annotations

import importlib.util
import json
import re
import sys
import tempfile
from pathlib import Path

import benchlib as bl

BARE_TFLITE = bl.HERE / "bare_tflite.py"
MAKE_TFLITE = bl.HERE / "make_tflite.py"
FALLBACK_SAMPLES = 800
PEER_SHORT = {"onnxruntime.tools.onnxruntime_test": "onnxruntime_test", "bare": "bare loop"}


def _json_line(text: str) -> dict[str, float]:
    for line in reversed(text.strip().splitlines()):
        if line.startswith("{"):
            return dict(json.loads(line))
    return {}


def _onnx(model: Path, threads: int, pairs: int) -> tuple[list[list[object]], list[str]]:
    got: dict[str, list[float]] = {
        "mlfit_mean": [],
        "mlfit_p50": [],
        "ort_test_mean": [],
        "bare_p50": [],
        "bare_mean": [],
    }
    notes = []
    for _ in range(pairs):
        a = bl.mlfit("profile", str(model), "--dim", "batch=1", "--threads", str(threads))
        if not a.ok:
            notes.append(f"- mlfit profile failed: {a.why()}")
            break
        n = int(a.latency["n"])
        got["mlfit_mean"].append(float(a.latency["mean"]))
        got["mlfit_p50"].append(float(a.latency["p50"]))
        tool = bl.run(
            [
                bl.PY,
                "-m",
                "onnxruntime.tools.onnxruntime_test",
                str(model),
                str(n),
                "--symbolic_dims",
                "batch=1",
            ]
        )
        found = re.search(r"avg latency: ([0-9.eE+-]+) ms", tool.stdout)
        if tool.rc != 0 or not found:
            notes.append(f"- onnxruntime_test failed: {tool.last_error_line()}")
        else:
            got["ort_test_mean"].append(float(found.group(1)) / 1e3)
        bare = bl.bare_onnxruntime(
            model,
            "--threads",
            str(threads),
            "--samples",
            str(n),
            "--warmup",
            "10",
            "--warmup-time",
            "0.3",
            "--dim",
            "batch=1",
        )
        if bare.ok:
            got["bare_p50"].append(float(bare.data["p50"]))
            got["bare_mean"].append(float(bare.data["mean"]))
    rows: list[list[object]] = []

    def add(label: str, mine: str, peer: str, how: str) -> None:
        if got[mine] and got[peer]:
            a, b = bl.median(got[mine]), bl.median(got[peer])
            rows.append([label, bl.fmt_time(a), bl.fmt_time(b), f"{a / b:.3f}", how])
        else:
            rows.append(
                [
                    label,
                    bl.fmt_time(bl.median(got[mine])) if got[mine] else "failed",
                    bl.fmt_time(bl.median(got[peer])) if got[peer] else "failed",
                    "-",
                    how,
                ]
            )

    add(
        "ONNX example CNN, mean",
        "mlfit_mean",
        "ort_test_mean",
        "onnxruntime.tools.onnxruntime_test (mean incl. first call, default threads)",
    )
    add(
        "ONNX example CNN, p50",
        "mlfit_p50",
        "bare_p50",
        f"bare InferenceSession.run loop, {threads} thread(s)",
    )
    add(
        "ONNX example CNN, mean",
        "mlfit_mean",
        "bare_mean",
        f"bare InferenceSession.run loop, {threads} thread(s)",
    )
    return rows, notes


def _tflite(work: Path, threads: int, pairs: int) -> tuple[list[list[object]], list[str]]:
    model = work / "peer.tflite"
    notes: list[str] = []
    if not model.exists():
        made = bl.run([bl.PY, str(MAKE_TFLITE), str(model)])
        if made.rc != 0 or not model.exists():
            return [], [f"- could not build the TFLite model: {made.last_error_line()}"]
    got: dict[str, list[float]] = {"mlfit": [], "interp": [], "tool": []}
    mlfit_error = ""
    for _ in range(pairs):
        n = FALLBACK_SAMPLES
        if not mlfit_error:
            a = bl.mlfit("profile", str(model), "--threads", str(threads))
            if a.ok:
                got["mlfit"].append(float(a.latency["p50"]))
                n = int(a.latency["n"])
            else:
                mlfit_error = a.why()
        interp = bl.run(
            [
                bl.PY,
                str(BARE_TFLITE),
                str(model),
                "--threads",
                str(threads),
                "--samples",
                str(n),
                "--warmup",
                "10",
                "--warmup-time",
                "0.3",
            ]
        )
        data = _json_line(interp.stdout)
        if interp.rc == 0 and data:
            got["interp"].append(float(data["p50"]))
        else:
            notes.append(f"- interpreter loop failed: {interp.last_error_line()}")
        with tempfile.TemporaryDirectory() as tmp:
            out = Path(tmp) / "litert.json"
            tool = bl.run(
                [
                    bl.PY,
                    "-m",
                    "ai_edge_litert.tools.benchmark_litert_model",
                    f"--model={model}",
                    f"--num_runs={n}",
                    "--warmup_runs=10",
                    f"--num_threads={threads}",
                    f"--result_json={out}",
                ]
            )
            if tool.rc == 0 and out.exists():
                got["tool"].append(float(json.loads(out.read_text())["latency"]["median_ms"]) / 1e3)
            else:
                notes.append(f"- benchmark_litert_model failed: {tool.last_error_line()}")
    rows: list[list[object]] = []
    interp = bl.median(got["interp"]) if got["interp"] else float("nan")
    tool_p50 = bl.median(got["tool"]) if got["tool"] else float("nan")
    if got["mlfit"]:
        mine = bl.median(got["mlfit"])
        rows.append(
            [
                "TFLite Keras CNN, p50",
                bl.fmt_time(mine),
                bl.fmt_time(interp),
                f"{mine / interp:.3f}",
                f"ai_edge_litert Interpreter.invoke loop, {threads} thread(s)",
            ]
        )
        rows.append(
            [
                "TFLite Keras CNN, p50",
                bl.fmt_time(mine),
                bl.fmt_time(tool_p50),
                f"{mine / tool_p50:.3f}",
                "ai_edge_litert.tools.benchmark_litert_model median (CompiledModel)",
            ]
        )
    else:
        why = f"not yet available in this build ({mlfit_error})"
        rows.append(
            [
                "TFLite Keras CNN, p50",
                why,
                bl.fmt_time(interp),
                "-",
                f"ai_edge_litert Interpreter.invoke loop, {threads} thread(s)",
            ]
        )
        rows.append(
            [
                "TFLite Keras CNN, p50",
                "not yet available",
                bl.fmt_time(tool_p50),
                f"{tool_p50 / interp:.3f} (tool / interpreter loop)",
                "ai_edge_litert.tools.benchmark_litert_model median (CompiledModel)",
            ]
        )
    return rows, notes


def body(work: Path, quick: bool) -> tuple[str, list[bl.Row]]:
    models = bl.build_models(work)
    threads = bl.bench_threads()
    pairs = 1 if quick else 3
    onnx_rows, onnx_notes = _onnx(models["example"], threads, pairs)
    tfl_rows, tfl_notes = _tflite(work, threads, pairs)
    rows = onnx_rows + tfl_rows
    has_torch = all(importlib.util.find_spec(m) is not None for m in ("torch", "transformers"))
    why_this_tool = (
        "onnxruntime's Python wheel ships `onnxruntime.tools.onnxruntime_test` (used here); its other Python "
        "path, `onnxruntime.transformers.benchmark_helper`, imports torch and transformers"
        + (" (installed here, but it is built for transformer models)" if has_torch else ", not installed here")
        + ", and `onnxruntime_perf_test` is a C++ tool that is not in the wheel."
    )
    text = [
        why_this_tool,
        "",
        f"{pairs} round(s), each runs mlfit then its peers with the same sample count; medians. Ratio = mlfit / peer.",
        "",
        bl.table(["model, figure", "mlfit", "peer's figure", "ratio", "peer"], rows),
        *onnx_notes,
        *tfl_notes,
    ]
    tflite_ok = any(
        r[0].startswith("TFLite") and r[1] != "not yet available" and not str(r[1]).startswith("not yet")
        for r in tfl_rows
    )
    summary = [
        bl.Row(
            "8. peers (ONNX)",
            "side by side, no goal",
            "; ".join(
                f"{r[0].split(', ')[1]}: mlfit/{PEER_SHORT.get(str(r[4]).split(' ')[0], 'peer')} {r[3]}"
                for r in onnx_rows
            )
            or "-",
            bl.met(None, "no goal"),
        ),
        bl.Row(
            "8. peers (TFLite)",
            "side by side, no goal",
            "mlfit figures present" if tflite_ok else "mlfit TFLite support not yet available",
            bl.met(None, "no goal"),
        ),
    ]
    return "\n".join(text), summary


def run(work: Path, quick: bool) -> bl.Section:
    return bl.timed_section(8, "Peers: the runtimes' own benchmarking paths", lambda: body(work, quick))


if __name__ == "__main__":
    sys.exit(bl.main_for(run, __doc__.splitlines()[0]))
