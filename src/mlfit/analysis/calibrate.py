"""Host calibration: what this machine sustains through the runtime, measured once and cached.

Figures (all through onnxruntime, the runtime whose node times are projected):
fp32 GEMM and 3x3 convolution throughput at 1..N threads, memory bandwidth (a
STREAM-like triad: an elementwise Add over arrays far larger than the caches, at 1..N
threads), and the runtime's per-call overhead (a one-node graph).

The measuring half runs in a subprocess (``python -m mlfit.analysis.calibrate OUT``)
because the parent never imports a runtime. The result is cached per host fingerprint
in ``$XDG_CACHE_HOME/mlfit`` (default ``~/.cache/mlfit``) and redone when the
fingerprint or the calibration version changes; the folder, the entries' schema and the lock
that makes concurrent first runs calibrate once are :mod:`mlfit.analysis.calcache`'s.

Calibration file history (``CALIBRATION_VERSION``):
  1 - first version.
  2 - contention-proof: the fastest tenth of the calls instead of the fastest third, and the
      single-thread figures timed by the thread's CPU clock (as the worker's interleaved
      reference kernel, mlfit.measure.refkernel); version-1 caches are measured again.
  3 - GEMM and convolution at N > 1 threads: the 1-thread rate times the speed-up measured in
      CPU time (sessions without spinning), which a busy host does not move; the wall-time
      rates are kept in ``wall_rates_multithread``.
  4 - the host's peak per core: AMD Zen 4 (family 25 with AVX-512) runs a 512-bit FMA on two
      256-bit pipes, 32 FP32 FLOP per cycle, not 64 (hostfacts.flops_per_cycle); the peak sets the
      host's measured efficiency that a same-ISA target is assumed to reach.
"""

from __future__ import annotations

import contextlib
import json
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from mlfit.analysis.calcache import cache_dir, calibration_lock, read_entry, secure_cache_dir
from mlfit.catalog.hostfacts import cpu_flags, cpu_mhz, cpu_vendor_family, flops_per_cycle
from mlfit.errors import ConfigError, ModelError
from mlfit.lifeline import ChildTimeout, run_child
from mlfit.measure.refkernel import fast_rate, gemm_model, graph

CALIBRATION_VERSION = 4
BUDGET_S = 20.0  # the whole calibration must finish within this
_PER_FIGURE_S = 0.25


def cache_path(fingerprint: str) -> Path:
    return cache_dir() / f"calibration-{fingerprint}.json"


def thread_counts(cores: int) -> list[int]:
    """1, 2, 4, ... up to the usable cores, and the cores themselves."""
    counts = {1, cores}
    t = 2
    while t < cores:
        counts.add(t)
        t *= 2
    return sorted(counts)


# ---------------------------------------------------------------- measuring (subprocess side)


def _best_rate(run: Callable[[], Any], work: float, seconds: float, cpu_clock: bool = False) -> float:
    """Work per second of the fastest tenth of the calls (:func:`mlfit.measure.refkernel.fast_rate`).
    ``cpu_clock``: time a single-thread kernel by the calling thread's CPU time, as the worker times
    its reference kernel, so a process that takes the core away does not slow the figure."""
    clock = time.thread_time if cpu_clock else time.perf_counter
    run()
    times: list[float] = []
    start = time.perf_counter()
    while len(times) < 10 or (time.perf_counter() - start < seconds and len(times) < 2000):
        t0 = clock()
        run()
        times.append(clock() - t0)
    return fast_rate([t for t in times if t > 0] or times, work)


def _runner(session: Any, feeds: dict[str, Any]) -> Callable[[], Any]:
    return lambda: session.run(None, feeds)


def _cpu_rate(run: Callable[[], Any], work: float, threads: int, seconds: float) -> float:
    """Work per second per ``threads`` CPU-seconds: total process CPU time over a batch of calls
    (threads that wait sleep, spinning is off), so a process that takes a core away adds wall time
    and no CPU time. Over a batch, since another thread's CPU time is only accounted at ticks."""
    run()
    calls = 0
    c0, w0 = time.process_time(), time.perf_counter()
    while calls < 5 or time.perf_counter() - w0 < seconds:
        run()
        calls += 1
        if calls >= 2000:
            break
    cpu = time.process_time() - c0
    return work * calls * threads / cpu if cpu > 0 else 0.0


def _speedup(model: Any, feeds: dict[str, Any], work: float, threads: int, seconds: float) -> float:
    """The thread speed-up a kernel would have on an idle host: CPU-time rates at ``threads`` and at
    one thread, sessions without spinning. On a 2-core VM with two busy processes this gave 1.8x for
    the 2-thread GEMM, as on the quiet host, where the wall-time rate showed 1.0x."""
    one = _cpu_rate(_runner(_session(model, 1, spin=False), feeds), work, 1, seconds / 2)
    many = _cpu_rate(_runner(_session(model, threads, spin=False), feeds), work, threads, seconds / 2)
    return max(1.0, min(float(threads), many / one)) if one > 0 else 1.0


