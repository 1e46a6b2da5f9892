"""Shared plumbing for the benchmarks: subprocess timing, mlfit invocations, the machine
description, statistics and markdown tables.

Every benchmark script imports this module (it sits next to them, so ``python
benchmarks/X.py`` finds it) and exposes ``run(work, quick) -> Section`` for run_all.py plus
a ``main()`` so it can be run alone. Measured programs always run as separate
subprocesses; this orchestrating process only builds models and reads JSON back.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
PY = sys.executable
WORK_DEFAULT = HERE / ".work"
BARE_ORT = HERE / "bare_onnxruntime.py"


# ---------------------------------------------------------------- results
@dataclass
class Row:
    """One line of the summary table at the top of RESULTS.md."""

    item: str
    goal: str
    result: str
    met: str  # "yes", "**no**", or "n/a (...)"


@dataclass
class Section:
    """One benchmark's outcome: its markdown body and its summary lines."""

    number: int
    title: str
    body: str
    rows: list[Row] = field(default_factory=list)
    seconds: float = 0.0
    load_before: tuple[float, float, float] = (0.0, 0.0, 0.0)
    load_after: tuple[float, float, float] = (0.0, 0.0, 0.0)

    def markdown(self) -> str:
        load = (
            f"_Load average (1/5/15 min) {fmt_load(self.load_before)} before, "
            f"{fmt_load(self.load_after)} after; this item took {self.seconds:.0f} s "
            f"on {machine_line()}._"
        )
        return f"## {self.number}. {self.title}\n\n{self.body.rstrip()}\n\n{load}\n"


def met(ok: bool | None, why: str = "") -> str:
    """Render whether a goal was met; ``None`` means it could not be evaluated."""
    if ok is None:
        return f"n/a ({why})" if why else "n/a"
    return "yes" if ok else ("**no**" + (f" ({why})" if why else ""))


def fmt_load(load: Sequence[float]) -> str:
    return "/".join(f"{x:.2f}" for x in load)


def loadavg() -> tuple[float, float, float]:
    try:
        return os.getloadavg()
    except OSError:
        return (0.0, 0.0, 0.0)


