"""The child side of a measurement. Run as ``python -m mlfit.measure.worker REQUEST OUT``.

Only this process imports a runtime. It reports phases on stdout and writes its answer
to OUT; the parent turns signals, timeouts and errors into explained results.
"""

from __future__ import annotations

import errno
import json
import os
import signal
import sys
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlfit.lifeline import Watchdog, die_with_parent
from mlfit.measure.memory import PeakTracker

_tracker = PeakTracker()
_INTERPRETER_BYTES = _tracker.current()

from mlfit.backends.base import Backend, LoadOptions, create_backend  # noqa: E402
from mlfit.backends.feeds import build_feeds, data_shapes, fill_for, load_data  # noqa: E402
from mlfit.catalog.schema import Runtime  # noqa: E402
from mlfit.errors import ExitCode, MlfitError  # noqa: E402
from mlfit.inputspec import batch_free, refuse_unranged_integers, resolve_shapes  # noqa: E402
from mlfit.measure.contention import phase_record, snapshot  # noqa: E402
from mlfit.measure.host import host_info  # noqa: E402
from mlfit.measure.protocol import SAMPLES_FILE, Phase, WorkerRequest, WorkerResponse  # noqa: E402
from mlfit.measure.stats import latency_stats, quality_warnings  # noqa: E402
from mlfit.measure.timing import LoopPolicy, process_age_s, timed_loop, warm_up, warm_up_converged  # noqa: E402
from mlfit.records import BatchPoint, NodeProfile, RuntimeDetails, ScenarioRuns  # noqa: E402
from mlfit.result import (  # noqa: E402
    ColdStart,
    Contention,
    ErrorInfo,
    LatencyStats,
    Measurement,
    MemoryPhases,
    PhaseContention,
    ReferenceKernel,
    TensorInfo,
    Throughput,
)

# Test hook: MLFIT_WORKER_FAULT=PHASE:SIGNAL makes the worker kill itself with a real
# signal when it enters PHASE (e.g. "load:SIGSEGV", "measure:SIGABRT", "load:hang"), so the
# parent's crash handling is tested against a real dying process. "measure:stall" lets the
# timed loop run for a second, then hangs inside one inference (partial samples are kept).
_FAULT = os.environ.get("MLFIT_WORKER_FAULT", "")

# Ends this worker when its parent is gone or a phase overran (set up in main()).
_watchdog: Watchdog | None = None
_deadlines: dict[str, float] = {}
_waited_s = 0.0  # a spare's wait for its request: not part of its process start (mlfit.measure.spare)


def emit(event: str, **fields: Any) -> None:
    sys.stdout.write(json.dumps({"event": event, **fields}) + "\n")
    sys.stdout.flush()


def enter(phase: Phase) -> None:
    emit("phase", phase=phase.value)
    if _watchdog is not None:
        _watchdog.arm(_deadlines.get(phase.value))
    if _FAULT and _FAULT.split(":")[0] == phase.value:
        action = _FAULT.split(":", 1)[1]
        if action == "hang":
            while True:
                time.sleep(1)
        if action in ("orphan", "escape"):  # leave a child behind that the parent must kill
            import subprocess

            # "escape": the child leaves the process group (its own session), so killpg misses it
            # Any child of the worker dies with it, as the worker dies with mlfit (mlfit.lifeline).
            subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"],
                             start_new_session=action == "escape", preexec_fn=die_with_parent())
            while True:
                time.sleep(1)
        if action == "stall":
            return
        if action == "spike":  # a short 200 MB allocation spike, then carry on
            block = bytearray(200 * 2**20)
            for i in range(0, len(block), 4096):
                block[i] = 1
            del block
            return
        os.kill(os.getpid(), getattr(signal, action))


def _stalling(run: Any) -> Any:
    """The "stall" fault: inferences return normally for a second, then one never returns."""
    start = time.monotonic()

    def stalled(feed: Any) -> Any:
        while time.monotonic() - start > 1.0:
            time.sleep(1)
        return run(feed)

    return stalled


