"""A worker interpreter started ahead of its request (issue 22).

A worker's interpreter start and its imports (numpy, mlfit's protocol and result models) take
0.25-0.45 s before it can read its request, and the CLI has as long again of its own work
before it can write one (its imports, the target catalog, the declared inputs, the gate). So
``mlfit check`` starts the next worker at once, as ``python -m mlfit.measure.worker --wait``: it
imports what every worker imports, never the runtime, and waits on its stdin. The launcher hands
it the request's paths (:func:`take`); with none waiting it spawns a worker as before.

Isolation is what it was: one fresh process per measurement, with the same environment (the
scratch folder becomes its TMPDIR when the request comes), its own session and the parent-death
signal. A worker under container limits is never a spare (it must start inside its cgroup), and a
spare nobody took is killed when the CLI exits. The cold start it reports counts its own start-up
without the wait (see worker.py).
"""

from __future__ import annotations

import atexit
import contextlib
import os
import signal
import subprocess
import sys

from mlfit.lifeline import die_with_parent

_spare: subprocess.Popen[bytes] | None = None


def worker_env(scratch: str | None = None) -> dict[str, str]:
    """The worker's environment: this one, with the parent's pid (its watchdog) and, once the run's
    scratch folder exists, that folder as TMPDIR."""
    env = {**os.environ, "MLFIT_PARENT_PID": str(os.getpid()), "PYTHONUNBUFFERED": "1"}
    if scratch is not None:
        env["TMPDIR"] = scratch
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    # no pydantic plugin lookup in mlfit's private worker (0.03-0.04 s of CPU; see mlfit.cli.entry)
    env.setdefault("PYDANTIC_DISABLE_PLUGINS", "__all__")
    # no onnxruntime telemetry thread beside the timed loop, no `.ses` file (see mlfit.cli.entry)
    env.setdefault("ORT_DISABLE_TELEMETRY", "1")
    return env


def prestart() -> None:
    """Start a waiting worker unless one waits already (errors only mean there is none)."""
    global _spare
    if _spare is not None and _spare.poll() is None:
        return
    try:
        _spare = subprocess.Popen(
            [sys.executable, "-m", "mlfit.measure.worker", "--wait"], stdin=subprocess.PIPE,
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, start_new_session=True, env=worker_env(),
            preexec_fn=die_with_parent())
    except OSError:  # out of processes or files: the launcher's own spawn says so, with its fix
        _spare = None


def take(request_path: str, out_path: str, log_path: str) -> subprocess.Popen[bytes] | None:
    """The waiting worker, told its request (None when there is none, or it died waiting)."""
    global _spare
    proc, _spare = _spare, None
    if proc is None:
        return None
    if proc.poll() is None and proc.stdin is not None:
        try:
            proc.stdin.write(f"{request_path}\0{out_path}\0{log_path}\n".encode())
            proc.stdin.close()
            return proc
        except OSError:  # it died between the poll and the write
            pass
    _kill(proc)
    return None


def discard() -> None:
    """Kill a spare nobody took (at exit, and before a worker that may not be one)."""
    global _spare
    proc, _spare = _spare, None
    if proc is not None:
        _kill(proc)


def _kill(proc: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(OSError):
        os.killpg(proc.pid, signal.SIGKILL)
    with contextlib.suppress(OSError, subprocess.TimeoutExpired):
        proc.wait(timeout=5)
    for stream in (proc.stdin, proc.stdout):
        if stream is not None:
            with contextlib.suppress(OSError):
                stream.close()


atexit.register(discard)
