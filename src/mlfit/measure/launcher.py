"""The parent side of a measurement: spawn the worker in its own process group, watch
its phases with a timeout each, and turn every way it can die into an explained error.
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from mlfit.errors import ExitCode
from mlfit.measure.protocol import Phase, WorkerRequest, WorkerResponse
from mlfit.result import ErrorInfo

EventFn = Callable[[dict[str, object]], None]

# Default per-phase bounds (seconds). Finite on purpose: a CI job must never hang.
# --timeout raises or lowers every phase's bound at once.
DEFAULT_TIMEOUTS: dict[Phase, float] = {
    Phase.START: 60.0,
    Phase.IMPORT: 120.0,
    Phase.LOAD: 300.0,
    Phase.INPUTS: 60.0,
    Phase.FIRST_INFERENCE: 120.0,
    Phase.WARMUP: 120.0,
    Phase.MEASURE: 120.0,  # on top of the loop's own max time
    Phase.THROUGHPUT: 120.0,
    Phase.PROFILE: 300.0,
    Phase.SCENARIO: 120.0,  # on top of the loop's max time; re-armed at each run of the scenario
    Phase.DONE: 60.0,
}


@dataclass
class Timeouts:
    per_phase: dict[Phase, float] = field(default_factory=lambda: dict(DEFAULT_TIMEOUTS))

    @classmethod
    def uniform(cls, seconds: float) -> Timeouts:
        return cls({phase: seconds for phase in Phase})

    def bound(self, phase: Phase, settings_max_time: float) -> float:
        extra = settings_max_time if phase in (Phase.MEASURE, Phase.THROUGHPUT, Phase.SCENARIO) else 0.0
        return self.per_phase[phase] + extra


def _signal_name(returncode: int) -> str:
    try:
        return signal.Signals(-returncode).name
    except ValueError:
        return f"signal {-returncode}"


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    """Kill the worker and anything it left behind (it leads its own process group)."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)


def _reader(stream: IO[bytes], events: queue.Queue[dict[str, object] | None]) -> None:
    for raw in stream:
        try:
            event = json.loads(raw)
        except ValueError:
            continue  # a runtime printing to stdout; not ours
        if isinstance(event, dict):
            events.put(event)
    events.put(None)


def _tail(path: Path, lines: int = 1) -> str:
    try:
        text = path.read_text(errors="replace").strip().splitlines()
    except OSError:
        return ""
    return " | ".join(text[-lines:])


