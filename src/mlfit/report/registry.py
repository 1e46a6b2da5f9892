"""Every reporter, by format: the one table ``--output`` names are looked up in.

Entries name their module rather than import it, so choosing ``--output json`` never imports
the HTML page kit (startup stays fast; ``mlfit check`` imports only what it renders).
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import cast

from mlfit.errors import ConfigError
from mlfit.report.interface import OutputFormat, Reporter
from mlfit.result import Report


@dataclass(frozen=True)
class _Lazy:
    """A reporter whose render function is imported on first use."""

    name: OutputFormat
    aliases: tuple[str, ...]
    module: str
    function: str

    def render(self, report: Report) -> str | bytes:
        render = getattr(importlib.import_module(self.module), self.function)
        return cast("str | bytes", render(report))


REPORTERS: dict[OutputFormat, Reporter] = {
    r.name: r
    for r in (
        _Lazy(OutputFormat.JSON, (), "mlfit.report.json", "render_json"),
        _Lazy(OutputFormat.MARKDOWN, ("md",), "mlfit.report.markdown", "render_markdown"),
        _Lazy(OutputFormat.JUNIT, ("xml",), "mlfit.report.junit", "render_junit"),
        _Lazy(OutputFormat.HTML, (), "mlfit.report.html", "render_html"),
        _Lazy(OutputFormat.TEXT, ("txt", "terminal"), "mlfit.report.text", "render_text"),
    )
}


def reporter(fmt: OutputFormat) -> Reporter:
    """The reporter of ``fmt`` (every member has one: a test walks them)."""
    return REPORTERS[fmt]


def format_names() -> str:
    return ", ".join(fmt.value for fmt in REPORTERS)


def parse_format(name: str, spec: str) -> OutputFormat:
    """The format a user typed, by name or alias, case-insensitive; ConfigError naming the choices."""
    key = name.strip().lower()
    for fmt, rep in REPORTERS.items():
        if key == fmt.value or key in rep.aliases:
            return fmt
    raise ConfigError(f"--output '{spec}': unknown format '{name}'", f"formats: {format_names()}")
