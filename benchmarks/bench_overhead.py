"""Item 1, harness overhead: mlfit's reported p50 against a bare InferenceSession.run loop.

    python benchmarks/bench_overhead.py [--quick]

For a ~10 µs model (a single Add, mlfit.zoo.builders.tiny_add) and for the example CNN
(builders.example_model(), --dim batch=1), pairs are run interleaved A B A B ...:
A is `mlfit profile MODEL --threads T --json` (mlfit's own worker subprocess), B is
bare_onnxruntime.py in its own subprocess with the same thread count, the same warm-up
policy (10 iterations and 0.3 s) and exactly the number of samples A collected. The
ratio is A's p50 over B's p50, pair by pair; the table quotes medians.
Goals: ratio <= 1.05 for the tiny model, <= 1.01 for the CNN.
"""

from __future__ import annotations

import sys
from pathlib import Path

import benchlib as bl

GOALS = {"tiny_add": 1.05, "example": 1.01}
LABELS = {
    "tiny_add": "tiny_add (one Add, ~10 µs)",
    "example": "example CNN (MobileNetV2 0.5, 160x160, batch 1)",
}


def _pairs(model: Path, dims: list[str], threads: int, pairs: int) -> tuple[list[dict[str, float]], str]:
    out: list[dict[str, float]] = []
    for _ in range(pairs):
        a = bl.mlfit("profile", str(model), "--threads", str(threads), *dims)
        if not a.ok:
            return out, f"mlfit profile failed: {a.why()}"
        lat = a.latency
        n = int(lat["n"])
        b = bl.bare_onnxruntime(
            model,
            "--threads",
            str(threads),
            "--samples",
            str(n),
            "--warmup",
            "10",
            "--warmup-time",
            "0.3",
            *dims,
        )
        if not b.ok:
            return out, f"bare loop failed: {b.proc.last_error_line()}"
        out.append(
            {
                "mlfit": float(lat["p50"]),
                "bare": float(b.data["p50"]),
                "n": n,
                "ratio": float(lat["p50"]) / float(b.data["p50"]),
            }
        )
    return out, ""


def body(work: Path, quick: bool) -> tuple[str, list[bl.Row]]:
    models = bl.build_models(work)
    threads = bl.bench_threads()
    pairs = 2 if quick else 5
    rows, summary, details, notes = [], [], [], []
    for key, dims in (("tiny_add", []), ("example", ["--dim", "batch=1"])):
        runs, error = _pairs(models[key], dims, threads, pairs)
        goal = GOALS[key]
        if not runs:
            rows.append([LABELS[key], "-", "-", "-", "-", f"<= {goal:.2f}", bl.met(None, error)])
            summary.append(bl.Row(f"1. overhead, {key}", f"p50 ratio <= {goal:.2f}", "-", bl.met(None, error)))
            continue
        ratio = bl.median([r["ratio"] for r in runs])
        lo, hi = min(r["ratio"] for r in runs), max(r["ratio"] for r in runs)
        mlfit_p50 = bl.median([r["mlfit"] for r in runs])
        bare_p50 = bl.median([r["bare"] for r in runs])
        ok = ratio <= goal
        # When pairs disagree by more than the goal's margin, the run cannot resolve the goal.
        noisy = hi - lo > goal - 1.0
        extra = mlfit_p50 - bare_p50
        why = ""
        if not ok:
            why = f"{'+' if extra >= 0 else '-'}{bl.fmt_time(abs(extra))} per call; pairs {lo:.3f}-{hi:.3f}" + (
                ", wider than the goal's margin: noise-bound" if noisy else ""
            )
        verdict = bl.met(ok, why)
        if ok and noisy:
            verdict = f"yes, but noise-bound (pairs {lo:.3f}-{hi:.3f}, wider than the goal's margin)"
        rows.append(
            [
                LABELS[key],
                bl.fmt_time(mlfit_p50),
                bl.fmt_time(bare_p50),
                f"{ratio:.3f}",
                f"{lo:.3f} - {hi:.3f}",
                f"<= {goal:.2f}",
                verdict,
            ]
        )
        summary.append(bl.Row(f"1. overhead, {key}", f"p50 ratio <= {goal:.2f}", f"{ratio:.3f}", verdict))
        details.append(
            f"- {key}: "
            + ", ".join(
                f"{bl.fmt_time(r['mlfit'])} / {bl.fmt_time(r['bare'])} = {r['ratio']:.3f} (n={int(r['n'])})"
                for r in runs
            )
        )
        if error:
            notes.append(f"- {key}: stopped early: {error}")
    text = [
        f"A = `mlfit profile MODEL --threads {threads}` (p50 from its JSON); B = `bare_onnxruntime.py` "
        f"(InferenceSession.run timed with perf_counter_ns), each in its own subprocess, {threads} intra-op "
        f"thread(s), same warm-up policy, same sample count; {pairs} pairs run A B A B. "
        "Ratio = A/B per pair; the table shows medians.",
        "",
        bl.table(["model", "mlfit p50", "bare loop p50", "ratio (median)", "ratio range", "goal", "met"], rows),
        "",
        "Pairs (mlfit p50 / bare p50 = ratio):",
        *details,
        *notes,
    ]
    return "\n".join(text), summary


def run(work: Path, quick: bool) -> bl.Section:
    return bl.timed_section(1, "Harness overhead: mlfit p50 vs a bare onnxruntime loop", lambda: body(work, quick))


if __name__ == "__main__":
    sys.exit(bl.main_for(run, __doc__.splitlines()[0]))
