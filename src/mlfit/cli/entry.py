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


def _measures_here(args: list[str]) -> bool:
    """`mlfit check ...` that measures on this host: its worker can start now, beside the CLI's own
    imports and work (mlfit.measure.spare; a spare nobody takes is killed at exit)."""
    skip = ("--help", "-h", "--cluster", "--container")
    return bool(args) and args[0] == "check" and not any(a.split("=", 1)[0] in skip for a in args[1:])


# pydantic looks up its plugins among every installed package's entry points when it builds its first
# validator: 0.03-0.04 s of CPU in a large environment, in the CLI and again in each worker, for plugins
# that observe an application's own models, not mlfit's. mlfit as a program skips it (a value the
# user set is kept); ``mlfit.api`` in someone's program is left alone.
PLUGINS_OFF = ("PYDANTIC_DISABLE_PLUGINS", "__all__")
# onnxruntime's official builds start Microsoft's 1DS telemetry when imported: an uploader thread in
# the process being timed, and a `.ses` file written into $TMPDIR, which is left behind in the user's
# temp folder (calibration imports onnxruntime in the CLI itself). Off for every process mlfit starts
# unless the user set the variable themselves (onnxruntime/Privacy.md, "Disabling Telemetry").
TELEMETRY_OFF = ("ORT_DISABLE_TELEMETRY", "1")


def main(argv: list[str] | None = None) -> None:
    for signum in _CAUGHT:
        signal.signal(signum, _early)
    import sys

    os.environ.setdefault(*TELEMETRY_OFF)
    if argv is None:
        os.environ.setdefault(*PLUGINS_OFF)

    if _measures_here(sys.argv[1:] if argv is None else argv):
        from mlfit.measure.spare import prestart

        prestart()
    from mlfit.cli.app import main as run

    if argv is not None:  # called from Python: a normal return
        run(argv)
        return
    try:
        run(argv)
    except SystemExit as exc:
        code = exc.code
    else:
        code = 0
    from mlfit.exits import exit_now

    exit_now(code, "mlfit")  # the program's end: no interpreter teardown (0.3 s on a 2-core host)
