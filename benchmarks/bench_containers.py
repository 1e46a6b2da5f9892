"""Item 11, container limits: p50, p99 and throughput of the example model under a CFS quota of
1, 0.5 and 0.25 CPU, at the runtime's default thread count and at threads matched to the quota.

    python benchmarks/bench_containers.py [--quick]

Each cell is one `mlfit check example.onnx --target pod.yaml --threads N` run: the worker runs
in a real cgroup with the pod's limits (docs/containers.md), so the figures are emulated. The
default thread count is what onnxruntime picks inside a container: the cores it sees (this
host's), since it ignores quotas. Cells run interleaved, quota by quota, so a busy moment of the
host hits both thread counts alike. Skipped, with the reason, where no cgroup can be made.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import benchlib as bl

QUOTAS = ("1", "500m", "250m")
POD = """\
apiVersion: v1
kind: Pod
metadata: {{name: bench}}
spec:
  containers:
    - name: model
      image: registry.example/model:1
      resources: {{limits: {{cpu: "{cpu}", memory: 2Gi}}}}
"""


def _cell(model: Path, pod: Path, threads: int, quick: bool) -> dict[str, float | str]:
    timing = ["--min-time", "1" if quick else "4", "--max-time", "4" if quick else "20", "--warmup", "5"]
    out = bl.mlfit("check", str(model), "--target", str(pod), "--threads", str(threads), "--dim", "batch=1",
                   *timing)
    if out.report is None:
        return {"error": out.proc.last_error_line() or f"exit {out.proc.rc}"}
    result = out.report["results"][0]
    if result.get("error"):
        return {"error": result["error"]["message"]}
    latency = result["measurement"]["latency"]
    emulation = result["targets"][0].get("emulation") or {}
    timed = emulation.get("throttling", {}).get("measure", {})
    share = timed.get("throttled_periods", 0) / timed["periods"] if timed.get("periods") else 0.0
    loop = next((p for p in (result["measurement"].get("contention") or {}).get("phases", [])
                 if p["phase"] == "measure"), None)
    tput = latency["n"] / loop["wall_s"] if loop and loop["wall_s"] else \
        result["measurement"]["throughput"]["single_stream_per_s"]
    return {"p50": latency["p50"], "p99": latency.get("p99") or latency["max"], "tput": tput, "throttled": share,
            "n": latency["n"]}


def body(work: Path, quick: bool) -> tuple[str, list[bl.Row]]:
    from mlfit.measure.cgroup import can_emulate

    reason = can_emulate()
    if reason is not None:
        why = f"no cgroup can be made here: {reason}"
        return f"Not run: {why}.", [bl.Row("11. container limits", "measured", "not run", bl.met(None, why))]
    model = bl.build_models(work)["example"]
    default_threads = bl.usable_cores()
    rows = []
    cells: dict[tuple[str, int], dict[str, float | str]] = {}
    with tempfile.TemporaryDirectory(prefix="mlfit-bench-pods-") as tmp:
        for cpu in QUOTAS:
            pod = Path(tmp) / f"pod-{cpu}.yaml"
            pod.write_text(POD.format(cpu=cpu))
            matched = 1  # every quota here rounds up to one CPU
            for threads in sorted({default_threads, matched}, reverse=True):
                cells[(cpu, threads)] = _cell(model, pod, threads, quick)
    for (cpu, threads), cell in cells.items():
        label = "runtime default" if threads == default_threads else "matched to quota"
        if "error" in cell:
            rows.append([cpu, f"{threads} ({label})", "-", "-", "-", "-", str(cell["error"])[:80]])
            continue
        rows.append([cpu, f"{threads} ({label})", bl.fmt_time(float(cell["p50"])), bl.fmt_time(float(cell["p99"])),
                     f"{float(cell['tput']):.1f}/s", f"{float(cell['throttled']):.0%}", f"n={cell['n']}"])
    full = cells.get(("1", 1), {})
    half = cells.get(("500m", 1), {})
    summary = []
    if "tput" in full and "tput" in half:
        ratio = float(half["tput"]) / float(full["tput"])
        ok = 0.4 <= ratio <= 0.6
        summary.append(bl.Row("11. container limits: throughput at 0.5 CPU / 1 CPU (1 thread)", "0.5 ± 20%",
                              f"{ratio:.2f}", bl.met(ok, "" if ok else "host load during the run")))
    text = [
        f"Example model, batch 1, emulated in a cgroup (CFS period 100 ms). Runtime default threads = "
        f"{default_threads} (the cores onnxruntime sees here); matched = the quota rounded up (1).",
        "'throttled' is the share of CFS periods of the timed loop in which the quota ran out; throughput is "
        "inferences per wall second of the timed loop (every wait for the next period counted).",
        "",
        bl.table(["CPU limit", "threads", "p50", "p99", "throughput", "throttled", "samples"], rows),
    ]
    return "\n".join(text), summary


def run(work: Path, quick: bool) -> bl.Section:
    return bl.timed_section(11, "Container limits: quota, threads and tail latency", lambda: body(work, quick))


if __name__ == "__main__":
    sys.exit(bl.main_for(run, __doc__.splitlines()[0]))
