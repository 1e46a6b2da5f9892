"""Items 2 and 5 for two source trees side by side (issue 22): time to verdict and 3 targets vs 1.

    python benchmarks/verdict_side_by_side.py [--rounds N] NAME=SRC [NAME=SRC ...]

e.g. ``before=/work/wt/base/src after=$PWD/src``. Each round runs, for every tree in turn (A B A B),
``mlfit check EXAMPLE --dim batch=1 --target edge --json F --quiet`` with PYTHONPATH=SRC, then the
hand script (bare_onnxruntime.py) with that run's sample count and thread count, then the same check
with three targets that share edge's configuration on a 2-core host (edge, edge-pi5, weak-cpu: one
worker run). Wall and CPU (user + system of the whole process tree, from getrusage) are taken
around each subprocess. Bytecode caches are written per tree under /tmp (PYTHONPYCACHEPREFIX), as an
installed package has them, by a first round that is not counted (``--warm-rounds``); each tree's
host calibration is made once, before any round, in a cache folder of its own. Prints one
line per run and the medians of the per-round ratios, with the load average: on a shared host read
the CPU ratios, the wall ones are noise-bound.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
TARGETS_ONE = ("edge",)
TARGETS_THREE = ("edge", "edge-pi5", "weak-cpu")
CACHES = "/tmp/mlfit-side-by-side"


def _timed(cmd: list[str], env: dict[str, str]) -> tuple[subprocess.CompletedProcess[str], float, float]:
    """The finished process, its wall seconds and its CPU seconds (children's user + system)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return proc, wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def _check(model: Path, targets: tuple[str, ...], env: dict[str, str]) -> tuple[dict[str, Any], float, float]:
    with tempfile.TemporaryDirectory(prefix="mlfit-sbs-") as tmp:
        out = Path(tmp) / "r.json"
        args = [a for t in targets for a in ("--target", t)]
        proc, wall, cpu = _timed([sys.executable, "-m", "mlfit", "check", str(model), "--dim", "batch=1", *args,
                                  "--json", str(out), "--quiet"], env)
        if not out.exists():
            sys.exit(f"mlfit check failed (exit {proc.returncode}): {proc.stderr.strip()[-500:]}")
        return json.loads(out.read_text()), wall, cpu


def _env(name: str, src: str) -> dict[str, str]:
    """This environment with the tree first on the path, and the tree's own bytecode caches and host
    calibration cache (a check whose cached calibration another process replaced, or another tree
    wrote in its own format, calibrates again: ~3 s of CPU in one run and not the next)."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env.update(PYTHONPATH=src, PYTHONPYCACHEPREFIX=f"{CACHES}/pyc-{name}", XDG_CACHE_HOME=f"{CACHES}/xdg-{name}")
    return env


def _round(name: str, src: str, model: Path) -> dict[str, float]:
    env = _env(name, src)
    report, wall, cpu = _check(model, TARGETS_ONE, env)
    m = report["results"][0]["measurement"]
    n = int(m["latency"]["n"])
    script, s_wall, s_cpu = _timed([sys.executable, str(HERE / "bare_onnxruntime.py"), str(model), "--threads",
                                    str(m["threads"]), "--samples", str(n), "--warmup", "10", "--dim", "batch=1"],
                                   env)
    if script.returncode != 0:
        sys.exit(f"the script failed: {script.stderr.strip()[-500:]}")
    _, wall3, cpu3 = _check(model, TARGETS_THREE, env)
    phases = (m.get("contention") or {}).get("phases") or []
    profile = next((p["wall_s"] for p in phases if p["phase"] == "profile"), float("nan"))
    return {"wall_ratio": wall / s_wall, "cpu_ratio": cpu / s_cpu, "wall": wall, "cpu": cpu, "script_wall": s_wall,
            "script_cpu": s_cpu, "n": n, "three_wall": wall3 / wall, "three_cpu": cpu3 / cpu, "profile": profile,
            "load": os.getloadavg()[0]}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("trees", nargs="+", help="NAME=SRC: a source tree's src folder, run as PYTHONPATH")
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--warm-rounds", type=int, default=1,
                        help="rounds run first and not counted (they write the bytecode caches)")
    parser.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "mlfit-bench")
    ns = parser.parse_args()
    trees = dict(t.split("=", 1) for t in ns.trees)
    sys.path.insert(0, str(HERE))
    import benchlib as bl

    model = bl.build_models(ns.work)["example"]
    for name, src in trees.items():
        calibrated = subprocess.run([sys.executable, "-m", "mlfit", "calibrate"], env=_env(name, src),
                                    capture_output=True, text=True, check=False)
        if calibrated.returncode != 0:
            sys.exit(f"mlfit calibrate failed ({name}): {calibrated.stderr.strip()[-500:]}")
    rows: dict[str, list[dict[str, float]]] = {name: [] for name in trees}
    for i in range(ns.warm_rounds + ns.rounds):
        for name, src in trees.items():
            r = _round(name, src, model)
            if i < ns.warm_rounds:
                continue
            rows[name].append(r)
            print(f"{name:8s} wall ratio {r['wall_ratio']:.2f} CPU ratio {r['cpu_ratio']:.2f} | mlfit "
                  f"{r['wall']:.2f} s / {r['cpu']:.2f} s CPU, script {r['script_wall']:.2f} s / "
                  f"{r['script_cpu']:.2f} s CPU, n={r['n']:.0f} | 3 targets / 1: wall {r['three_wall']:.2f} "
                  f"CPU {r['three_cpu']:.2f} | node profile {r['profile']:.2f} s | load {r['load']:.1f}", flush=True)
    for name, got in rows.items():
        def med(key: str, got: list[dict[str, float]] = got) -> float:
            return statistics.median(r[key] for r in got)

        print(f"MEDIAN {name}: wall ratio {med('wall_ratio'):.2f}, CPU ratio {med('cpu_ratio'):.2f}; mlfit "
              f"{med('wall'):.2f} s / {med('cpu'):.2f} s CPU, script {med('script_wall'):.2f} s / "
              f"{med('script_cpu'):.2f} s CPU; 3 targets / 1: wall {med('three_wall'):.2f}, "
              f"CPU {med('three_cpu'):.2f}; node profile {med('profile'):.2f} s")
    loads = [r["load"] for got in rows.values() for r in got]
    print(f"load average (1 min) after each run: mean {statistics.mean(loads):.1f}, max {max(loads):.1f} "
          f"on {os.cpu_count()} CPUs")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
