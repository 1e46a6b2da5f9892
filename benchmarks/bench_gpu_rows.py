"""Item 9, "GPU targets, the roofline users get": every GPU row of device_truth.yaml projected by the
method `mlfit check` really uses on a GPU target without a GPU here (mlfit.analysis.project.gpu's
roofline), not by the fitted device model the rest of item 9 validates.

Each row's zoo model (the same builders and static walk as bench_devices.py) is projected on the
row's hardware file's accelerator, at the row's batch (MLPerf Offline: 1024) and precision: the
fp32 zoo file is given the row's element size (bytes scaled by 2/4 for fp16, 1/4 for int8) and that
precision's tensor-core peak, as an fp16 or int8 ONNX file of the same network would be. The
roofline has no fitted constant, so every row is held out from it; the only table-derived figure
it carries (the 40% compute efficiency of the MLPerf rows, documented) is judged here by
leave-one-row-out (`efficiency_loo`).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import benchlib as bl

GPU_RUNTIMES = ("tensorrt", "onnxruntime-cuda")
PROVIDER = {"tensorrt": "TensorrtExecutionProvider", "onnxruntime-cuda": "CUDAExecutionProvider"}
GPU_STATIC_VERSION = 1
ELEMENT = {"fp32": 4, "fp16": 2, "int8": 1}
DTYPE = {"fp32": "float32", "fp16": "float16", "int8": "int8"}


def gpu_static(model: str, work: Path) -> dict[str, Any]:
    """The zoo model's static walk with what the roofline reads (nodes, inputs, outputs), cached."""
    import bench_devices as bd

    from mlfit.analysis.graph import analyze_onnx

    cache = work / "devices" / f"{model}.gpu-static-{GPU_STATIC_VERSION}.json"
    if cache.exists():
        return dict(json.loads(cache.read_text()))
    onnx_path = work / "devices" / f"{model}.onnx"
    if not onnx_path.exists():
        bd._zoo().save(bd.BUILDERS[model](), onnx_path)
    static = analyze_onnx(onnx_path)
    kept = {k: static[k] for k in ("nodes", "inputs", "outputs", "parameter_bytes") if k in static}
    cache.write_text(json.dumps(kept))
    return kept


def at_precision(static: dict[str, Any], precision: str) -> dict[str, Any]:
    """The fp32 zoo walk as an ``precision`` file of the same network: every tensor's bytes scaled by
    the element size, and the parameter bytes in that dtype (so the roofline takes its peak)."""
    scale = ELEMENT[precision] / 4
    nodes = [{**n, **{k: float(n[k]) * scale for k in ("bytes_read", "bytes_written", "param_bytes")}}
             for n in static["nodes"]]
    total = sum(float(v) for v in (static.get("parameter_bytes") or {}).values()) * scale
    return {**static, "nodes": nodes, "parameter_bytes": {DTYPE[precision]: total}}


def gpu_rows(truth: dict[str, Any]) -> list[dict[str, Any]]:
    import bench_devices as bd

    return [r for r in truth["rows"] if r["runtime"] in GPU_RUNTIMES and r["model"] in bd.BUILDERS]


def copy_seconds(row: dict[str, Any], work: Path) -> float:
    """The centre's input/output copy over the host link, per sample (the roofline runs it in series
    with the kernels)."""
    from mlfit.analysis.project import gpu
    from mlfit.catalog.loader import resolve_hardware

    ref = str(row["device"])
    hw = resolve_hardware(str(bl.HERE.parent / ref) if ref.endswith(".yaml") else ref)
    acc = next(a for a in hw.accelerators if a.kind == "gpu")
    static = gpu_static(str(row["model"]), work)
    io = sum(gpu._io_bytes(t) for t in [*static.get("inputs", []), *static.get("outputs", [])])
    return io / (acc.host_link_bandwidth * gpu._GPU["bandwidth_eff"][1])


