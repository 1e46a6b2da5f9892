"""How far is a projection from the truth? Measured where ground truth can be had here.

The target is this host limited to one core and one thread, described by a hardware file
built from this host's calibration (as `mlfit calibrate --emit-hardware` writes it, with
cores: 1). For each model:

1. projected: mlfit measures at 2 threads, profiles the nodes at 2 threads only (so the
   1-thread figure must come from the projection's thread scaling, not a measurement), and
   projects p50 onto the 1-core target;
2. measured: the same model measured by mlfit at 1 thread with the worker pinned to one
   core (os.sched_setaffinity, inherited by the worker process).

Error = projected p50 / measured p50 - 1. Goal: within 15%. Writes a markdown table.

    PYTHONPATH=src python benchmarks/projection_accuracy.py [--out benchmarks/projection_accuracy.md]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))
# The measuring worker is a subprocess: it must import this tree's mlfit too.
os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO / "src"), os.environ.get("PYTHONPATH")) if p)

from mlfit.analysis.calibrate import load_or_calibrate  # noqa: E402
from mlfit.api import MeasureOptions, identify, measure_and_check  # noqa: E402
from mlfit.catalog.loader import Target  # noqa: E402
from mlfit.catalog.schema import Hardware, Profile  # noqa: E402
from mlfit.inputspec import InputSpec  # noqa: E402
from mlfit.zoo import builders  # noqa: E402

GOAL = 0.15


def models(folder: Path) -> list[tuple[str, Path, InputSpec]]:
    """Models of different shapes: conv nets (depthwise and dense), an MLP, a transformer block."""
    spec = InputSpec()
    return [
        (
            "MobileNetV2 0.5 @160 (example)",
            builders.save(builders.example_model(), folder / "ex.onnx"),
            InputSpec(dims={"batch": 1}),
        ),
        ("MobileNetV2 1.0 @224", builders.save(builders.mobilenet_v2(), folder / "mbv2.onnx"), spec),
        ("ResNet-50 @112", builders.save(builders.resnet50(resolution=112), folder / "r50.onnx"), spec),
        (
            "MLP 256-1024-1024-512-10, batch 64",
            builders.save(builders.mlp(), folder / "mlp.onnx"),
            InputSpec(dims={"batch": 64}),
        ),
        (
            "Transformer block d=256, seq 128",
            builders.save(builders.transformer_block(), folder / "tr.onnx"),
            InputSpec(dims={"seq": 128}, ranges={"input_ids": (0, 999)}),
        ),
        (
            "MobileNetV2 0.35 @96",
            builders.save(builders.mobilenet_v2(width=0.35, resolution=96), folder / "mbv2s.onnx"),
            spec,
        ),
    ]


def one_core_target(cal: dict[str, Any]) -> Target:
    """This host as a 1-core machine, with the calibrated 1-thread figures marked measured."""
    source = f"measured by mlfit calibrate (host fingerprint {cal['fingerprint']}), 1 core"
    peak = max(float(cal.get("peak_fp32_per_core") or 0.0), float(cal["gemm_flops"]["1"]))
    hardware = Hardware.model_validate(
        {
            "id": "this-host-1core",
            "name": "this host, 1 core",
            "cpu": {
                "arch": cal["arch"],
                "model": cal["cpu_model"],
                "cores": 1,
                "frequency": f"{(cal.get('frequency_mhz') or 1000) / 1000} GHz",
                "peak_fp32": f"{peak} FLOPS",
                "sustained_fp32": f"{cal['gemm_flops']['1']} FLOPS",
                "source": source,
            },
            "memory": {
                "ram": f"{cal['ram_bytes']} B",
                "os_reserved": "1 GiB",
                "bandwidth": f"{cal['bandwidth']['1']} B/s",
                "source": source,
            },
            "storage": {"size": "100 GB", "source": source},
        }
    )
    profile = Profile.model_validate(
        {
            "id": "this-host-1t",
            "hardware": "this-host-1core",
            "runtimes": ["onnxruntime"],
            "threads": 1,
            "budgets": {"latency": {"p50": "10 s"}},
        }
    )
    return Target(profile, hardware, "benchmark")


def measure(
    path: Path,
    spec: InputSpec,
    target: Target,
    threads: int,
    profile_threads: list[int] | None,
    min_time: float,
) -> Any:
    options = MeasureOptions(
        threads=threads,
        min_time=min_time,
        max_time=max(10.0, min_time * 3),
        warmup=20,
        min_samples=64,
        extra={"profile_threads": profile_threads} if profile_threads else {},
    )
    return measure_and_check(identify(path), [target] if profile_threads else [], spec, options)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "projection_accuracy.md")
    parser.add_argument("--min-time", type=float, default=2.0)
    parser.add_argument(
        "--repeat", type=int, default=2, help="alternate projected/measured runs, keep medians"
    )
    parser.add_argument(
        "--cores", type=int, default=None, help="restrict the whole run to this many cores first"
    )
    args = parser.parse_args()
    if args.cores:
        os.sched_setaffinity(0, set(sorted(os.sched_getaffinity(0))[: args.cores]))
    if len(os.sched_getaffinity(0)) < 2:
        sys.exit("needs at least 2 usable cores")
    cal, _ = load_or_calibrate()
    gemm = cal["gemm_flops"]
    print(
        f"calibrated GEMM: 1 thread {gemm['1'] / 1e9:.0f} GFLOP/s, "
        f"2 threads {gemm.get('2', 0) / 1e9:.0f} GFLOP/s",
        flush=True,
    )
    target = one_core_target(cal)
    core = max(os.sched_getaffinity(0))  # not core 0, which often takes the interrupts
    everything = set(os.sched_getaffinity(0))
    rows = []
    with tempfile.TemporaryDirectory(prefix="mlfit-bench-") as tmp:
        for name, path, spec in models(Path(tmp)):
            projected, lower, upper, truth, two = [], [], [], [], []
            for _ in range(args.repeat):
                result = measure(path, spec, target, 2, [2], args.min_time)
                check = next(c for c in result.targets[0].checks if c.metric == "latency.p50")
                projected.append(check.value)
                lower.append(check.lower)
                upper.append(check.upper)
                two.append(result.measurement.latency.p50)
                os.sched_setaffinity(0, {core})  # the worker inherits this: a real 1-core run
                try:
                    pinned = measure(path, spec, target, 1, None, args.min_time)
                finally:
                    os.sched_setaffinity(0, everything)
                truth.append(pinned.measurement.latency.p50)
            p, t = statistics.median(projected), statistics.median(truth)
            lo, hi = statistics.median(lower), statistics.median(upper)
            error = p / t - 1
            rows.append(
                (
                    name,
                    result.analysis["macs"] if result.analysis else 0,
                    statistics.median(two),
                    p,
                    lo,
                    hi,
                    t,
                    error,
                    lo <= t <= hi,
                )
            )
            print(
                f"{name}: 2 threads {statistics.median(two) * 1e3:.2f} ms, "
                f"projected 1 thread {p * 1e3:.2f} ms "
                f"[{lo * 1e3:.2f}-{hi * 1e3:.2f}], measured pinned {t * 1e3:.2f} ms, error {error:+.1%}",
                flush=True,
            )
    lines = [
        "# Projection accuracy: this host at 1 core / 1 thread, projected from a 2-thread run",
        "",
        f"Host: {cal['cpu_model']} ({cal['arch']}, {cal['cores_usable']} usable cores), "
        f"{cal['runtime']}. Run on {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} "
        "with `python benchmarks/projection_accuracy.py`.",
        "",
        "Projected: measured at 2 threads with node profiling at 2 threads only, projected onto a "
        "hardware file of this host with `cores: 1` and the calibrated 1-thread GEMM as "
        "`sustained_fp32`. Measured: the same model at 1 thread with the worker pinned to one core "
        "(`os.sched_setaffinity`). Figures are p50, medians of "
        f"{args.repeat} alternating runs. Goal: |error| <= {GOAL:.0%}.",
        "",
        "| model | MACs | p50 @2 threads | projected p50 @1 thread [band] "
        "| measured p50, pinned 1 thread | error | truth in band |",
        "|---|---:|---:|---:|---:|---:|:---:|",
    ]
    for name, macs, two_t, p, lo, hi, t, error, inside in rows:
        lines.append(
            f"| {name} | {macs / 1e6:,.0f} M | {two_t * 1e3:.2f} ms | {p * 1e3:.2f} ms "
            f"[{lo * 1e3:.2f} – {hi * 1e3:.2f}] | {t * 1e3:.2f} ms | {error:+.1%} "
            f"| {'yes' if inside else 'no'} |"
        )
    errors = [abs(r[7]) for r in rows]
    lines += [
        "",
        f"Mean |error| {statistics.mean(errors):.1%}, worst {max(errors):.1%}; "
        f"{sum(e <= GOAL for e in errors)} of {len(errors)} models within {GOAL:.0%}; "
        f"truth inside the band for {sum(r[8] for r in rows)} of {len(rows)}.",
        "",
    ]
    args.out.write_text("\n".join(lines))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
