"""Child processes never outlive the process that started them (issue 19, item 1).

A measurement worker (and a converter, the calibration child, the shape-inference child) runs
in a process group of its own so that the parent can stop it and everything it spawned with
one ``killpg``, and so that a terminal's Ctrl-C reaches the parent alone, which decides what to
keep. A process group of its own also means that a CI job's cancellation sent to the job's
process group misses the child; the child is reachable anyway because:

- SIGINT, SIGTERM and SIGHUP to the parent make it kill the child's group (mlfit.cli.entry);
- SIGKILL of the parent (a hard job timeout, the OOM killer) kills the child through the
  kernel's parent-death signal, set in the child before exec (:func:`die_with_parent`);
- and the worker itself watches its parent and its phase deadlines (:class:`Watchdog`), so a
  child that the kernel signal missed (a wrapper that resets it, a grandchild) still ends.

PR_SET_PDEATHSIG fires when the *thread* that forked the child ends, not the process. Every
caller here waits for its child in the thread that spawned it (run_worker, :func:`run_child`),
so that thread lives at least as long as the child. Standard library only (psutil where it is
there, for strays): the worker imports this.

:func:`run_child` is the one way a short child (a converter, the host calibration, shape
inference) is started: its own process group, the parent-death signal, a timeout that kills the
whole group, Ctrl-C that takes the group along, and its output read to a bounded tail. The
measurement worker's launcher (:mod:`mlfit.measure.launcher`) adds phase timeouts, a memory watch
and streamed events on the same group kill (:func:`kill_group`). :func:`answer_request` is the
child's side: the main of such a child that reads a JSON request and writes a JSON answer.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

_PR_SET_PDEATHSIG = 1


def set_parent_death_signal(expected_parent: int) -> None:
    """In the calling process: receive SIGKILL when the parent ends. Linux only; elsewhere the
    watchdog is the only guard. Exits at once if the parent has already gone (the race between
    fork and prctl)."""
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != expected_parent:
        os._exit(1)


def die_with_parent(then: Callable[[], None] | None = None) -> Callable[[], None]:
    """A ``preexec_fn`` for subprocess: the child gets SIGKILL when this process dies, then
    runs ``then`` (e.g. joining a cgroup). Build it in the parent: it records the parent's pid."""
    parent = os.getpid()

    def preexec() -> None:
        set_parent_death_signal(parent)
        if then is not None:
            then()

    return preexec


def _kill_own_group() -> None:
    # The worker leads its process group (start_new_session): this takes its children with it.
    with contextlib.suppress(OSError):
        os.killpg(os.getpgid(0), signal.SIGKILL)
    os._exit(137)


class Watchdog:
    """A daemon thread in the worker: ends the worker's process group when the parent is gone
    (re-parented: getppid changed) or when the current phase ran past its deadline, so phase
    deadlines hold even when nobody is left to enforce them. Costs one wake-up every ``poll_s``."""

    def __init__(self, parent: int, poll_s: float = 0.5, kill: Callable[[], None] = _kill_own_group) -> None:
        self.parent = parent
        self.poll_s = poll_s
        self.kill = kill
        self.deadline: float | None = None
        self.thread = threading.Thread(target=self._watch, name="mlfit-watchdog", daemon=True)

    def start(self) -> Watchdog:
        self.thread.start()
        return self

    def arm(self, seconds: float | None) -> None:
        """A new phase began: it must end within ``seconds`` (None: no bound)."""
        self.deadline = None if seconds is None else time.monotonic() + seconds

    def _watch(self) -> None:
        while True:
            time.sleep(self.poll_s)
            deadline = self.deadline
            if os.getppid() != self.parent or (deadline is not None and time.monotonic() > deadline):
                self.kill()
                return


def kill_group(pid: int) -> None:
    """Kill a child that leads its own process group, everything in that group, and any
    descendant that moved to a session of its own (found before the group dies)."""
    strays: list[object] = []
    try:
        import psutil

        strays = list(psutil.Process(pid).children(recursive=True))
    except Exception:  # psutil missing or the child already gone: the group kill still runs
        strays = []
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)
    for child in strays:
        with contextlib.suppress(Exception):
            child.kill()  # type: ignore[attr-defined]


class ChildTimeout(Exception):
    """:func:`run_child`'s child ran past its time; its group was killed."""


@dataclass(frozen=True)
class Finished:
    """A child's exit code and the last bytes of its output (decoded, invalid bytes replaced)."""

    returncode: int
    stdout: str
    stderr: str


# What is kept of a child's stdout and stderr each: the tail, where its last error line is.
OUTPUT_TAIL = 1 << 20


def _drain(stream: IO[bytes], tail: bytearray, limit: int) -> None:
    for chunk in iter(lambda: stream.read(1 << 16), b""):
        tail += chunk
        if len(tail) > limit:
            del tail[:len(tail) - limit]


def run_child(argv: Sequence[str], timeout_s: float, env: Mapping[str, str] | None = None,
              limit: int = OUTPUT_TAIL) -> Finished:
    """Run ``argv`` to its end in a process group of its own that dies with this process; kill
    the group at ``timeout_s`` (:class:`ChildTimeout`) or on Ctrl-C (re-raised). Keeps the last ``limit`` bytes of each
    output, so a child printing gigabytes cannot exhaust the parent."""
    import subprocess

    proc = subprocess.Popen(list(argv), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env=None if env is None else dict(env), start_new_session=True,
                            preexec_fn=die_with_parent())
    tails = (bytearray(), bytearray())
    readers = [threading.Thread(target=_drain, args=(stream, tail, limit), daemon=True)
               for stream, tail in zip((proc.stdout, proc.stderr), tails, strict=True)]
    for reader in readers:
        reader.start()
    try:
        proc.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        kill_group(proc.pid)
        proc.wait()
        raise ChildTimeout(f"{argv[0]} ran past {timeout_s:g} s") from None
    except BaseException:  # Ctrl-C, SIGTERM turned into an exception: the child's group goes too
        kill_group(proc.pid)
        proc.wait()
        raise
    finally:
        for reader in readers:
            reader.join(timeout=5)
        for stream in (proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()
    return Finished(proc.returncode, tails[0].decode(errors="replace"), tails[1].decode(errors="replace"))


def answer_request(argv: Sequence[str], handle: Callable[[dict[str, Any]], dict[str, Any]]) -> int:
    """The main of a request/answer child (``python -m CHILD REQUEST.json ANSWER.json``): the answer
    is ``handle(request)``; an MlfitError becomes ``{"error", "hint"}``, and any other exception (a
    library's own failure) its type and first line, the useful part; the parent reads the answer."""
    from mlfit.errors import MlfitError

    request = json.loads(Path(argv[0]).read_text())
    answer: dict[str, Any]
    try:
        answer = handle(request)
    except MlfitError as exc:
        answer = {"error": exc.message, "hint": exc.hint}
    except Exception as exc:
        text = str(exc).strip().splitlines()
        answer = {"error": f"{type(exc).__name__}: {text[0][:300] if text else ''}"}
    Path(argv[1]).write_text(json.dumps(answer))
    return 0
