"""Item 13, soak: many runs in one long-lived process leave nothing behind and grow nothing.

    python benchmarks/bench_soak.py [--quick]        # 100 runs (quick: 10); MLFIT_SOAK_RUNS=N sets N

One process (a subprocess of this script, as every measured program here) calls ``mlfit.check``
N times on the tiny model, alternating a built-in target (measured on this host, projected) and,
where a cgroup can be made, a Kubernetes pod target (measured under its limits in a cgroup).
After each run it records its own resident memory and open file descriptors, the mlfit folders
left in its private TMPDIR and the cgroups named after it. Every tenth run it also starts a
``mlfit check`` that it SIGKILLs in its timed loop: the next run must sweep what that one left.
Growth is judged on medians of the first and last tenth of the runs (after 3 warm-up runs),
so a single noisy reading decides nothing.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import benchlib as bl

TITLE = "Soak"
POD = """\
apiVersion: v1
kind: Pod
metadata: {name: soak}
spec:
  containers:
    - name: model
      image: registry.example/model:1
      resources: {limits: {cpu: "1", memory: 1Gi}}
"""
RSS_GROWTH_MIB = 10.0  # allowed median growth of the long-lived process, first tenth to last
WARMUP_RUNS = 3


def runs_wanted(quick: bool) -> int:
    return int(os.environ.get("MLFIT_SOAK_RUNS") or (10 if quick else 100))


def _cgroups(pid: int) -> int:
    from mlfit.measure import cgroup

    folders = [*cgroup.v1_dirs().values(), *([d] if (d := cgroup.v2_dir()) else [])]
    return sum(1 for folder in folders for _ in folder.glob(f"mlfit-{pid}-*"))


def _killed_run(model: Path, tmp: Path) -> None:
    """A `mlfit check` SIGKILLed in its timed loop: its folders stay until a later run sweeps them."""
    proc = subprocess.Popen([sys.executable, "-m", "mlfit", "check", str(model), "--target", "edge", "--min-time",
                             "30", "--max-time", "40", "--quiet"], env={**os.environ, "TMPDIR": str(tmp)},
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not any(p.name.startswith("mlfit-") and p.name[6:11] != "model"
                                                  for p in tmp.iterdir()):
        time.sleep(0.1)
    time.sleep(2.0)
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=30)


def child(n: int, model: Path, pod: Path | None) -> None:
    """The long-lived process: N runs, one JSON line per run on stdout."""
    import psutil

    import mlfit
    from mlfit.options import MeasureOptions

    me = psutil.Process()
    tmp = Path(tempfile.gettempdir())
    options = MeasureOptions(min_time=0.2, max_time=1.0, warmup=2)
    for i in range(n):
        target = str(pod) if pod is not None and i % 2 else "edge"
        killed = i % 10 == 5
        if killed:
            _killed_run(model, tmp)
        began = time.perf_counter()
        result = mlfit.check(model, [target], options=options)
        line = {"i": i, "target": "pod" if target != "edge" else "edge", "ok": result.error is None,
                "seconds": time.perf_counter() - began, "rss": me.memory_info().rss, "fds": me.num_fds(),
                "tmp": sum(1 for p in tmp.iterdir() if p.name.startswith("mlfit-")), "cgroups": _cgroups(me.pid),
                "after_kill": killed, "children": len(me.children(recursive=True))}
        sys.stdout.write(json.dumps(line) + "\n")
        sys.stdout.flush()


def _slope_kib_per_run(rows: list[dict[str, Any]]) -> float:
    """Least-squares slope of resident memory over the runs, KiB per run."""
    import statistics

    if len(rows) < 2:
        return 0.0
    return statistics.linear_regression([float(r["i"]) for r in rows], [r["rss"] / 1024 for r in rows]).slope


def _median_of(rows: list[dict[str, Any]], key: str) -> float:
    return bl.median([float(r[key]) for r in rows])


def body(work: Path, quick: bool) -> tuple[str, list[bl.Row]]:
    from mlfit.measure.cgroup import can_emulate

    n = runs_wanted(quick)
    model = bl.build_models(work)["tiny_add"]
    no_cgroup = can_emulate()
    with tempfile.TemporaryDirectory(prefix="soak-") as tmp:
        pod = None
        if no_cgroup is None:
            pod = Path(tmp) / "pod.yaml"
            pod.write_text(POD)
        private = Path(tmp) / "tmp"
        private.mkdir()
        proc = subprocess.run([bl.PY, __file__, "--child", str(n), str(model), str(pod or "")],
                              env={**os.environ, "TMPDIR": str(private)}, capture_output=True, text=True,
                              timeout=60 * n + 600)
        rows = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    if proc.returncode != 0 or len(rows) < n:
        why = (proc.stderr.strip().splitlines() or [f"exit {proc.returncode}"])[-1]
        return f"Not completed: {why}", [bl.Row("13. soak", "no growth", "not run", bl.met(False, why))]
    settled = rows[WARMUP_RUNS:]
    tenth = max(1, len(settled) // 10)
    first, last = settled[:tenth], settled[-tenth:]
    rss_growth = (_median_of(last, "rss") - _median_of(first, "rss")) / 2**20
    fds_growth = _median_of(last, "fds") - _median_of(first, "fds")
    left_tmp, left_cg = max(r["tmp"] for r in rows), max(r["cgroups"] for r in rows)
    failed = sum(1 for r in rows if not r["ok"])
    ok = rss_growth < RSS_GROWTH_MIB and fds_growth <= 0 and left_tmp == 0 and left_cg == 0 and failed == 0
    table = bl.table(
        ["", f"first {tenth} runs (median)", f"last {tenth} runs (median)", "max over all runs"],
        [["resident memory", bl.fmt_mib(_median_of(first, "rss")), bl.fmt_mib(_median_of(last, "rss")),
          bl.fmt_mib(max(r["rss"] for r in rows))],
         ["open file descriptors", f"{_median_of(first, 'fds'):.0f}", f"{_median_of(last, 'fds'):.0f}",
          str(max(r["fds"] for r in rows))],
         ["mlfit folders in TMPDIR after a run", f"{_median_of(first, 'tmp'):.0f}", f"{_median_of(last, 'tmp'):.0f}",
          str(left_tmp)],
         ["cgroups of this process after a run", f"{_median_of(first, 'cgroups'):.0f}",
          f"{_median_of(last, 'cgroups'):.0f}", str(left_cg)],
         ["seconds per run", f"{_median_of(first, 'seconds'):.2f}", f"{_median_of(last, 'seconds'):.2f}",
          f"{max(r['seconds'] for r in rows):.2f}"]])
    targets = "the built-in `edge` and a pod target in a cgroup, alternately" if pod_used(rows) else \
        f"the built-in `edge` (no cgroup here: {no_cgroup})"
    text = (f"{n} runs of `mlfit.check` on the tiny model in one process, against {targets}; "
            f"{sum(1 for r in rows if r['after_kill'])} of them right after a `mlfit check` SIGKILLed in its "
            f"timed loop. {failed} run(s) failed. Memory grew {rss_growth:+.1f} MiB (median of the last tenth "
            f"against the first, after {WARMUP_RUNS} warm-up runs; least-squares slope "
            f"{_slope_kib_per_run(settled):+.0f} KiB per run), file descriptors {fds_growth:+.0f}.\n\n"
            + table)
    result = f"RSS {rss_growth:+.1f} MiB, fds {fds_growth:+.0f}, temp {left_tmp}, cgroups {left_cg} ({n} runs)"
    return text, [bl.Row("13. soak", f"no growth over {n} runs", result,
                         bl.met(ok, "" if ok else "something grew or was left"))]


def pod_used(rows: list[dict[str, Any]]) -> bool:
    return any(r["target"] == "pod" for r in rows)


def run(work: Path, quick: bool) -> bl.Section:
    return bl.timed_section(13, TITLE, lambda: body(work, quick))


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        child(int(sys.argv[2]), Path(sys.argv[3]), Path(sys.argv[4]) if sys.argv[4] else None)
        sys.exit(0)
    sys.exit(bl.main_for(run, __doc__ or ""))