def project_row(row: dict[str, Any], work: Path, provider: str | None = None,
                efficiency: float | None = None) -> tuple[float, float, float]:
    """Seconds per sample (centre, fastest, slowest) the roofline gives the row's network on the row's
    device at its batch and precision. ``provider``: the execution provider the target names (the
    row's runtime's by default); ``efficiency``: a centre compute efficiency in place of the roofline's."""
    import bench_devices as bd

    from mlfit.analysis.project import gpu
    from mlfit.catalog.loader import resolve_hardware

    ref = str(row["device"])
    hw = resolve_hardware(str(bl.HERE.parent / ref) if ref.endswith(".yaml") else ref)
    acc = next(a for a in hw.accelerators if a.kind == "gpu")
    batch = bd.OFFLINE_BATCH if row["batch"] == "offline" else int(row["batch"])
    static = at_precision(gpu_static(str(row["model"]), work), str(row["precision"]))
    kwargs: dict[str, Any] = {"provider": provider or PROVIDER[str(row["runtime"])]}
    if efficiency is not None:
        kwargs["compute_eff"] = efficiency
    band, _ = gpu.gpu_roofline(static, acc, batch, **kwargs)
    return band.value / batch, band.lower / batch, band.upper / batch


def section(truth: dict[str, Any], work: Path) -> tuple[str, list[bl.Row]]:
    """The markdown of the section and its summary rows."""
    import bench_devices as bd

    rows = gpu_rows(truth)
    lines: list[list[object]] = []
    scores: dict[str, list[tuple[float, bool, float]]] = {"fitted": [], "all": [], "b1": [], "unfused": []}
    for row in rows:
        t = bd.observed_seconds(row)
        mid, lo, hi = project_row(row, work)
        plain = project_row(row, work, provider="CUDAExecutionProvider")
        inside = lo <= t <= hi
        score = (abs(mid / t - 1), inside, hi / lo)
        scores["all"].append(score)
        scores["unfused"].append((abs(plain[0] / t - 1), plain[1] <= t <= plain[2], plain[2] / plain[1]))
        scores["b1" if row.get("exclude") else "fitted"].append(score)
        a, b = sorted((bd.shown(row, lo), bd.shown(row, hi)))
        config = f"{row['runtime']} {row['precision']} b{row['batch']}"
        lines.append([row["id"], row["device"], config, f"{row['figure']:g} {row['unit']}",
                      f"{bd.shown(row, mid):.3g} [{a:.3g} - {b:.3g}]", f"{mid / t:.2f}",
                      "yes" if inside else "**no**", f"{(mid - copy_seconds(row, work)) / t:.2f}",
                      f"{plain[0] / t:.2f}",
                      "yes" if plain[1] <= t <= plain[2] else "**no**",
                      "batch 1 (excluded from the device fit)" if row.get("exclude") else "fitted there"])
    loo = efficiency_loo(truth, work)

    def summary(name: str) -> list[str]:
        v = scores[name]
        if not v:
            return [name, "0", "-", "-", "-"]
        return [name, str(len(v)), f"{bl.median([e for e, _, _ in v]):.0%}",
                f"{sum(1 for _, i, _ in v if i) / len(v):.0%}", f"{bl.median([w for _, _, w in v]):.2f}x"]

    runtimes = sorted({str(r["runtime"]) for r in rows})
    text = [
        "**GPU targets, the roofline users get** (`mlfit check M --target gpu-server` and every hardware file with "
        "a GPU, when this host has none: `mlfit.analysis.project.gpu`). The fitted device model above predicts "
        "the GPU rows, but a user's GPU target is projected by the roofline, which no row fits. Here every GPU row "
        f"of the table ({len(rows)}; runtimes: {', '.join(runtimes)}; no ONNX Runtime CUDA row exists yet) is "
        "projected by the roofline on the row's hardware file, batch (Offline: 1024) and precision (the fp32 zoo "
        "file given the row's element size and that precision's tensor-core peak). Ratio: projected over "
        "published time per sample (> 1: pessimistic). 'As users get it': the profile's provider is the row's "
        "runtime's (TensorrtExecutionProvider for TensorRT rows: TensorRT's pointwise fusion); 'every node a "
        "kernel': the same row under CUDAExecutionProvider (every node but views a kernel with its own launch "
        "and memory pass), what the roofline did for every GPU target before 2026-12-08 and still does for "
        "a CUDA target. 'Without the copies': the centre less its input/output copy over the host link (the "
        "roofline runs it in series with the kernels; MLPerf's harness feeds preprocessed int8 images and "
        "overlaps copies with compute).",
        "",
        bl.table(["row", "device", "config", "published", "roofline [band]", "ratio", "inside",
                  "ratio without the copies", "every node a kernel: ratio", "inside", "row in the device fit"], lines),
        "",
        bl.table(["rows", "n", "median abs error", "inside band", "median band width"],
                 [["batched (rows in the device fit)", *summary("fitted")[1:]],
                  ["batch 1 (excluded from the device fit)", *summary("b1")[1:]], ["all", *summary("all")[1:]],
                  ["all, every node a kernel (before)", *summary("unfused")[1:]]]),
        "",
        loo[0],
    ]
    v = scores["all"]
    err = bl.median([e for e, _, _ in v])
    cov = sum(1 for _, i, _ in v if i) / len(v)
    u = scores["unfused"]
    before = (f"before, every node a kernel: |error| {bl.median([e for e, _, _ in u]):.0%}, "
              f"inside {sum(1 for _, i, _ in u if i) / len(u):.0%}")
    out = [bl.Row("9. GPU rows, the roofline users get", "-",
                  f"|error| {err:.0%}, inside {cov:.0%} of {len(v)} TensorRT rows ({before})", "-")]
    return "\n".join(text), out


