"""The terminal rendering of a regression compare (``mlfit compare``, ``mlfit check --baseline``)."""

from __future__ import annotations

from rich.console import Console, ConsoleOptions, Group, RenderableType, RenderResult
from rich.table import Table
from rich.text import Text

from mlfit.report.common import change_text, format_value, interval_text, sanitized
from mlfit.report.styles import STATUS_STYLE
from mlfit.result import ChangeStatus, Comparison


class _ByWidth:
    """The table from WIDE_FROM columns, else one line per metric (mlfit.report.compact)."""

    def __init__(self, comparison: Comparison, warnings: bool) -> None:
        self.comparison, self.warnings = comparison, warnings

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        from mlfit.report.compact import WIDE_FROM, render_comparison_compact

        if options.max_width >= WIDE_FROM:
            yield render_comparison_wide(self.comparison, self.warnings)
        else:
            yield render_comparison_compact(self.comparison, options.max_width, self.warnings)


def render_comparison(comparison: Comparison, warnings: bool = True) -> RenderableType:
    """The compare for a terminal or a log, laid out for the width it is printed at (names and
    reasons from files made printable first, for either layout)."""
    return _ByWidth(sanitized(comparison), warnings)


def render_comparison_wide(comparison: Comparison, warnings: bool = True) -> RenderableType:
    """One compact table per model, the reasons for anything not unchanged below it, then the answer.

    ``warnings=False`` leaves the warnings out, for a CLI that prints them on stderr.
    """
    comparison = sanitized(comparison)  # names and reasons from files: printable, and Text, never markup
    parts: list[RenderableType] = []
    if warnings:
        parts.extend(Text(f"warning: {w}", style="yellow") for w in comparison.warnings)
    for model in comparison.models:
        table = Table(
            title=Text(f"Compared with {comparison.base_path}: {model.model}"),
            title_justify="left",
            header_style="bold",
            caption=f"{comparison.method}; a regression needs the whole interval beyond the minimum effect on "
            "the worse side",
            caption_justify="left",
        )
        # Numbers fold rather than end in an ellipsis ("107.2..."): a figure is never cut.
        table.add_column("metric", overflow="fold")
        for column in ("base", "new", "change", f"{comparison.confidence:.0%} interval"):
            table.add_column(column, justify="right", overflow="fold")
        table.add_column("status", overflow="fold")
        for change in model.changes:
            table.add_row(
                Text(change.metric),
                format_value(change.base, change.unit),
                format_value(change.new, change.unit),
                change_text(change),
                interval_text(change),
                Text(change.status.value, style=STATUS_STYLE[change.status]),
            )
        parts.append(table)
        for change in model.changes:
            if change.status not in (ChangeStatus.UNCHANGED, ChangeStatus.NOT_TESTED):
                parts.append(Text(f"• {change.metric}: {change.reason}", style=STATUS_STYLE[change.status]))
        parts.extend(Text(f"• {note}", style="dim") for note in model.notes)
    verdict = Text("REGRESSION", style="bold red") if comparison.regressed else Text("no regression", "bold green")
    parts.append(Text.assemble("Compare: ", verdict))
    return Group(*parts)