# ---------------------------------------------------------------- the machine
def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith(("model name", "hardware")):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def usable_cores() -> int:
    """Cores this process may use (affinity, capped by a cgroup v2 quota), like mlfit."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    try:
        quota, period = Path("/sys/fs/cgroup/cpu.max").read_text().split()
        if quota != "max":
            cores = max(1, min(cores, int(int(quota) / int(period))))
    except (OSError, ValueError):
        pass
    return cores


def machine_line() -> str:
    return f"{cpu_model()}, {os.cpu_count()} cores ({usable_cores()} usable)"


def package_version(name: str) -> str:
    from importlib import metadata

    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "not installed"


def machine_facts() -> dict[str, str]:
    mem = ""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem = f"{int(line.split()[1]) / 2**20:.1f} GiB"
    except OSError:
        pass
    return {
        "CPU": cpu_model(),
        "cores": f"{os.cpu_count()} logical, {usable_cores()} usable by this process",
        "RAM": mem or "unknown",
        "OS": f"{platform.system()} {platform.release()}",
        "Python": platform.python_version(),
        "onnxruntime": package_version("onnxruntime"),
        "ai-edge-litert": package_version("ai-edge-litert"),
        "mlfit": package_version("mlfit") if package_version("mlfit") != "not installed" else _src_version(),
        "mlfit imported from": _mlfit_location(),
        "source commit": _git_commit(),
    }


def _mlfit_location() -> str:
    import importlib.util

    spec = importlib.util.find_spec("mlfit")
    return str(Path(spec.origin).parent) if spec and spec.origin else "not importable"


def _git_commit() -> str:
    """The commit of the tree the benchmarks ran from, marked when it had local changes."""
    try:
        head = subprocess.run(
            ["git", "-C", str(HERE), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            timeout=10,
        )
        dirty = subprocess.run(
            ["git", "-C", str(HERE), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            timeout=10,
        )
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    if head.returncode != 0:
        return "unknown (not a git checkout)"
    return head.stdout.strip() + (" with local changes" if dirty.stdout.strip() else "")


def _src_version() -> str:
    try:
        from mlfit import __version__

        return f"{__version__} (source tree)"
    except ImportError:
        return "unknown"


# ---------------------------------------------------------------- statistics
def median(values: Sequence[float]) -> float:
    return float(statistics.median(values)) if values else float("nan")


def spread(values: Sequence[float]) -> float:
    """max/min; the stability figure."""
    return max(values) / min(values) if values and min(values) > 0 else float("nan")


def fmt_time(seconds: float) -> str:
    if seconds != seconds:  # NaN
        return "-"
    if seconds < 1e-3:
        return f"{seconds * 1e6:.2f} µs"
    if seconds < 1.0:
        return f"{seconds * 1e3:.3f} ms"
    return f"{seconds:.2f} s"


def fmt_mib(n_bytes: float) -> str:
    return f"{n_bytes / 2**20:.1f} MiB"


def table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A GitHub markdown table; numbers are expected to be formatted already."""

    def cell(x: object) -> str:
        return str(x).replace("|", "\\|").replace("\n", " ")

    lines = ["| " + " | ".join(cell(h) for h in headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(cell(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


# ---------------------------------------------------------------- subprocesses
@dataclass
class Proc:
    """A finished subprocess with its wall time (perf_counter around spawn..exit)."""

    args: list[str]
    rc: int
    wall_s: float
    stdout: str
    stderr: str

    def last_error_line(self) -> str:
        lines = [ln for ln in (self.stderr or self.stdout).strip().splitlines() if ln.strip()]
        return lines[-1].strip() if lines else f"exit code {self.rc}"


def run(
    args: Sequence[str], env: dict[str, str] | None = None, timeout: float = 600.0, cwd: Path | None = None
) -> Proc:
    full_env = dict(os.environ)
    if env:
        full_env.update(env)
    t0 = time.perf_counter()
    try:
        done = subprocess.run(
            list(args),
            capture_output=True,
            text=True,
            env=full_env,
            timeout=timeout,
            cwd=cwd,
            stdin=subprocess.DEVNULL,
        )
    except subprocess.TimeoutExpired as exc:
        return Proc(list(args), 124, time.perf_counter() - t0, str(exc.stdout or ""), f"timed out after {timeout} s")
    wall = time.perf_counter() - t0
    return Proc(list(args), done.returncode, wall, done.stdout, done.stderr)


@dataclass
class MlfitRun:
    """One ``python -m mlfit ...`` invocation and the JSON it wrote."""

    proc: Proc
    report: dict[str, Any] | None

    @property
    def ok(self) -> bool:
        """Exit 0 or 1 (a failed budget is still a measurement) and a JSON result without error."""
        return (
            self.proc.rc in (0, 1)
            and self.report is not None
            and all(r.get("error") is None for r in self.report.get("results", []))
        )

    @property
    def results(self) -> list[dict[str, Any]]:
        return list(self.report.get("results", [])) if self.report else []

    @property
    def measurement(self) -> dict[str, Any]:
        return dict(self.results[0]["measurement"])

    @property
    def latency(self) -> dict[str, Any]:
        return dict(self.measurement["latency"])

    def phases(self) -> dict[str, float]:
        """Seconds spent per worker phase, summed over the results, plus the rest of the wall time.

        The launcher stamps when the worker enters each phase (memory_timeline.phases, seconds
        since the worker was spawned); a phase lasts until the next one, and the last ("done")
        until the last memory sample. "worker start-up" is interpreter start plus the worker's
        imports; "mlfit, outside the worker" is the wall time not spent in any worker: CLI
        start-up, static analysis, projection and the report. Empty when this build has no
        timeline.
        """
        out: dict[str, float] = {}
        worker_total = 0.0
        for result in self.results:
            measurement = result.get("measurement") or {}
            # measurement.memory_timeline (older builds kept it under measurement.extra)
            extra = measurement.get("extra") or {}
            timeline = measurement.get("memory_timeline") or extra.get("memory_timeline") or {}
            marks = [(str(name), float(t)) for name, t in timeline.get("phases", [])]
            if not marks:
                return {}
            end = max([t for t, _ in timeline.get("samples", [])] + [marks[-1][1]])
            out["worker start-up"] = out.get("worker start-up", 0.0) + marks[0][1]
            for (name, t), (_, t_next) in zip(marks, [*marks[1:], ("end", end)], strict=True):
                out[name] = out.get(name, 0.0) + max(0.0, t_next - t)
            worker_total += end
        out["mlfit, outside the worker"] = max(0.0, self.proc.wall_s - worker_total)
        return out

    def why(self) -> str:
        if self.results and self.results[0].get("error"):
            err = self.results[0]["error"]
            return str(err.get("message", err))
        return self.proc.last_error_line()


PHASE_WORDS = {
    "worker start-up": "worker start-up (interpreter and mlfit imports)",
    "start": "reading the request",
    "import": "runtime import",
    "load": "model load",
    "inputs": "input preparation",
    "first_inference": "first inference",
    "warmup": "warm-up",
    "measure": "timed loop",
    "throughput": "batched throughput",
    "profile": "node profiling (for projection)",
    "done": "host facts and result",
    "mlfit, outside the worker": "outside the worker (CLI start-up, static analysis, projection, report)",
}


def describe_phases(phases: dict[str, float], top: int = 0) -> str:
    """'timed loop 1.00 s, node profiling 0.90 s, ...', largest first (``top`` > 0 keeps that many)."""
    items = sorted(phases.items(), key=lambda kv: -kv[1])
    if top:
        items = items[:top]
    return ", ".join(f"{PHASE_WORDS.get(k, k)} {fmt_time(v)}" for k, v in items)


def mlfit(command: str, *args: str, env: dict[str, str] | None = None, timeout: float = 600.0) -> MlfitRun:
    """Run the CLI as a user would (``python -m mlfit COMMAND ... --json PATH -q``) and read the JSON."""
    with tempfile.TemporaryDirectory(prefix="mlfit-bench-") as tmp:
        out = Path(tmp) / "result.json"
        proc = run([PY, "-m", "mlfit", command, *args, "--json", str(out), "--quiet"], env=env, timeout=timeout)
        report = json.loads(out.read_text()) if out.exists() else None
    return MlfitRun(proc, report)


@dataclass
class BareRun:
    """One run of bare_onnxruntime.py (the hand-written baseline)."""

    proc: Proc
    data: dict[str, Any]

    @property
    def ok(self) -> bool:
        return self.proc.rc == 0 and bool(self.data)


def bare_onnxruntime(model: Path, *args: str, prefix: Sequence[str] = ()) -> BareRun:
    """Run the minimal onnxruntime script; it prints one JSON line with its figures."""
    proc = run([*prefix, PY, str(BARE_ORT), str(model), *args])
    data: dict[str, Any] = {}
    for line in reversed(proc.stdout.strip().splitlines()):
        if line.startswith("{"):
            data = json.loads(line)
            break
    return BareRun(proc, data)


# ---------------------------------------------------------------- models
CALIBRATION: dict[str, Any] = {}


def ensure_calibrated() -> None:
    """Run `mlfit calibrate` once, untimed, before anything is timed.

    `mlfit check` projects onto targets from a host calibration cached per host fingerprint;
    on a host without one, the first check would measure it (a few seconds) inside a timed
    run. A user pays that once per machine, so it is paid here at set-up and reported.
    """
    if CALIBRATION:
        return
    proc = run([PY, "-m", "mlfit", "calibrate"])
    CALIBRATION.update(rc=proc.rc, wall_s=proc.wall_s, note=proc.last_error_line() if proc.rc else "")


def build_models(work: Path) -> dict[str, Path]:
    """The models the benchmarks share, built once per work folder with mlfit's own zoo
    (and the host calibration made, so no timed run pays for it)."""
    from mlfit.zoo import builders

    ensure_calibrated()

    work.mkdir(parents=True, exist_ok=True)
    wanted = {"tiny_add": builders.tiny_add, "example": builders.example_model}
    paths = {}
    for name, build in wanted.items():
        path = work / f"{name}.onnx"
        if not path.exists():
            builders.save(build(), path)
        paths[name] = path
    return paths


def bench_threads() -> int:
    """The thread count mlfit picks for the `edge` target here (its 4 threads, capped at usable cores);
    both sides of every comparison get it explicitly."""
    return max(1, min(4, usable_cores()))


# ---------------------------------------------------------------- entry points
def quick_from_env() -> bool:
    return os.environ.get("MLFIT_BENCH_QUICK", "") not in ("", "0")


def timed_section(number: int, title: str, body_fn: Callable[[], tuple[str, list[Row]]]) -> Section:
    before = loadavg()
    t0 = time.perf_counter()
    body, rows = body_fn()
    return Section(number, title, body, rows, time.perf_counter() - t0, before, loadavg())


def main_for(run_fn: Callable[[Path, bool], Section], description: str) -> int:
    """The ``main()`` every benchmark script shares: run it, print its markdown section."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument(
        "--quick",
        action="store_true",
        default=quick_from_env(),
        help="tiny settings for a smoke run (also MLFIT_BENCH_QUICK=1)",
    )
    parser.add_argument("--work", type=Path, default=WORK_DEFAULT, help="folder for generated models")
    parser.add_argument("--out", type=Path, help="also write the markdown section to this file")
    ns = parser.parse_args()
    section = run_fn(ns.work, ns.quick)
    text = section.markdown()
    sys.stdout.write(text + "\n")
    if ns.out:
        ns.out.write_text(text)
    return 0
