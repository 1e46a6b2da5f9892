"""The ``mlfit`` command's entry point: signal handlers first, then the heavy imports.

Importing the CLI (typer, rich, pydantic) takes a few tenths of a second. A Ctrl-C in that
window used to print a KeyboardInterrupt traceback, and a SIGTERM killed the process with 143
instead of the documented 130. Here the handlers are installed before anything heavy is
imported: until the command runs there is nothing to clean up (no worker, no temp folder), so an
early signal ends the process at once with exit 130 and one line. Then mlfit.cli.app takes over.
"""

from __future__ import annotations

import os
import signal

_CAUGHT = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


def _early(signum: int, frame: object) -> None:
    os.write(2, b"mlfit: interrupted\n")
    os._exit(130)


def main(argv: list[str] | None = None) -> None:
    for signum in _CAUGHT:
        signal.signal(signum, _early)
    from mlfit.cli.app import main as run

    run(argv)
