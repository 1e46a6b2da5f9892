"""The ``mlfit`` command. Errors the user can fix are caught here, in one place, and
printed as one line; anything else is a bug and keeps its traceback.

Heavy modules (pydantic models, onnx, runtimes) are imported inside commands so that
``mlfit --help`` starts fast; runtimes are only ever imported by the worker process.
"""

from __future__ import annotations

import signal
import sys
from typing import Any

import typer
from typer.exceptions import TyperException

from mlfit._version import __version__
from mlfit.cli import calibrate as calibrate_cmd
from mlfit.cli import check as check_cmd
from mlfit.cli import compare as compare_cmd
from mlfit.cli import helptext, report_cmd
from mlfit.cli import targets as targets_cmd
from mlfit.cli import truth as truth_cmd
from mlfit.cli import worker as worker_cmd
from mlfit.errors import ExitCode, MlfitError

EXIT_CODES_HELP = (
    "Exit codes: 0 all budgets pass; 1 a budget failed (or a regression); 2 usage or configuration error; "
    "3 the model could not be loaded or measured; 4 inconclusive under --strict; 130 interrupted."
)

app = typer.Typer(
    name="mlfit",
    help="Will this model run THERE, within budget? Measure a model and check it against hardware "
    "and deployment profiles.\n\n" + EXIT_CODES_HELP,
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"mlfit {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Print the version."),
) -> None:
    """mlfit: resource-aware model profiler and deployment checker."""


check_cmd.register(app)
calibrate_cmd.register(app)
report_cmd.register(app)
compare_cmd.register(app)
app.add_typer(targets_cmd.app, name="targets")
app.add_typer(truth_cmd.app, name="truth")
worker_cmd.register(app)
helptext.apply(app)  # --help: options grouped by panel, examples per command


def error_line(text: str) -> None:
    """One line on stderr: names from files and flags cannot add a line or a terminal sequence."""
    from mlfit.errors import printable

    sys.stderr.write(f"mlfit: error: {printable(text)}\n")


def _terminate(signum: int, frame: object) -> None:
    # A CI runner cancels a job with SIGTERM (a closed terminal sends SIGHUP): stop the measurement
    # as Ctrl-C would, so the worker is killed and a partial report is written.
    raise KeyboardInterrupt


def _interrupt_soon() -> None:
    import _thread
    import time

    time.sleep(0.01)  # the main thread has left the hook that dropped it
    _thread.interrupt_main()


def _interrupt_not_lost(unraisable: Any) -> None:
    """Ctrl-C raised where Python cannot raise it (an at-fork hook while a child process is spawned,
    a ``__del__``) is printed as "Exception ignored" with a traceback and then lost: the run would go
    on. Deliver it again instead, from another thread (in this one it would be raised inside this
    hook and dropped again), to the main thread's next bytecode; anything else as Python would."""
    if isinstance(unraisable.exc_value, KeyboardInterrupt):
        import _thread

        # the low-level start: threading's waits for the thread to run, and the wait would raise it here
        _thread.start_new_thread(_interrupt_soon, ())
        return
    sys.__unraisablehook__(unraisable)


def main(argv: list[str] | None = None) -> None:
    """Run the command (mlfit.cli.entry installs the early signal handlers, then calls this)."""
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, _terminate)
    signal.signal(signal.SIGHUP, _terminate)
    sys.unraisablehook = _interrupt_not_lost
    try:
        _main(argv)
    except OSError as exc:  # the host's state, not a bug: a full or missing TMPDIR, `ulimit -n`
        from mlfit.scratch import host_state_error

        error = host_state_error(exc)
        if error is None:
            raise
        error_line(error.one_line())
        sys.exit(int(error.exit_code))


def _main(argv: list[str] | None) -> None:
    from mlfit.cli.check import bare_suggest

    command = typer.main.get_command(app)
    try:
        code = command.main(args=bare_suggest(sys.argv[1:] if argv is None else argv), prog_name="mlfit",
                            standalone_mode=False)
    except MlfitError as exc:
        error_line(exc.one_line())
        sys.exit(int(exc.exit_code))
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except TyperException as exc:  # click's usage errors, as vendored by typer
        show = getattr(exc, "show", None)
        if callable(show):
            show()
        else:
            error_line(exc.format_message())
        sys.exit(ExitCode.USAGE)
    except MemoryError:  # a last resort: the parsers bound their inputs (mlfit.safeio) and say so first
        error_line("ran out of memory reading or analysing an input; stopped (the input is too large or "
                   "hostile for this host; docs/refusals.md lists the limits)")
        sys.exit(ExitCode.MODEL)
    except RecursionError:
        error_line("an input is nested too deeply to read; stopped (docs/refusals.md lists the limits)")
        sys.exit(ExitCode.MODEL)
    except (KeyboardInterrupt, typer.Abort):
        error_line("interrupted")
        sys.exit(ExitCode.INTERRUPTED)
    if code == ExitCode.INTERRUPTED:  # typer turns Ctrl-C outside a measurement into exit 130
        error_line("interrupted")
    sys.exit(code if isinstance(code, int) else 0)
