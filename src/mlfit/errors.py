"""The one user-facing error type and the exit codes it maps to.

Any other exception escaping to the CLI is a bug and keeps its traceback.
"""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    """Process exit codes, documented in the README and in ``mlfit --help``."""

    OK = 0
    BUDGET_FAILED = 1  # a budget failed, or a regression for `compare`
    USAGE = 2  # usage or configuration error
    MODEL = 3  # the model could not be loaded or measured
    INCONCLUSIVE = 4  # inconclusive verdicts under --strict
    INTERRUPTED = 130


class MlfitError(Exception):
    """An error the user can fix: a one-line message, a hint, an exit code."""

    exit_code: ExitCode = ExitCode.USAGE

    def __init__(self, message: str, hint: str | None = None, exit_code: ExitCode | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint
        if exit_code is not None:
            self.exit_code = exit_code

    def one_line(self) -> str:
        text = self.message.replace("\n", " ")
        return f"{text} ({self.hint})" if self.hint else text


class ConfigError(MlfitError):
    """A bad flag, profile or hardware file (exit 2)."""

    exit_code = ExitCode.USAGE


class ModelError(MlfitError):
    """The model could not be loaded, analysed or measured (exit 3)."""

    exit_code = ExitCode.MODEL
