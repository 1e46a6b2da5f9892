"""Item 4, stability: the spread (max/min) of mlfit's p50 over five separate `mlfit check` runs.

    python benchmarks/bench_stability.py [--quick]

Five separate `mlfit check EXAMPLE --dim batch=1 --target edge --json` runs, one after the
other, each a fresh worker. Goal: max/min of the five p50s at most 1.05 on a quiet
machine; the table reports what it is on this one, with the load average beside it.
"""

from __future__ import annotations

import sys
from pathlib import Path

import benchlib as bl

GOAL = 1.05


def body(work: Path, quick: bool) -> tuple[str, list[bl.Row]]:
    model = bl.build_models(work)["example"]
    count = 3 if quick else 5
    p50s, cvs, loads, errors = [], [], [], []
    for _ in range(count):
        result = bl.mlfit("check", str(model), "--dim", "batch=1", "--target", "edge")
        if not result.ok:
            errors.append(f"- mlfit check failed: {result.why()}")
            continue
        p50s.append(float(result.latency["p50"]))
        cvs.append(float(result.latency["cv"]))
        loads.append(float(result.results[0]["host"].get("load_avg_1m") or 0.0))
    if len(p50s) < 2:
        why = "fewer than two runs succeeded"
        return "\n".join(errors), [bl.Row("4. stability of p50", f"max/min <= {GOAL}", "-", bl.met(None, why))]
    ratio = bl.spread(p50s)
    ok = ratio <= GOAL
    busy = max(loads) > bl.usable_cores() * 0.5
    why = ""
    if not ok:
        why = (
            f"load average up to {max(loads):.2f} on {bl.usable_cores()} cores during the runs"
            if busy
            else f"CV within a run up to {max(cvs) * 100:.0f}%"
        )
    rows = [
        [i + 1, bl.fmt_time(p), f"{cv * 100:.1f}%", f"{load:.2f}"]
        for i, (p, cv, load) in enumerate(zip(p50s, cvs, loads, strict=True))
    ]
    text = [
        f"{len(p50s)} separate runs of `mlfit check example.onnx --dim batch=1 --target edge`.",
        "",
        bl.table(["run", "p50", "CV within the run", "load avg (1 min)"], rows),
        "",
        bl.table(
            ["figure", "value", "goal", "met"],
            [["p50 max/min", f"{ratio:.3f}", f"<= {GOAL} (quiet machine)", bl.met(ok, why)]],
        ),
        *errors,
    ]
    return "\n".join(text), [
        bl.Row(f"4. stability of p50 ({len(p50s)} runs)", f"max/min <= {GOAL}", f"{ratio:.3f}", bl.met(ok, why))
    ]


def run(work: Path, quick: bool) -> bl.Section:
    return bl.timed_section(4, "Stability: p50 over five separate runs", lambda: body(work, quick))


if __name__ == "__main__":
    sys.exit(bl.main_for(run, __doc__.splitlines()[0]))
