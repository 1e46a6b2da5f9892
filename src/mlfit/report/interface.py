"""What a reporter is: a name, the other names people type for it, and a pure ``render``.

A new output format is one module with a ``render_<x>(report)`` function, one ``OutputFormat``
member and one line in :mod:`mlfit.report.registry` (pip-audit's ``VulnerabilityFormat``).
"""

from __future__ import annotations

from enum import Enum
from typing import Protocol

from mlfit.result import Report


class OutputFormat(str, Enum):
    """The closed set of file formats (a test walks every member through the registry)."""

    JSON = "json"
    MARKDOWN = "markdown"
    JUNIT = "junit"
    HTML = "html"
    TEXT = "text"


class Reporter(Protocol):
    """A pure function of a report, with the names it answers to on the command line."""

    @property
    def name(self) -> OutputFormat: ...

    @property
    def aliases(self) -> tuple[str, ...]: ...

    def render(self, report: Report) -> str | bytes: ...