def efficiency_loo(truth: dict[str, Any], work: Path) -> tuple[str, float]:
    """Leave-one-row-out and leave-one-source-out for the centre compute efficiency: each batched GPU
    row predicted with the efficiency that best fits the rows left (the geometric mean of their
    implied efficiencies: time scales as 1/efficiency on compute-bound rows), beside the roofline's
    own centre, which no row set."""
    import bench_devices as bd

    from mlfit.analysis.project.gpu import _GPU

    rows = [r for r in gpu_rows(truth) if not r.get("exclude")]
    seconds = [bd.observed_seconds(r) for r in rows]
    centre = [project_row(r, work)[0] for r in rows]
    implied = [_GPU["compute_eff"][1] * mid / t for mid, t in zip(centre, seconds, strict=True)]

    def held_out(keep: list[list[bool]]) -> float:
        errors = []
        for i, row in enumerate(rows):
            others = [e for e, k in zip(implied, keep[i], strict=True) if k]
            eff = math.exp(sum(math.log(e) for e in others) / len(others))
            errors.append(abs(project_row(row, work, efficiency=eff)[0] / seconds[i] - 1))
        return bl.median(errors)

    by_row = held_out([[j != i for j in range(len(rows))] for i in range(len(rows))])
    by_source = held_out([[r["source"] != row["source"] for r in rows] for row in rows])
    fixed = bl.median([abs(mid / t - 1) for mid, t in zip(centre, seconds, strict=True)])
    whole = math.exp(sum(math.log(e) for e in implied) / len(implied))
    n_sources = len({r["source"] for r in rows})
    text = (f"Compute efficiency, held out over the {len(rows)} batched GPU rows ({n_sources} sources): the rows' "
            f"implied centre efficiency (roofline centre x its efficiency over the published time) has geometric "
            f"mean {whole:.0%} (range {min(implied):.0%}-{max(implied):.0%}); each row predicted with the mean of the "
            f"other rows' has median |error| {by_row:.0%}, with the mean of the other sources' rows {by_source:.0%}, "
            f"against {fixed:.0%} with the roofline's own centre ({_GPU['compute_eff'][1]:.0%}, set by no row).")
    return text, whole
