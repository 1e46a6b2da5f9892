"""The plain-text reporter: the terminal rendering without colour, for a log file or a ticket."""

from __future__ import annotations

import io

from rich.console import Console

from mlfit.result import Report

WIDTH = 140


def render_text(report: Report) -> str:
    """What ``mlfit check`` prints, as plain text ``WIDTH`` columns wide."""
    from mlfit.report.terminal import render_terminal

    buffer = io.StringIO()
    console = Console(
        file=buffer,
        width=WIDTH,
        no_color=True,
        color_system=None,
        force_terminal=False,
        legacy_windows=False,
        emoji=False,
        highlight=False,
    )
    console.print(render_terminal(report))
    if report.comparison is not None:
        from mlfit.report.comparison import render_comparison

        console.print(render_comparison(report.comparison))
    return buffer.getvalue()
