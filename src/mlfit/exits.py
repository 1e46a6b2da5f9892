"""Ending a process without the interpreter's teardown (issue 22).

A normal exit frees every module and object one by one: numpy's, pydantic's models, rich, and in a
worker the runtime's sessions and thread pools. Measured on the 2-core host, that took 0.24-0.52 s
in a worker after its answer was written and 0.30-0.38 s in the CLI after its report was, each on
the path to the verdict. Nothing in it matters once the output is out: :func:`exit_now` does what
does matter in a normal exit (the atexit handlers: killing a spare worker, logging's flush;
stdout and stderr flushed), then ``os._exit``. Standard library only: the worker imports this.
"""

from __future__ import annotations

import atexit
import os
import sys
import threading
from typing import NoReturn


def started_as(*modules: str) -> bool:
    """Whether this interpreter was started to run mlfit: ``python [options] -m MODULE`` for one of
    ``modules``, or the ``mlfit`` console script. Code that runs mlfit's main from Python (``-c``, a
    script, the tests) gets a normal exit, which it may catch and carry on after."""
    argv = list(getattr(sys, "orig_argv", []))
    if "-m" in argv:
        at = argv.index("-m")
        return at + 1 < len(argv) and argv[at + 1] in modules
    return bool(argv) and "-c" not in argv and os.path.basename(sys.argv[0]) == "mlfit"


def exit_now(code: object, *modules: str) -> NoReturn:
    """``sys.exit(code)`` as the process's last step, without the teardown, where this process was
    started as one of ``modules`` (:func:`started_as`). Falls back to a normal exit where that would
    do more than teardown: another non-daemon thread still runs (it would be waited for), the code
    is not a number (it is printed), or the output cannot be flushed (the normal exit reports it)."""
    others = [t for t in threading.enumerate() if t is not threading.main_thread() and not t.daemon and t.is_alive()]
    if not started_as(*modules) or others or not (code is None or isinstance(code, int)):
        raise SystemExit(code)
    atexit._run_exitfuncs()  # the handlers a normal exit runs (it clears them)
    try:
        for stream in (sys.stdout, sys.stderr):
            if stream is not None:
                stream.flush()
    except (OSError, ValueError):  # a closed pipe: Python's own exit says so, with its exit code
        raise SystemExit(code) from None
    os._exit(code or 0)
