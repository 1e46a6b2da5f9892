"""Run every benchmark and write benchmarks/RESULTS.md.

    python benchmarks/run_all.py            # the full run (`make bench`), about 8 minutes on 2 cores
    python benchmarks/run_all.py --quick    # a smoke run with tiny settings (writes .work/RESULTS-quick.md)
    python benchmarks/run_all.py --only 1 3 # some items only (writes .work/RESULTS-partial.md)

Each item is also a script that runs alone (see benchmarks/README.md). Item 7 (projection
accuracy) is benchmarks/projection_accuracy.py, owned by the projection work: when present it
is run as a subprocess with ``--out FILE`` and FILE (markdown) is included; otherwise the
item says "not available". The load average is sampled every few seconds during the whole run
and reported, because every figure here is only as good as the machine was quiet.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import tempfile
import threading
import time
import traceback
from collections.abc import Callable
from pathlib import Path

import bench_beyond_table
import bench_containers
import bench_devices
import bench_load_verdicts
import bench_memory
import bench_overhead
import bench_peers
import bench_scaling
import bench_soak
import bench_stability
import bench_startup
import bench_suggest
import bench_verdict
import benchlib as bl

PROJECTION = bl.HERE / "projection_accuracy.py"
PROJECTION_TITLE = "Projection accuracy (from the projection work)"
RunFn = Callable[[Path, bool], bl.Section]
ITEMS: dict[int, tuple[str, RunFn | None]] = {
    1: ("Harness overhead", bench_overhead.run),
    2: ("Time to verdict", bench_verdict.run),
    3: ("Memory accuracy", bench_memory.run),
    4: ("Stability", bench_stability.run),
    5: ("Cost growth", bench_scaling.run),
    6: ("Start-up", bench_startup.run),
    7: (PROJECTION_TITLE, None),
    8: ("Peers", bench_peers.run),
    9: (bench_devices.TITLE, bench_beyond_table.with_devices),  # published devices, then beyond the table
    11: ("Container limits", bench_containers.run),
    12: ("Verdicts under load", bench_load_verdicts.run),
    13: (bench_soak.TITLE, bench_soak.run),
    14: (bench_suggest.TITLE, bench_suggest.run),
}


class LoadSampler:
    """Samples the 1-minute load average every ``every_s`` seconds on a daemon thread."""

    def __init__(self, every_s: float = 5.0) -> None:
        self.every_s = every_s
        self.samples: list[float] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _loop(self) -> None:
        while not self._stop.is_set():
            self.samples.append(bl.loadavg()[0])
            self._stop.wait(self.every_s)

    def __enter__(self) -> LoadSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=1)

    def describe(self) -> str:
        if not self.samples:
            return "not sampled"
        mean = sum(self.samples) / len(self.samples)
        return (
            f"mean {mean:.2f}, max {max(self.samples):.2f} over {len(self.samples)} samples "
            f"(every {self.every_s:.0f} s) on {bl.usable_cores()} usable cores"
        )


def _demote_headings(markdown: str, levels: int = 2) -> str:
    """Nest an included document's headings under the item's own heading."""
    return re.sub(r"^(#{1,4}) ", lambda m: "#" * (len(m.group(1)) + levels) + " ", markdown, flags=re.MULTILINE)


def _run_projection(quick: bool, out: Path) -> bl.Proc:
    """Run projection_accuracy.py with ``--out FILE`` (its interface); quick mode asks for one
    short repeat and falls back to plain ``--out`` if those flags are not understood."""
    env = {"MLFIT_BENCH_QUICK": "1"} if quick else None
    base = [bl.PY, str(PROJECTION), "--out", str(out)]
    if quick:
        proc = bl.run([*base, "--repeat", "1", "--min-time", "0.5"], env=env, timeout=900)
        if proc.rc != 2 or "unrecognized arguments" not in proc.stderr:
            return proc
    return bl.run(base, env=env, timeout=900)


def projection_section(quick: bool) -> bl.Section:
    """Item 7: run projection_accuracy.py if this tree has it, and include its markdown."""
    goal = "error <= 15% per model"

    def body() -> tuple[str, list[bl.Row]]:
        if not PROJECTION.exists():
            why = "not available: benchmarks/projection_accuracy.py is not in this tree yet (projection work)"
            return why + ".", [bl.Row("7. projection accuracy", goal, "-", bl.met(None, why))]
        with tempfile.TemporaryDirectory(prefix="mlfit-bench-") as tmp:
            out = Path(tmp) / "projection_accuracy.md"
            proc = _run_projection(quick, out)
            text = out.read_text() if out.exists() else proc.stdout
        if proc.rc != 0 or not text.strip():
            why = f"projection_accuracy.py exited {proc.rc}: {proc.last_error_line()}"
            return why, [bl.Row("7. projection accuracy", goal, "-", bl.met(None, why))]
        # Its closing line reads "... N of M models within 15% ..."; quote it when present.
        found = re.search(r"(\d+) of (\d+) models within", text)
        if found:
            within, total = int(found.group(1)), int(found.group(2))
            row = bl.Row(
                "7. projection accuracy",
                goal,
                f"{within} of {total} models within 15%",
                bl.met(within == total, "see item 7"),
            )
        else:
            row = bl.Row("7. projection accuracy", goal, "see item 7", "see item 7")
        return (
            "Output of `benchmarks/projection_accuracy.py`, included as it wrote it:\n\n"
            + _demote_headings(text.strip()),
            [row],
        )

    return bl.timed_section(7, PROJECTION_TITLE, body)


def crashed_section(number: int, title: str, exc: BaseException) -> bl.Section:
    """A benchmark that raised: the run goes on and RESULTS.md says what broke."""
    last = traceback.format_exception_only(type(exc), exc)[-1].strip()
    sys.stderr.write(traceback.format_exc())
    return bl.Section(
        number,
        title,
        f"This benchmark crashed: `{last}` (traceback on stderr).",
        [bl.Row(f"{number}. {title}", "-", "-", bl.met(None, f"benchmark crashed: {last}"))],
    )


def _calibration_line() -> str:
    cal = bl.CALIBRATION
    if not cal:
        return "Set-up: no host calibration was run."
    if cal.get("rc") == 0:
        return (
            f"Set-up: `mlfit calibrate` ran once before any timing ({float(cal['wall_s']):.1f} s; "
            "cached per host, so no timed `mlfit check` below pays for it)."
        )
    return f"Set-up: `mlfit calibrate` was not available or failed ({cal.get('note')}); timed runs may include it."


def render(
    sections: list[bl.Section],
    quick: bool,
    started: str,
    seconds: float,
    load: str,
    load_start: tuple[float, float, float],
    load_end: tuple[float, float, float],
) -> str:
    facts = bl.machine_facts()
    rows = [row for s in sections for row in s.rows]
    lines = [
        "# mlfit benchmark results",
        "",
        "mlfit measuring itself: its overhead, accuracy and speed against the bare runtime, side by side "
        "in one run (A B A B ...), as medians and ratios. Reproduce with `make bench` "
        "(or `python benchmarks/run_all.py`); every item is also a script that runs alone, see "
        "[README.md](README.md).",
        "",
    ]
    if quick:
        lines += ["**QUICK SMOKE RUN (--quick): tiny settings, not figures to quote.**", ""]
    lines += [
        f"Run started {started}, took {seconds / 60:.1f} min"
        + (" (over the 15-minute budget for `make bench` on 2 cores)." if seconds > 15 * 60 else ".")
        + f" Command: `{' '.join(['python', 'benchmarks/run_all.py', *sys.argv[1:]])}`.",
        "",
        _calibration_line(),
        "",
        bl.table(
            ["machine", ""],
            [[k, v] for k, v in facts.items()]
            + [
                ["load average at start (1/5/15 min)", bl.fmt_load(load_start)],
                ["load average at end (1/5/15 min)", bl.fmt_load(load_end)],
                ["load average (1 min) during the run", load],
            ],
        ),
        "",
        "A load average near or above the number of usable cores means other work shared the CPU during "
        "the run, and timing figures (items 1, 2, 4, 5, 8, 12) are noisier than on a quiet machine.",
        "",
        "## Summary",
        "",
        bl.table(["item", "goal", "result", "met"], [[r.item, r.goal, r.result, r.met] for r in rows]),
        "",
    ]
    lines += [s.markdown() for s in sections]
    return "\n".join(lines).rstrip() + "\n"


def write_atomically(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w") as fh:
        fh.write(text)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--quick",
        action="store_true",
        default=bl.quick_from_env(),
        help="tiny settings for a smoke run (also MLFIT_BENCH_QUICK=1)",
    )
    parser.add_argument("--only", type=int, nargs="+", choices=sorted(ITEMS), help="run only these items")
    parser.add_argument("--work", type=Path, default=bl.WORK_DEFAULT, help="folder for generated models")
    parser.add_argument(
        "--out",
        type=Path,
        help="where to write the results (default benchmarks/RESULTS.md; "
        "benchmarks/.work/RESULTS-quick.md with --quick, .work/RESULTS-partial.md with --only)",
    )
    ns = parser.parse_args()
    # Only a full run of every item replaces the committed RESULTS.md by default.
    default = "RESULTS-quick.md" if ns.quick else ("RESULTS-partial.md" if ns.only else "")
    out = ns.out or (bl.WORK_DEFAULT / default if default else bl.HERE / "RESULTS.md")
    started = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())
    load_start = bl.loadavg()
    t0 = time.perf_counter()
    sections: list[bl.Section] = []
    bl.build_models(ns.work)
    with LoadSampler() as sampler:
        for number in sorted(set(ns.only or ITEMS)):
            title, fn = ITEMS[number]
            sys.stderr.write(f"[{time.strftime('%H:%M:%S')}] item {number}: {title} ...\n")
            sys.stderr.flush()
            try:
                section = projection_section(ns.quick) if fn is None else fn(ns.work, ns.quick)
            except Exception as exc:  # one broken benchmark must not lose the others' figures
                section = crashed_section(number, title, exc)
            sections.append(section)
            sys.stderr.write(f"[{time.strftime('%H:%M:%S')}] item {number} done in {section.seconds:.0f} s\n")
    seconds = time.perf_counter() - t0
    text = render(sections, ns.quick, started, seconds, sampler.describe(), load_start, bl.loadavg())
    write_atomically(out, text)
    summary = bl.table(
        ["item", "goal", "result", "met"],
        [[r.item, r.goal, r.result, r.met] for s in sections for r in s.rows],
    )
    sys.stdout.write(summary + f"\n\nWrote {out} ({seconds / 60:.1f} min).\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