def _session(model: Any, threads: int, spin: bool = True) -> Any:
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.log_severity_level = 3
    if not spin:
        so.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(
        model.SerializeToString(), sess_options=so, providers=["CPUExecutionProvider"]
    )


_graph = graph
_gemm_model = gemm_model


def _conv_model(c: int, hw: int) -> Any:
    import numpy as np
    from onnx import TensorProto, helper, numpy_helper

    w = numpy_helper.from_array(
        np.random.default_rng(0).standard_normal((c, c, 3, 3)).astype(np.float32), "w"
    )
    node = helper.make_node("Conv", ["x", "w"], ["y"], kernel_shape=[3, 3], pads=[1, 1, 1, 1])
    return _graph(
        [node],
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, c, hw, hw])],
        helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, c, hw, hw]),
        [w],
    )


def _add_model(n: int) -> Any:
    from onnx import TensorProto, helper

    return _graph(
        [helper.make_node("Add", ["a", "b"], ["y"])],
        [
            helper.make_tensor_value_info("a", TensorProto.FLOAT, [n]),
            helper.make_tensor_value_info("b", TensorProto.FLOAT, [n]),
        ],
        helper.make_tensor_value_info("y", TensorProto.FLOAT, [n]),
        [],
    )


def measure(max_threads: int) -> dict[str, Any]:
    """Run every calibration figure; imports onnxruntime (subprocess side only)."""
    import platform

    import numpy as np
    import onnxruntime as ort

    started = time.perf_counter()
    counts = thread_counts(max_threads)
    per = min(_PER_FIGURE_S, (BUDGET_S - 4.0) / max(1, 5 * len(counts) + 2))
    gemm_n, conv_c, conv_hw, add_n = 512, 64, 56, 8 * 2**20
    x_gemm = np.random.default_rng(1).standard_normal((gemm_n, gemm_n)).astype(np.float32)
    x_conv = np.random.default_rng(2).standard_normal((1, conv_c, conv_hw, conv_hw)).astype(np.float32)
    a = np.ones(add_n, np.float32)
    b = np.ones(add_n, np.float32)
    gemm: dict[str, float] = {}
    conv: dict[str, float] = {}
    bandwidth: dict[str, float] = {}
    gemm_m, conv_m, add_m = _gemm_model(gemm_n), _conv_model(conv_c, conv_hw), _add_model(add_n)
    conv_flops = 2.0 * conv_c * conv_c * 9 * conv_hw**2
    wall_rates: dict[str, dict[str, float]] = {"gemm": {}, "conv": {}}
    for t in counts:
        one = t == 1
        gemm[str(t)] = _best_rate(_runner(_session(gemm_m, t), {"x": x_gemm}), 2.0 * gemm_n**3, per, one)
        conv[str(t)] = _best_rate(_runner(_session(conv_m, t), {"x": x_conv}), conv_flops, per, one)
        if not one:
            # The thread speed-up from CPU time, which a busy neighbour does not move; the wall-time
            # figure is kept beside it for reference.
            wall_rates["gemm"][str(t)], wall_rates["conv"][str(t)] = gemm[str(t)], conv[str(t)]
            gemm[str(t)] = gemm["1"] * _speedup(gemm_m, {"x": x_gemm}, 2.0 * gemm_n**3, t, per)
            conv[str(t)] = conv["1"] * _speedup(conv_m, {"x": x_conv}, conv_flops, t, per)
        bandwidth[str(t)] = _best_rate(_runner(_session(add_m, t), {"a": a, "b": b}), 3.0 * 4 * add_n, per, one)
        if time.perf_counter() - started > BUDGET_S - 3:
            break  # many cores: keep the promise of a bounded calibration
    dst = np.empty_like(a)
    copy_bw = _best_rate(lambda: np.copyto(dst, a), 2.0 * 4 * add_n, per)
    tiny = _session(_add_model(16), 1)
    small = np.ones(16, np.float32)
    feeds = {"a": small, "b": small}
    tiny.run(None, feeds)
    calls = []
    for _ in range(2000):
        t0 = time.perf_counter()
        tiny.run(None, feeds)
        calls.append(time.perf_counter() - t0)
    overhead = statistics.median(calls)
    flags = cpu_flags()
    mhz = cpu_mhz()
    fpc = flops_per_cycle(flags, platform.machine(), *cpu_vendor_family())
    return {
        "schema_version": CALIBRATION_VERSION,
        "runtime": f"onnxruntime {ort.__version__}",
        "threads": counts[: len(gemm)],
        "gemm_flops": gemm,
        "conv_flops": conv,
        "bandwidth": bandwidth,
        "copy_bandwidth_1t": copy_bw,
        "wall_rates_multithread": wall_rates,
        "call_overhead_s": overhead,
        "frequency_mhz": mhz,
        "flops_per_cycle": fpc,
        "peak_fp32_per_core": (mhz * 1e6 * fpc) if mhz else None,
        "isa": sorted(
            f
            for f in flags
            if f
            in {
                "sse4_2",
                "avx",
                "avx2",
                "fma",
                "avx512f",
                "avx512_vnni",
                "amx_bf16",
                "amx_int8",
                "neon",
                "asimd",
                "asimddp",
                "fp16",
            }
        ),
        "method": f"onnxruntime MatMul {gemm_n}x{gemm_n}, Conv 3x3 {conv_c}ch {conv_hw}x{conv_hw}, Add of "
        f"{add_n * 4 // 2**20} MiB arrays (triad-like: 2 reads + 1 write), fastest tenth of calls "
        f"(1 thread: by CPU time); "
        f"per-call overhead = median of 2000 runs of a one-node graph",
        "duration_s": time.perf_counter() - started,
    }


