"""Ctrl-C that Python could only print as "Exception ignored" is delivered again, not lost.

A SIGINT that lands while a child process is spawned is raised inside logging's at-fork hook, where
Python prints a traceback and drops it: ``mlfit check --suggest`` went on after Ctrl-C that way. The
hook here is the real one the CLI installs; the unraisable KeyboardInterrupt comes from a ``__del__``,
the other place Python drops exceptions.
"""

from __future__ import annotations

import subprocess
import sys

SCRIPT = """
import sys
from mlfit.cli import app

sys.unraisablehook = app._interrupt_not_lost  # what app.main installs


class Dropped:
    def __del__(self):
        raise KeyboardInterrupt


import time

try:
    Dropped()  # freed at once: its KeyboardInterrupt is unraisable
    until = time.monotonic() + 2
    while time.monotonic() < until:  # the run going on (delivered again within milliseconds)
        pass
except KeyboardInterrupt:
    print("delivered")
else:
    print("lost")
"""


def test_an_unraisable_keyboard_interrupt_is_delivered_again() -> None:
    done = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=60)
    assert done.stdout.strip() == "delivered", (done.stdout, done.stderr)
    assert "Exception ignored" not in done.stderr and "Traceback" not in done.stderr, done.stderr


def test_other_unraisable_exceptions_are_printed_as_python_prints_them() -> None:
    script = SCRIPT.replace("raise KeyboardInterrupt", "raise ValueError('from __del__')")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert done.stdout.strip() == "lost"
    assert "Exception ignored" in done.stderr and "from __del__" in done.stderr
