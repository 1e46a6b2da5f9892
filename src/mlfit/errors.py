"""The one user-facing error type and the exit codes it maps to.

Any other exception escaping to the CLI is a bug and keeps its traceback.
"""

from __future__ import annotations

import re
from enum import IntEnum

# Characters that can rewrite a terminal or a CI log when printed: C0/C1 controls (ESC starts
# colour and cursor sequences, CR/LF start a forged line), DEL, zero-width and bidirectional
# formatting characters, and Unicode line/paragraph separators.
_UNPRINTABLE = re.compile("[\x00-\x1f\x7f-\x9f\u200b-\u200f\u2028-\u202e\u2060-\u2064\u2066-\u2069\ufeff]")
_AS_SPACE = frozenset("\t\n\r\x0b\x0c\u2028\u2029")


def printable(text: object, keep_lines: bool = False) -> str:
    """``text`` on one line with nothing a terminal would interpret: line breaks and tabs
    become spaces, every other control or formatting character a visible '?'.
    ``keep_lines`` keeps newlines and tabs (for HTML, where they are only whitespace)."""
    if keep_lines:
        return _UNPRINTABLE.sub(lambda m: m.group() if m.group() in "\t\n" else "?", str(text))
    return _UNPRINTABLE.sub(lambda m: " " if m.group() in _AS_SPACE else "?", str(text))


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
        """Message and hint on one printable line (file names and model contents included)."""
        text = printable(self.message)
        return f"{text} ({printable(self.hint)})" if self.hint else text


class ConfigError(MlfitError):
    """A bad flag, profile or hardware file (exit 2)."""

    exit_code = ExitCode.USAGE


class ModelError(MlfitError):
    """The model could not be loaded, analysed or measured (exit 3)."""

    exit_code = ExitCode.MODEL
