"""Item 6, start-up: wall time of `mlfit --help` and `mlfit targets`.

    python benchmarks/bench_startup.py [--quick]

Each command runs as a fresh `python -m mlfit ...` subprocess, interleaved, and the
median of the runs is quoted (the first run of each is dropped as a file-cache warm-up).
For scale, a bare `python -c pass` is timed in the same rounds. Goal: under 0.5 s.
"""

from __future__ import annotations

import sys
from pathlib import Path

import benchlib as bl

GOAL_S = 0.5
COMMANDS = {
    "`mlfit --help`": ["-m", "mlfit", "--help"],
    "`mlfit targets`": ["-m", "mlfit", "targets"],
    "`python -c pass` (interpreter alone, for scale)": ["-c", "pass"],
}


def body(work: Path, quick: bool) -> tuple[str, list[bl.Row]]:
    del work
    rounds = 3 if quick else 9
    walls: dict[str, list[float]] = {name: [] for name in COMMANDS}
    errors: dict[str, str] = {}
    for i in range(rounds + 1):
        for name, args in COMMANDS.items():
            proc = bl.run([bl.PY, *args])
            if proc.rc != 0:
                errors[name] = proc.last_error_line()
            elif i > 0:
                walls[name].append(proc.wall_s)
    rows, summary = [], []
    for name, values in walls.items():
        is_goal = name.startswith("`mlfit")
        if not values:
            rows.append([name, "-", "-", "-", bl.met(None, errors.get(name, "failed"))])
            continue
        value = bl.median(values)
        ok = value < GOAL_S
        load = bl.loadavg()[0]
        why = "" if ok or load < bl.usable_cores() else f"load average {load:.2f} on {bl.usable_cores()} cores"
        rows.append(
            [
                name,
                bl.fmt_time(value),
                f"{bl.fmt_time(min(values))} - {bl.fmt_time(max(values))}",
                f"< {GOAL_S} s" if is_goal else "-",
                bl.met(ok, why) if is_goal else "-",
            ]
        )
        if is_goal:
            summary.append(bl.Row(f"6. start-up, {name}", f"< {GOAL_S} s", bl.fmt_time(value), bl.met(ok, why)))
    text = [
        f"Median of {rounds} runs each (after one warm-up run), interleaved.",
        "",
        bl.table(["command", "median wall", "range", "goal", "met"], rows),
    ]
    return "\n".join(text), summary


def run(work: Path, quick: bool) -> bl.Section:
    return bl.timed_section(6, "Start-up: `mlfit --help` and `mlfit targets`", lambda: body(work, quick))


if __name__ == "__main__":
    sys.exit(bl.main_for(run, __doc__.splitlines()[0]))