def run_worker(request: WorkerRequest, runtime_label: str, timeouts: Timeouts | None = None,
               on_event: EventFn | None = None, memory_limit: int | None = None) -> WorkerResponse:
    """Run one measurement in a fresh subprocess; never raises for a dying worker."""
    timeouts = timeouts or Timeouts()
    scratch = Path(request.scratch_dir)
    request_path = scratch / "request.json"
    out_path = scratch / "response.json"
    log_path = scratch / "worker.log"
    request_path.write_text(request.model_dump_json())
    env = dict(os.environ)
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    env["PYTHONUNBUFFERED"] = "1"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "mlfit.measure.worker", str(request_path), str(out_path)],
            stdout=subprocess.PIPE, stderr=log, stdin=subprocess.DEVNULL, start_new_session=True, env=env,
        )
    assert proc.stdout is not None
    started = time.time()
    phase_marks: list[tuple[str, float]] = []
    samples: list[tuple[float, float]] = []
    poller = threading.Thread(target=_poll_rss, args=(proc, samples), daemon=True)
    poller.start()
    events: queue.Queue[dict[str, object] | None] = queue.Queue()
    reader = threading.Thread(target=_reader, args=(proc.stdout, events), daemon=True)
    reader.start()
    phase = Phase.START
    deadline = time.monotonic() + timeouts.bound(phase, request.settings.max_time_s)
    timed_out = False
    over_memory = False
    watcher = _MemoryWatch(proc.pid, memory_limit) if memory_limit else None
    try:
        while True:
            wait = max(0.0, deadline - time.monotonic())
            try:
                event = events.get(timeout=min(wait, 0.2))
            except queue.Empty:
                if watcher is not None and watcher.exceeded():
                    over_memory = True
                    _kill_group(proc)
                    break
                if time.monotonic() >= deadline:
                    timed_out = True
                    _kill_group(proc)
                    break
                continue
            if event is None:
                break
            if event.get("event") == "phase":
                phase = Phase(str(event["phase"]))
                phase_marks.append((phase.value, round(time.time() - started, 4)))
                deadline = time.monotonic() + timeouts.bound(phase, request.settings.max_time_s)
            if on_event is not None:
                on_event(event)
        proc.wait(timeout=30)
    except BaseException:
        _kill_group(proc)
        proc.wait()
        raise
    finally:
        _kill_group(proc)  # reap anything the worker left behind, even after a clean exit
        reader.join(timeout=5)
        poller.join(timeout=5)
    timeline = {
        "source": f"RSS polled every {_POLL_INTERVAL_S:g} s with memory-profiler (worker and its children); "
                  "short spikes can fall between polls: peaks come from the kernel's high-water mark",
        "samples": [[round(t - started, 4), int(mib * 2**20)] for mib, t in samples],
        "phases": [list(mark) for mark in phase_marks],
    }
    bound = timeouts.bound(phase, request.settings.max_time_s)
    if timed_out:
        return WorkerResponse(error=ErrorInfo(
            kind="timeout", phase=phase.value, exit_code=int(ExitCode.MODEL),
            message=f"{runtime_label} timed out after {bound:g} s in {phase.value} ({phase.doing})",
            hint="raise the bound with --timeout SECONDS if the model is just slow"))
    if over_memory:
        assert memory_limit is not None
        return WorkerResponse(error=ErrorInfo(
            kind="memory", phase=phase.value, exit_code=int(ExitCode.MODEL),
            message=f"{runtime_label} exceeded the memory limit of {memory_limit / 2**20:.0f} MiB while "
                    f"{phase.doing}; stopped so the host does not swap",
            hint="the model does not fit this limit; raise --memory-limit to measure anyway"))
    if proc.returncode and proc.returncode < 0:
        name = _signal_name(proc.returncode)
        cause = " (likely killed for using too much memory)" if name == "SIGKILL" else ""
        return WorkerResponse(error=ErrorInfo(
            kind="crash", phase=phase.value, exit_code=int(ExitCode.MODEL),
            message=f"{runtime_label} crashed ({name}) while {phase.doing}{cause}",
            hint=f"worker log: {log_path}" if _tail(log_path) else "the runtime died without a message"))
    if not out_path.exists():
        detail = _tail(log_path)
        return WorkerResponse(error=ErrorInfo(
            kind="crash", phase=phase.value, exit_code=int(ExitCode.MODEL),
            message=f"the measurement worker exited with code {proc.returncode} while {phase.doing}"
                    + (f": {detail}" if detail else ""),
            hint=f"worker log: {log_path}"))
    response = WorkerResponse.model_validate_json(out_path.read_text()).model_copy(update={"timeline": timeline})
    if response.error is not None and not response.error.phase:
        hint = response.error.hint
        if response.error.kind == "bug":
            hint = f"{hint}: {log_path}"
        response = response.model_copy(update={"error": response.error.model_copy(
            update={"phase": phase.value, "hint": hint})})
    return response


_POLL_INTERVAL_S = 0.1


def _poll_rss(proc: subprocess.Popen[bytes], samples: list[tuple[float, float]]) -> None:
    """A memory timeline for plots (memory-profiler polls until the worker exits)."""
    import psutil
    from memory_profiler import memory_usage

    with contextlib.suppress(psutil.Error, OSError, ValueError):
        samples.extend(memory_usage(proc=proc, interval=_POLL_INTERVAL_S, timestamps=True, include_children=True))


class _MemoryWatch:
    """Polls the resident memory of the worker's whole process group against a ceiling.

    Polling can miss a short spike, but a model that does not fit stays over the limit;
    the peak itself is measured by the kernel in the worker.
    """

    def __init__(self, pid: int, limit: int) -> None:
        import psutil

        self.limit = limit
        self.process = psutil.Process(pid)

    def exceeded(self) -> bool:
        import psutil

        try:
            total = self.process.memory_info().rss
            for child in self.process.children(recursive=True):
                total += child.memory_info().rss
        except psutil.Error:
            return False
        return total > self.limit


def scratch_dir() -> tempfile.TemporaryDirectory[str]:
    return tempfile.TemporaryDirectory(prefix="mlfit-")