class _SampleStream:
    """Appends the timed loop's samples to a file as they come (raw int64, cheap next to a
    JSON line), so the parent keeps them when it has to stop the worker mid-loop."""

    def __init__(self, path: Path) -> None:
        self.samples: list[int] = []
        self.sent = 0
        self.file = path.open("ab")

    def __call__(self, n: int, elapsed: float) -> None:
        from array import array

        array("q", self.samples[self.sent:n]).tofile(self.file)
        self.file.flush()
        self.sent = n
        emit("progress", phase="measure", n=n, elapsed=elapsed)


def _batched_feeds(inputs: list[TensorInfo], feeds: list[dict[str, Any]], batch: int) -> list[dict[str, Any]] | None:
    """Feeds with the leading dim set to ``batch`` when every input's leading dim is free."""
    import numpy as np

    if not batch_free(inputs):
        return None
    out: dict[str, Any] = {}
    for tensor in inputs:
        array = feeds[0][tensor.name]
        reps = (batch // max(1, array.shape[0])) + 1
        out[tensor.name] = np.concatenate([array] * reps, axis=0)[:batch]
    return [out]


def _device_label(runtime: Runtime, details: dict[str, Any], requested: str) -> str:
    """What executed the model: onnxruntime's provider, or the other runtimes' own CPU path
    (an "execution provider" is an onnxruntime word; a TensorFlow run never had one)."""
    if runtime is Runtime.ONNXRUNTIME:
        return str(details.get("providers", [requested])[0])
    if runtime is Runtime.TFLITE:
        return f"{details.get('interpreter', 'tflite')} interpreter, CPU"
    return {Runtime.TENSORFLOW: "TensorFlow CPU", Runtime.SKLEARN: "scikit-learn (NumPy, CPU)"}.get(
        runtime, f"{runtime.value} CPU")


WARMUP_FLOOR_S = 0.05  # the shortest warm-up, converged or not
CPU_CLOCK_MIN_CALL_S = 50e-6  # calls shorter than this get no CPU clock reads in the timed loop


def _reference_timer() -> Any:
    """The interleaved reference kernel (mlfit.measure.refkernel), or None where it cannot run."""
    try:
        from mlfit.measure.refkernel import ReferenceTimer

        return ReferenceTimer()
    except Exception:  # never lose a measurement to the reference kernel
        return None


@dataclass
class _Run:
    """What one measurement gathers, phase by phase (each phase function fills its part)."""

    request: WorkerRequest
    runtime: Runtime
    backend: Backend
    import_s: float
    baseline: int  # bytes after the runtime's import: the model's cost is measured above it
    process_start_s: float | None = None  # process start until the runtime's import: part of a cold start
    load_s: float = 0.0
    load_peak: int = 0
    inference_peak: int = 0
    declared: list[TensorInfo] = field(default_factory=list)
    data: dict[str, Any] = field(default_factory=dict)
    shapes: dict[str, list[int]] = field(default_factory=dict)
    quantization: dict[str, Any] = field(default_factory=dict)
    feeds: list[Any] = field(default_factory=list)
    used: list[TensorInfo] = field(default_factory=list)
    run: Any = None
    first_s: float = 0.0
    contention: list[PhaseContention] = field(default_factory=list)
    per_call: float = 0.0
    stats: LatencyStats | None = None
    throughput: Throughput | None = None
    load_extra: dict[str, Any] = field(default_factory=dict)
    load_warnings: list[str] = field(default_factory=list)
    node_profile: NodeProfile | None = None
    reference: ReferenceKernel | None = None


def measure(request: WorkerRequest) -> WorkerResponse:
    """Every phase in order: import and load, inputs, first inference, warm-up, the timed loop,
    batched throughput, load scenarios, the node profile; then the answer."""
    state = _load(request)
    _inputs(state)
    _cold(state)
    _warmup(state)
    _timed(state)
    _throughput(state)
    _scenarios(state)
    _profile(state)
    return _answer(state)


def _load(request: WorkerRequest) -> _Run:
    """Import the runtime (its own figure and memory baseline), then load the model."""
    runtime = Runtime(request.runtime)
    enter(Phase.IMPORT)
    age = process_age_s()
    process_start_s = None if age is None else max(0.0, age - _waited_s)
    t0 = time.perf_counter()
    backend: Backend = create_backend(runtime)
    import_s = time.perf_counter() - t0
    emit("timing", name="import_s", value=import_s)
    state = _Run(request=request, runtime=runtime, backend=backend, import_s=import_s, baseline=_tracker.current(),
                 process_start_s=process_start_s)
    _tracker.reset()

    enter(Phase.LOAD)
    options = LoadOptions(
        threads=request.threads, execution_provider=request.execution_provider, trust_model=request.trust_model,
        trust_types=tuple(request.trust_types), signature=request.signature, method=request.method,
        custom_op_libraries=tuple(request.custom_op_libraries), enable_arena=request.enable_arena,
        extra={"profile_dir": request.scratch_dir},
    )
    t0 = time.perf_counter()
    backend.load(request.model_path, options)
    state.load_s = time.perf_counter() - t0
    emit("timing", name="load_s", value=state.load_s)
    state.load_peak = _tracker.peak()
    return state


def _inputs(state: _Run) -> None:
    """The model's declared inputs, their shapes and values (refusing unranged integer inputs)."""
    request, backend = state.request, state.backend
    enter(Phase.INPUTS)
    state.declared = backend.inputs()
    state.data = load_data(request.input_spec)
    state.shapes = resolve_shapes(state.declared, request.input_spec, data_shapes(state.declared, state.data))
    state.quantization = backend.quantization()
    refuse_unranged_integers(state.declared, request.input_spec, set(state.data), set(state.quantization))
    state.feeds = [backend.prepare(f) for f in build_feeds(state.declared, state.shapes, request.input_spec,
                                                           state.data, state.quantization)]
    state.used = [TensorInfo(name=t.name, dtype=t.dtype, shape=list(state.shapes[t.name]),
                             fill=fill_for(t, request.input_spec, set(state.data), state.quantization.get(t.name)))
                  for t in state.declared]
    _tracker.reset()


def _cold(state: _Run) -> None:
    """The first inference, timed on its own (cold start never leaks into warm percentiles)."""
    enter(Phase.FIRST_INFERENCE)
    state.run = state.backend.runner()
    t0 = time.perf_counter()
    try:
        state.run(state.feeds[0])
    except MlfitError:
        raise
    except Exception as exc:
        message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise MlfitError(
            f"{state.runtime.value} failed on the first inference: {message}",
            "check input shapes and values: --shape, --dim, --value INPUT=N for scalars such as a sample rate, "
            "--range INPUT=LOW:HIGH for indices, or real --data",
            ExitCode.MODEL) from None
    state.first_s = time.perf_counter() - t0
    emit("timing", name="first_inference_s", value=state.first_s)


def _warmup(state: _Run) -> None:
    settings = state.request.settings
    enter(Phase.WARMUP)
    before = snapshot()
    # Until the call time settles (successive windows' medians within 5%), at least WARMUP_FLOOR_S;
    # one that does not settle stops at warmup_time_s, the fixed warm-up this replaced.
    warm = warm_up_converged(state.run, state.feeds, settings.warmup_iterations,
                             min(WARMUP_FLOOR_S, settings.warmup_time_s), settings.warmup_time_s,
                             max(settings.warmup_time_s * 10, 5.0))
    if settings.hold_path and _hold(Path(settings.hold_path)):  # waited: warm up again, briefly
        warm = warm_up_converged(state.run, state.feeds, 1, 0.0, settings.warmup_time_s,
                                 max(settings.warmup_time_s * 10, 5.0))
    after = snapshot()
    state.contention.append(phase_record(Phase.WARMUP.value, before, after, state.request.threads))
    # The CPU clock is a system call (~0.2-0.6 µs): beside a call of a few µs it moved the measured
    # p50 by ~2%, and a call that short is seldom interrupted anyway, so it is read only for longer calls.
    state.per_call = warm.median_s


HOLD_MAX_S = 30.0  # the longest wait for the parent's work beside this one (under the 120 s phase bound)


def _hold(path: Path) -> bool:
    """Wait, idle, until the parent creates ``path`` (its static analysis is done), so the timed
    loop never shares the CPUs with it; whether there was anything to wait for."""
    if path.exists():
        return False
    deadline = time.monotonic() + HOLD_MAX_S
    while not path.exists() and time.monotonic() < deadline:
        time.sleep(0.005)
    return True


def _timed(state: _Run) -> None:
    """The timed loop: wall and (for calls long enough) CPU time per call, streamed as it goes."""
    request, settings = state.request, state.request.settings
    enter(Phase.MEASURE)
    policy = LoopPolicy(min_samples=settings.min_samples, min_time_s=settings.min_time_s,
                        max_time_s=settings.max_time_s)
    stream = _SampleStream(Path(request.scratch_dir) / SAMPLES_FILE)
    timed = _stalling(state.run) if _FAULT == "measure:stall" else state.run
    cpu_samples: list[int] = []
    before = snapshot()
    samples = timed_loop(timed, state.feeds, policy, progress=stream, samples=stream.samples,
                         cpu=cpu_samples if state.per_call >= CPU_CLOCK_MIN_CALL_S else None)
    state.contention.append(phase_record(Phase.MEASURE.value, before, snapshot(), request.threads))
    state.inference_peak = _tracker.peak()
    state.stats = latency_stats(samples).model_copy(update={"cpu_samples_ns": cpu_samples[: len(samples)]})


def _throughput(state: _Run) -> None:
    """Single-stream throughput from the timed loop; batched throughput where the batch dim is free."""
    request, settings, stats = state.request, state.request.settings, state.stats
    assert stats is not None
    state.throughput = Throughput(single_stream_per_s=1.0 / stats.mean if stats.mean > 0 else 0.0)
    if not settings.batch_size or settings.batch_size <= 1:
        return
    fresh = [dict(f) for f in build_feeds(state.declared, state.shapes, request.input_spec, state.data,
                                          state.quantization)]
    batched = _batched_feeds(state.declared, fresh, settings.batch_size)
    if batched is None:
        return
    enter(Phase.THROUGHPUT)
    prepared = [state.backend.prepare(f) for f in batched]
    warm_up(state.run, prepared, 3, 0.1, 5.0)
    batch_policy = LoopPolicy(min_samples=30, min_time_s=min(1.0, settings.min_time_s),
                              max_time_s=max(2.0, settings.max_time_s / 4))
    batch_stats = latency_stats(timed_loop(state.run, prepared, batch_policy))
    state.throughput = Throughput(single_stream_per_s=state.throughput.single_stream_per_s,
                                  batch_size=settings.batch_size,
                                  batched_per_s=settings.batch_size / batch_stats.mean,
                                  batched_latency=batch_stats.model_copy(update={"samples_ns": []}))
    state.inference_peak = max(state.inference_peak, _tracker.peak())


def _scenarios(state: _Run) -> None:
    """Load scenarios (server rates, the highest rate a latency goal holds, offline, batch sweep)."""
    request, settings, stats = state.request, state.request.settings, state.stats
    if not settings.load.active:
        return
    assert stats is not None
    enter(Phase.SCENARIO)
    from mlfit.measure.host import usable_cores
    from mlfit.measure.scenarios import run_scenarios

    def batch_feeds(size: int) -> list[Any] | None:
        fresh = [dict(f) for f in build_feeds(state.declared, state.shapes, request.input_spec, state.data)]
        batched = _batched_feeds(state.declared, fresh, size)
        return None if batched is None else [state.backend.prepare(f) for f in batched]

    state.load_extra, state.load_warnings = run_scenarios(
        state.run, state.feeds, batch_feeds, settings.load, stats.mean, usable_cores(), request.threads,
        settings.min_samples, settings.min_time_s, settings.max_time_s,
        notify=lambda text: enter(Phase.SCENARIO))  # each step re-arms the phase's timeout
    state.inference_peak = max(state.inference_peak, _tracker.peak())


def _profile(state: _Run) -> None:
    """onnxruntime's node profile, with the reference kernel timed between its single-thread runs."""
    request, settings = state.request, state.request.settings
    if not settings.profile_nodes or state.runtime is not Runtime.ONNXRUNTIME:
        return
    enter(Phase.PROFILE)
    from mlfit.measure.nodeprofile import profile_nodes, time_per_thread_count

    before = snapshot()
    timer = _reference_timer()
    measured = next((p.wall_s for p in state.contention if p.phase == Phase.MEASURE.value), settings.min_time_s)
    state.node_profile = profile_nodes(request, state.feeds[0], settings.profile_threads,
                                       between=timer.tick if timer is not None else None,
                                       time_per_count_s=time_per_thread_count(measured))
    state.contention.append(phase_record(Phase.PROFILE.value, before, snapshot(), 1))
    if timer is not None:
        timer.tick(max(0, 9 - len(timer.samples_ns)))
        state.reference = timer.result()


def _answer(state: _Run) -> WorkerResponse:
    """The measurement as the parent stores it: figures, memory per phase, warnings, contention."""
    request, backend, stats = state.request, state.backend, state.stats
    assert stats is not None and state.throughput is not None
    enter(Phase.DONE)
    host = host_info()
    warnings = quality_warnings(stats, host.load_avg_1m, host.cores_usable)
    if stats.insufficient:
        warnings.append(f"insufficient samples ({stats.n}) for {', '.join(stats.insufficient)}")
    warnings.extend(state.load_warnings)
    details = backend.details()
    memory = MemoryPhases(
        method=_tracker.method, interpreter_bytes=_INTERPRETER_BYTES, runtime_baseline_bytes=state.baseline,
        load_peak_bytes=state.load_peak, inference_peak_bytes=state.inference_peak,
        peak_bytes=max(state.load_peak, state.inference_peak, state.baseline),
        arena_enabled=details.get("arena_enabled"),
    )
    measurement = Measurement(
        runtime=state.runtime.value, runtime_version=backend.version(), threads=request.threads,
        execution_provider=_device_label(state.runtime, details, request.execution_provider),
        cold_start=ColdStart(process_start_s=state.process_start_s, import_s=state.import_s, load_s=state.load_s,
                             first_inference_s=state.first_s),
        latency=stats, memory=memory, throughput=state.throughput, warnings=warnings,
        unstable=any(w.startswith(("unstable", "busy")) for w in warnings),
        scenario=ScenarioRuns.model_validate(state.load_extra["scenario"]) if "scenario" in state.load_extra else None,
        batch_sweep=[BatchPoint.model_validate(row) for row in state.load_extra.get("batch_sweep", [])],
        runtime_details=RuntimeDetails.model_validate(
            {k: v for k, v in details.items() if k not in ("providers", "arena_enabled")}),
        contention=Contention(phases=state.contention, reference=state.reference),
    )
    return WorkerResponse(measurement=measurement, inputs=state.declared, inputs_used=state.used,
                          outputs=backend.outputs(), node_profile=state.node_profile)


def _unconfined(request: WorkerRequest) -> WorkerResponse | None:
    """Under container limits: confirm from inside, before any runtime is imported, that this
    process is in the cgroup made for it with the limits asked; an error response when not."""
    if request.confinement is None:
        return None
    from mlfit.measure.confine import confirm

    problem = confirm(request.confinement)
    if problem is None:
        emit("confined")
        return None
    return WorkerResponse(error=ErrorInfo(
        kind="limits", phase=Phase.START.value, exit_code=int(ExitCode.USAGE),
        message=f"the container's limits are not in place: {problem}",
        hint="nothing was measured, so nothing is labelled emulated; run where the cgroup can be made "
             "(root or a delegated subtree), or check against a profile without a container section"))


def main(argv: list[str]) -> int:
    global _watchdog, _deadlines
    request_path, out_path = Path(argv[0]), Path(argv[1])
    parent = int(os.environ.get("MLFIT_PARENT_PID", "0") or 0)
    if parent:  # started by the launcher: never outlive it, even when the kernel's signal missed
        _watchdog = Watchdog(parent).start()
    enter(Phase.START)
    request = WorkerRequest.model_validate_json(request_path.read_text())
    _deadlines = dict(request.phase_deadlines_s)
    refused = _unconfined(request)
    if refused is not None:
        return _write_response(refused, out_path)
    try:
        response = measure(request)
    except MlfitError as exc:
        response = WorkerResponse(error=ErrorInfo(kind="input" if exc.exit_code == ExitCode.USAGE else "load",
                                                  phase="", message=exc.message,
                                                  hint=exc.hint, exit_code=int(exc.exit_code)))
    except MemoryError:
        response = WorkerResponse(error=ErrorInfo(kind="memory", phase="", message="ran out of memory",
                                                  hint="raise --memory-limit or use a smaller input",
                                                  exit_code=int(ExitCode.MODEL)))
    except Exception as exc:  # a bug or an unexpected runtime failure: keep the traceback for the report
        response = WorkerResponse(error=_unexpected(exc, request.scratch_dir))
    return _write_response(response, out_path)


def _write_response(response: WorkerResponse, out_path: Path) -> int:
    tmp = out_path.with_suffix(".tmp")
    try:
        tmp.write_text(response.model_dump_json())
        os.replace(tmp, out_path)
    except OSError as exc:  # the scratch disk filled up: one line the parent quotes, no traceback
        sys.stderr.write(f"mlfit-worker: cannot write the result in {out_path.parent}: {exc.strerror}\n")
        return int(ExitCode.MODEL)
    return 0


def _unexpected(exc: Exception, scratch: str) -> ErrorInfo:
    """A full disk or too many open files is the host's state, named with its fix; anything else
    is a bug or an unexpected runtime failure, and its traceback goes to the log."""
    if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EMFILE, errno.ENFILE):
        return _resource_error(exc, scratch)
    traceback.print_exc(file=sys.stderr)
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return ErrorInfo(kind="bug", phase="", message=f"{type(exc).__name__}: {text}",
                     hint="this looks like a bug in mlfit; the worker's traceback is in the log named below",
                     exit_code=int(ExitCode.MODEL))


