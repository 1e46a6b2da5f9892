"""The parent side of a measurement: spawn the worker in its own process group, watch
its phases with a timeout each, and turn every way it can die into an explained error.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from array import array
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING

from mlfit.catalog.units import format_size
from mlfit.errors import ExitCode
from mlfit.lifeline import die_with_parent, kill_group
from mlfit.measure.protocol import SAMPLES_FILE, Phase, WorkerRequest, WorkerResponse
from mlfit.records import MemoryTimeline
from mlfit.result import Emulation, ErrorInfo, PartialTimings, Throttle

if TYPE_CHECKING:
    from mlfit.measure.cgroup import Cgroup, Limits, Throttling

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

    def for_worker(self, settings_max_time: float) -> dict[str, float]:
        """The bounds the worker's own watchdog enforces: a little later than the parent, which
        normally stops the worker first and keeps its partial timings."""
        return {phase.value: self.bound(phase, settings_max_time) + WORKER_GRACE_S for phase in Phase}


# The worker's watchdog gives the parent this long to act on a deadline before it acts itself.
WORKER_GRACE_S = 10.0


def _signal_name(returncode: int) -> str:
    try:
        return signal.Signals(-returncode).name
    except ValueError:
        return f"signal {-returncode}"


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    kill_group(proc.pid)


def _reader(stream: IO[bytes], events: queue.Queue[dict[str, object] | None]) -> None:
    # Lines are read 1 MiB at most at a time: a runtime printing gigabytes without a newline
    # cannot exhaust the parent (a cut line is not an event, and is skipped like any other).
    for raw in iter(lambda: stream.readline(1 << 20), b""):
        try:
            event = json.loads(raw)
        except ValueError:
            continue  # a runtime printing to stdout; not ours
        if isinstance(event, dict):
            events.put(event)
    events.put(None)


def _tail(path: Path, lines: int = 1) -> str:
    try:  # the last 64 KiB only: a worker's log can be as large as the model made it
        with path.open("rb") as fh:
            fh.seek(max(0, os.fstat(fh.fileno()).st_size - (1 << 16)))
            text = fh.read(1 << 16).decode("utf-8", "replace").strip().splitlines()
    except OSError:
        return ""
    return " | ".join(text[-lines:])


def _partial(timings: dict[str, float], scratch: Path) -> PartialTimings | None:
    """What the worker had measured before it stopped: cold-start figures and streamed samples."""
    samples: array[int] = array("q")
    try:
        data = (scratch / SAMPLES_FILE).read_bytes()
        samples.frombytes(data[: len(data) - len(data) % samples.itemsize])
    except OSError:
        pass
    if not timings and not samples:
        return None
    from mlfit.measure.stats import latency_stats

    return PartialTimings(import_s=timings.get("import_s"), load_s=timings.get("load_s"),
                          first_inference_s=timings.get("first_inference_s"),
                          latency=latency_stats(list(samples)) if samples else None)


def _kept(partial: PartialTimings | None) -> str:
    if partial is None:
        return ""
    if partial.latency is not None:
        return f"; partial timings kept ({partial.latency.n} samples, marked incomplete)"
    return "; partial cold-start timings kept (marked incomplete)"


def run_worker(request: WorkerRequest, runtime_label: str, timeouts: Timeouts | None = None,
               on_event: EventFn | None = None, memory_limit: int | None = None,
               limit_source: str = "--memory-limit", container: Limits | None = None) -> WorkerResponse:
    """Run one measurement in a fresh subprocess; never raises for a dying worker.

    A timeout, the memory ceiling or Ctrl-C (KeyboardInterrupt in this process) stops the
    worker's whole process group and returns an error with the partial timings.

    ``container``: run the worker in a cgroup with these limits (an emulated target); the
    response then carries an :class:`Emulation` record, and an OOM kill under the memory limit
    comes back as an error of kind ``oom`` with exit code 1 (a measured FAIL, not a broken run).
    """
    if container is None:
        return _run_worker(request, runtime_label, timeouts, on_event, memory_limit, limit_source, None)
    from mlfit.measure.cgroup import limited

    with limited(container) as group:
        request = request.model_copy(update={"confinement": group.expectation()})
        return _run_worker(request, runtime_label, timeouts, on_event, memory_limit, limit_source, group)


def _run_worker(request: WorkerRequest, runtime_label: str, timeouts: Timeouts | None,
                on_event: EventFn | None, memory_limit: int | None, limit_source: str,
                group: Cgroup | None) -> WorkerResponse:
    timeouts = timeouts or Timeouts()
    scratch = Path(request.scratch_dir)
    request_path = scratch / "request.json"
    out_path = scratch / "response.json"
    log_path = scratch / "worker.log"
    request = request.model_copy(update={"phase_deadlines_s": timeouts.for_worker(request.settings.max_time_s)})
    proc = _spawn(request, request_path, out_path, log_path, group)
    if isinstance(proc, ErrorInfo):
        return WorkerResponse(error=proc)
    assert proc.stdout is not None
    throttling = None
    if group is not None:
        from mlfit.measure.cgroup import Throttling

        group.attach(proc.pid)
        throttling = Throttling(group)
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
    stop: str | None = None  # "timeout", "memory" or "interrupted": why the parent stopped the worker
    timings: dict[str, float] = {}
    confined = False  # the worker confirmed its cgroup and limits from inside
    watcher = _MemoryWatch(proc.pid, memory_limit) if memory_limit else None
    # The kernel charges a page of a shared library to the cgroup that read it first: on this host the
    # runtime's libraries sit in a page cache charged elsewhere, which a fresh pod would pay for. So the
    # pod's OOM kill is also applied to the resident memory, libraries included (issue 23: 107.5 MiB
    # under a 90M limit and nothing was killed).
    pod = _MemoryWatch(proc.pid, group.limits.memory) if group is not None and group.limits.memory else None
    try:
        while True:
            if watcher is not None and watcher.exceeded():
                stop = "memory"
                break
            if pod is not None and pod.exceeded():
                stop = "oom"
                break
            if time.monotonic() >= deadline:
                stop = "timeout"
                break
            try:
                event = events.get(timeout=min(max(0.0, deadline - time.monotonic()), _POLL_S))
            except queue.Empty:
                continue
            if event is None:
                break
            if event.get("event") == "phase":
                phase = Phase(str(event["phase"]))
                if throttling is not None:
                    throttling.mark(phase.value)
                phase_marks.append((phase.value, round(time.time() - started, 4)))
                deadline = time.monotonic() + timeouts.bound(phase, request.settings.max_time_s)
            elif event.get("event") == "confined":
                confined = True
            elif event.get("event") == "timing":
                with contextlib.suppress(TypeError, ValueError):
                    timings[str(event["name"])] = float(event["value"])  # type: ignore[arg-type]
            if on_event is not None:
                on_event(event)
        if stop is None:
            try:
                proc.wait(timeout=timeouts.bound(Phase.DONE, 0.0))
            except subprocess.TimeoutExpired:
                stop = "timeout"  # closed its output but never exited
    except KeyboardInterrupt:
        stop = "interrupted"
    finally:
        _kill_group(proc)  # reap anything the worker left behind, even after a clean exit
        proc.wait()
        reader.join(timeout=5)
        poller.join(timeout=5)
    timeline = MemoryTimeline(
        source=f"RSS polled every {_POLL_INTERVAL_S:g} s with psutil (worker and its children); "
               "short spikes can fall between polls: peaks come from the kernel's high-water mark",
        samples=[(round(t - started, 4), int(mib * 2**20)) for mib, t in samples],
        phases=list(phase_marks),
    )
    bound = timeouts.bound(phase, request.settings.max_time_s)
    partial = _partial(timings, scratch) if stop is not None or proc.returncode else None
    emulation = _emulation(group, throttling, request.threads) if group is not None and throttling else None
    if emulation is not None and stop == "oom" and pod is not None:
        emulation = emulation.model_copy(update={"oom_killed": True})
    if emulation is not None and not confined and not emulation.oom_killed:
        return _unconfirmed(request, runtime_label, stop, phase, bound, partial, proc, memory_limit, limit_source,
                            log_path, out_path, timeline)
    if emulation is not None and emulation.oom_killed and stop in (None, "oom"):
        return _oom(runtime_label, emulation, phase, partial, pod.seen if stop == "oom" and pod else None)
    response = _response(request, runtime_label, stop, phase, bound, partial, proc, memory_limit, limit_source,
                         log_path, out_path, timeline)
    return response.model_copy(update={"emulation": emulation}) if emulation is not None else response


def _oom(runtime_label: str, emulation: Emulation, phase: Phase, partial: PartialTimings | None,
         resident: int | None) -> WorkerResponse:
    """An OOM kill under the container's memory limit: by the kernel, or on the resident memory
    (``resident``: the libraries' pages included, which a fresh pod is charged for)."""
    peak = f"; the cgroup's peak was {format_size(emulation.cgroup_peak_bytes)}" \
        if emulation.cgroup_peak_bytes else ""
    if resident is not None:
        peak = (f"; its resident memory reached {format_size(resident)} (the runtime's libraries included, "
                "which a fresh pod is charged for)")
    return WorkerResponse(emulation=emulation, error=ErrorInfo(
        kind="oom", phase=phase.value, exit_code=int(ExitCode.BUDGET_FAILED), partial=partial,
        message=f"{runtime_label} was killed by the OOM killer under the container's memory limit of "
                f"{format_size(emulation.memory_bytes or 0)} while {phase.doing}{peak}{_kept(partial)}",
        hint="the model does not fit the container: raise the memory limit, or use a smaller model or batch"))


def _spawn(request: WorkerRequest, request_path: Path, out_path: Path, log_path: Path,
           group: Cgroup | None) -> subprocess.Popen[bytes] | ErrorInfo:
    """Start the worker, or say which resource stopped it (a full disk, `ulimit -n`)."""
    scratch = request_path.parent
    try:
        request_path.write_text(request.model_dump_json())
        log = open(log_path, "wb")  # noqa: SIM115 - closed right after the spawn
    except OSError as exc:
        return resource_error(exc, scratch, Phase.START)
    from mlfit.measure import spare

    if group is None:  # a worker started ahead is told its request (mlfit.measure.spare)
        waiting = spare.take(str(request_path), str(out_path), str(log_path))
        if waiting is not None:  # it writes its own log (created here, empty)
            log.close()
            return waiting
    # Everything the worker and the libraries it loads write through tempfile (MLPerf LoadGen's
    # logs, runtime caches) lands in the scratch folder, removed with it.
    env = spare.worker_env(str(scratch))
    command = [sys.executable, "-m", "mlfit.measure.worker", str(request_path), str(out_path)]
    # Its own session: one killpg stops it and all it spawned, and a terminal's Ctrl-C reaches the
    # parent alone, which keeps the partial timings. The parent's death still kills it
    # (mlfit.lifeline explains how: the parent-death signal, and the worker's own watchdog).
    try:
        return subprocess.Popen(
            [*(group.wrapper if group else []), *command], stdout=subprocess.PIPE, stderr=log,
            stdin=subprocess.DEVNULL, start_new_session=True, env=env,
            preexec_fn=die_with_parent(group.join_self if group and not group.wrapper else None),
        )
    except OSError as exc:  # EMFILE (ulimit -n), EAGAIN (process limit), ENOMEM
        return resource_error(exc, scratch, Phase.START)
    finally:
        log.close()


def _unconfirmed(request: WorkerRequest, runtime_label: str, stop: str | None, phase: Phase, bound: float,
                 partial: PartialTimings | None, proc: subprocess.Popen[bytes], memory_limit: int | None,
                 limit_source: str, log_path: Path, out_path: Path, timeline: MemoryTimeline) -> WorkerResponse:
    """A worker under container limits that never confirmed them from inside: its figures are not
    emulated. It refused (limits not in place: exit 2), or stopped before it could say (its own
    error, without the emulated label)."""
    from mlfit.errors import ConfigError

    response = _response(request, runtime_label, stop, phase, bound, partial, proc, memory_limit, limit_source,
                         log_path, out_path, timeline)
    error = response.error
    if error is not None and error.kind == "limits":
        raise ConfigError(error.message, error.hint)
    if error is None:
        raise ConfigError("the container's limits are not in place: the worker did not confirm its cgroup "
                          "and limits from inside", "nothing is labelled emulated; this looks like a bug in mlfit")
    return response


def _emulation(group: Cgroup, throttling: Throttling, threads: int) -> Emulation:
    throttling.mark("done")
    memory = group.memory_stat()
    limits = group.limits
    return Emulation(
        method=group.method, cpu=limits.cpu, memory_bytes=limits.memory, cpuset=limits.cpuset, threads=threads,
        throttling={name: Throttle(periods=c.periods, throttled_periods=c.throttled_periods,
                                   throttled_s=c.throttled_s)
                    for name, c in throttling.phases.items() if c.periods},
        cgroup_peak_bytes=memory.peak_bytes, oom_killed=memory.oom_kills > 0)


def _response(request: WorkerRequest, runtime_label: str, stop: str | None, phase: Phase, bound: float,
              partial: PartialTimings | None, proc: subprocess.Popen[bytes], memory_limit: int | None,
              limit_source: str, log_path: Path, out_path: Path, timeline: MemoryTimeline) -> WorkerResponse:
    """The worker's answer, or the explained error of how it stopped."""
    if stop == "interrupted":
        return WorkerResponse(error=ErrorInfo(
            kind="interrupted", phase=phase.value, exit_code=int(ExitCode.INTERRUPTED), partial=partial,
            message=f"interrupted while {phase.doing}; the measurement worker was stopped{_kept(partial)}",
            hint="the report is marked incomplete"))
    if stop == "timeout":
        return WorkerResponse(error=ErrorInfo(
            kind="timeout", phase=phase.value, exit_code=int(ExitCode.MODEL), partial=partial,
            message=f"{runtime_label} timed out after {bound:g} s in {phase.value} ({phase.doing}); "
                    f"the worker's process group was killed{_kept(partial)}",
            hint="raise the bound with --timeout SECONDS if the model is just slow"))
    if stop == "memory":
        assert memory_limit is not None
        return WorkerResponse(error=ErrorInfo(
            kind="memory", phase=phase.value, exit_code=int(ExitCode.MODEL), partial=partial,
            message=f"{runtime_label} exceeded the memory limit of {memory_limit / 2**20:.0f} MiB "
                    f"({limit_source}) while {phase.doing}; stopped so the host does not swap"
                    f"{_kept(partial)}",
            hint="the model does not fit this limit; raise --memory-limit to measure anyway"))
    if proc.returncode and proc.returncode < 0:
        name = _signal_name(proc.returncode)
        cause = " (likely killed for using too much memory)" if name == "SIGKILL" else ""
        return WorkerResponse(error=ErrorInfo(
            kind="crash", phase=phase.value, exit_code=int(ExitCode.MODEL), partial=partial,
            message=f"{runtime_label} crashed ({name}) while {phase.doing}{cause}{_kept(partial)}",
            hint=f"worker log: {log_path}" if _tail(log_path) else "the runtime died without a message"))
    if not out_path.exists():
        detail = _tail(log_path, 3)
        if "No space left on device" in detail or _full(log_path.parent):
            return WorkerResponse(error=resource_error(OSError(errno.ENOSPC, "No space left on device"),
                                                       log_path.parent, phase, partial))
        # The log goes with the scratch folder: its last lines are the message.
        return WorkerResponse(error=ErrorInfo(
            kind="crash", phase=phase.value, exit_code=int(ExitCode.MODEL), partial=partial,
            message=f"the measurement worker exited with code {proc.returncode} while {phase.doing}"
                    + (f": {detail}" if detail else ""),
            hint="the worker's last words are quoted above" if detail else "the worker died without a message"))
    from mlfit import safeio

    raw = safeio.read_bounded(out_path, "report", "the worker's result")  # regular file, capped
    response = WorkerResponse.model_validate_json(raw).model_copy(update={"timeline": timeline})
    if response.error is not None and not response.error.phase:
        hint = response.error.hint
        if response.error.kind == "bug":
            hint = f"{hint}: {log_path}"
        response = response.model_copy(update={"error": response.error.model_copy(
            update={"phase": phase.value, "hint": hint})})
    return response


# How often the parent looks at the worker (deadline, memory). The children of the worker
# are listed less often: psutil walks all of /proc for that, which would disturb timing.
_POLL_S = 0.1
_CHILDREN_EVERY_S = 2.0


_POLL_INTERVAL_S = 0.1


def _poll_rss(proc: subprocess.Popen[bytes], samples: list[tuple[float, float]]) -> None:
    """A memory timeline for plots: (MiB, time) of the worker and its children until it exits.

    Read with psutil, as memory-profiler's ``memory_usage`` did; that package cost the CLI 0.17 s of
    CPU to import (asyncio and more) on every check. The children are listed every 2 s, not on every
    poll: psutil walks all of /proc for that, beside the timed loop."""
    import psutil

    with contextlib.suppress(psutil.Error, OSError, ValueError):
        watch = _MemoryWatch(proc.pid, 0)
        while True:
            total = watch.total()
            if total:  # none or 0: the worker has exited (a zombie has nothing resident)
                samples.append((total / 2**20, time.time()))
            time.sleep(_POLL_INTERVAL_S)
            if proc.poll() is not None:
                break


class _MemoryWatch:
    """Polls the resident memory of the worker and its children against a ceiling.

    Polling can miss a short spike, but a model that does not fit stays over the limit;
    the peak itself is measured by the kernel in the worker.
    """

    def __init__(self, pid: int, limit: int) -> None:
        import psutil

        self.limit = limit
        self.seen = 0  # the highest total polled
        self.process = psutil.Process(pid)
        self.children: list[psutil.Process] = []
        self.listed = 0.0

    def total(self) -> int | None:
        """Resident bytes of the worker and its children now; None once the worker is gone."""
        import psutil

        try:
            total = int(self.process.memory_info().rss)
            now = time.monotonic()
            if now - self.listed >= _CHILDREN_EVERY_S:
                self.children = self.process.children(recursive=True)
                self.listed = now
        except psutil.Error:
            return None
        for child in self.children:
            with contextlib.suppress(psutil.Error):
                total += child.memory_info().rss
        self.seen = max(self.seen, total)
        return total

    def exceeded(self) -> bool:
        total = self.total()
        return total is not None and total > self.limit


@contextlib.contextmanager
def scratch_dir() -> Iterator[str]:
    """The run's scratch folder, with mlfit's owner marker (stale ones are swept: mlfit.scratch)."""
    from mlfit.scratch import run_folder

    with run_folder("mlfit-") as folder:
        yield str(folder)


def _full(folder: Path) -> bool:
    """Less than 64 KiB left where the worker writes: its log and result could not be written."""
    try:
        stat = os.statvfs(folder)
    except OSError:
        return False
    return stat.f_bavail * stat.f_frsize < 64 * 1024


def resource_error(exc: OSError, folder: Path, phase: Phase, partial: PartialTimings | None = None) -> ErrorInfo:
    """One line naming the resource that ran out and its fix: a full disk names the folder, too many
    open files names `ulimit -n`."""
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        message = (f"the disk of the scratch folder {folder} is full (No space left on device) while "
                   f"{phase.doing}")
        hint = f"free space in {folder.parent}, or set TMPDIR to a folder with room"
    elif exc.errno in (errno.EMFILE, errno.ENFILE):
        import resource

        soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
        message = f"too many open files (this process may open {soft}: ulimit -n) while {phase.doing}"
        hint = "raise the limit, e.g. `ulimit -n 1024`, and run again"
    else:
        message = f"cannot start the measurement worker in {folder}: {exc.strerror or exc}"
        hint = "check the temporary folder (TMPDIR) and the process limits (ulimit -u, ulimit -n)"
    return ErrorInfo(kind="resource", phase=phase.value, exit_code=int(ExitCode.MODEL), partial=partial,
                     message=message + _kept(partial), hint=hint)