def main(argv: list[str]) -> int:
    from mlfit.measure.host import host_info, usable_cores

    out = Path(argv[0])
    host = host_info()
    data = measure(usable_cores())
    data.update(
        {
            "fingerprint": host.fingerprint,
            "cpu_model": host.cpu_model,
            "arch": host.arch,
            "cores_usable": host.cores_usable,
            "ram_bytes": host.ram_bytes,
            "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        }
    )
    tmp = out.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=2))
    os.replace(tmp, out)
    return 0


# ---------------------------------------------------------------- parent side


def run_calibration(timeout_s: float = 60.0, path: Path | None = None, write: bool = True) -> dict[str, Any]:
    """Measure this host now, in a subprocess, and cache the result at ``path`` (this host's entry
    by default) unless ``write`` is False. Callers hold the calibration lock when writing."""
    from mlfit.measure.host import host_info

    fingerprint = host_info().fingerprint
    folder = secure_cache_dir()
    path = path or folder / f"calibration-{fingerprint}.json"
    out = path.with_name(path.name + f".{os.getpid()}.new")
    try:
        try:
            proc = run_child([sys.executable, "-m", "mlfit.analysis.calibrate", str(out)], timeout_s)
        except ChildTimeout:
            raise ModelError(
                f"host calibration did not finish within {timeout_s:g} s",
                "the machine is very busy; try `mlfit calibrate` again later",
            ) from None
        if proc.returncode != 0 or not out.exists():
            detail = (proc.stderr.strip().splitlines() or ["no message"])[-1]
            raise ModelError(f"host calibration failed: {detail}", "check that onnxruntime is installed")
        data = read_entry(out, fingerprint, CALIBRATION_VERSION, quiet=True)
        if data is None:
            raise ModelError("host calibration wrote an unreadable result", "run `mlfit calibrate --force`")
        if write:
            try:
                os.replace(out, path)
            except OSError as exc:
                raise ConfigError(
                    f"cannot write the calibration cache {path}: {exc.strerror}",
                    "set XDG_CACHE_HOME to a writable folder",
                ) from None
        return data
    finally:
        with contextlib.suppress(OSError):
            out.unlink()


def load_or_calibrate(force: bool = False) -> tuple[dict[str, Any], bool]:
    """The cached calibration of this host, measuring it first when missing, stale or malformed.
    Concurrent first runs measure once: the others wait for the lock and read what it wrote.
    Returns ``(calibration, was_cached)``."""
    from mlfit.measure.host import host_info

    fingerprint = host_info().fingerprint
    folder = secure_cache_dir()
    path = folder / f"calibration-{fingerprint}.json"
    if not force:
        cached = read_entry(path, fingerprint, CALIBRATION_VERSION)
        if cached is not None:
            return cached, True
    with calibration_lock(folder, fingerprint) as held:
        if not held:
            return run_calibration(path=path, write=False), False
        if not force:  # written by the run that held the lock while this one waited
            cached = read_entry(path, fingerprint, CALIBRATION_VERSION, quiet=True)
            if cached is not None:
                return cached, True
        return run_calibration(path=path), False


def per_thread(figures: dict[str, float], threads: int) -> float:
    """A figure at ``threads``: measured where it was, else scaled from the nearest count
    below by the last measured per-thread rate (never superlinear)."""
    known = sorted((int(k), v) for k, v in figures.items())
    exact = dict(known)
    if threads in exact:
        return exact[threads]
    below = [(t, v) for t, v in known if t <= threads]
    if not below:
        t0, v0 = known[0]
        return v0 * threads / t0
    t0, v0 = below[-1]
    if len(known) >= 2 and t0 == known[-1][0]:
        # beyond what was measured: assume the last step's efficiency holds
        (t1, v1), (t2, v2) = known[-2], known[-1]
        eff = min(1.0, ((v2 / v1) - 1) / ((t2 / t1) - 1)) if t2 > t1 and v1 > 0 else 1.0
        return v0 * (1 + max(0.0, eff) * (threads / t0 - 1))
    return v0 * threads / t0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