def _resource_error(exc: OSError, scratch: str) -> ErrorInfo:
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return ErrorInfo(kind="resource", phase="", exit_code=int(ExitCode.MODEL),
                         message=f"the disk of the scratch folder {scratch} is full (No space left on device)",
                         hint=f"free space in {Path(scratch).parent}, or set TMPDIR to a folder with room")
    return ErrorInfo(kind="resource", phase="", exit_code=int(ExitCode.MODEL),
                     message=f"too many open files in the measurement worker ({exc.strerror}: ulimit -n)",
                     hint="raise the limit, e.g. `ulimit -n 1024`, and run again")


def _wait_for_request() -> list[str] | None:
    """A spare (mlfit.measure.spare): everything is imported; wait for the request's paths on stdin,
    then take the run's log as stderr and its scratch folder as TMPDIR, as a spawned worker has them.
    None when the parent closed stdin without a request (it exited, or discarded this spare)."""
    global _waited_s
    from mlfit.result import DEFERRED_MODELS, build_validators

    build_validators(*DEFERRED_MODELS)  # deferred at import; built here, while nothing waits for this process
    start = time.monotonic()
    line = sys.stdin.buffer.readline()
    _waited_s = time.monotonic() - start
    parts = line[:-1].decode("utf-8", "surrogateescape").split("\0") if line.endswith(b"\n") else []
    if len(parts) != 3:
        return None
    request_path, out_path, log_path = parts
    log = os.open(log_path, os.O_WRONLY | os.O_APPEND)
    os.dup2(log, 2)
    os.close(log)
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.close(null)
    os.environ["TMPDIR"] = str(Path(request_path).parent)
    import tempfile

    tempfile.tempdir = None  # read TMPDIR again on next use
    return [request_path, out_path]


if __name__ == "__main__":
    from mlfit.exits import exit_now

    if sys.argv[1:] == ["--wait"]:
        paths = _wait_for_request()
        exit_now(0 if paths is None else main(paths), "mlfit.measure.worker")
    exit_now(main(sys.argv[1:]), "mlfit.measure.worker")  # answer written: no teardown of the runtime (0.2-0.5 s)
