"""The terminal rendering of a regression compare (``mlfit compare``, ``mlfit check --baseline``)."""

from __future__ import annotations

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from mlfit.report.common import change_text, format_value, interval_text
from mlfit.result import ChangeStatus, Comparison

STATUS_STYLE = {
    ChangeStatus.REGRESSION: "bold red",
    ChangeStatus.IMPROVEMENT: "bold green",
    ChangeStatus.UNCHANGED: "",
    ChangeStatus.INCONCLUSIVE: "yellow",
    ChangeStatus.NOT_TESTED: "dim",
}


def render_comparison(comparison: Comparison) -> RenderableType:
    """One table per model: base, new, change, interval, status and why; then the overall answer."""
    parts: list[RenderableType] = []
    for warning in comparison.warnings:
        parts.append(Text(f"warning: {warning}", style="yellow"))
    for model in comparison.models:
        title = f"Compared with {comparison.base_path}: {model.model}"
        table = Table(
            title=title,
            title_justify="left",
            header_style="bold",
            caption=f"{comparison.method}; a regression needs the whole interval beyond the minimum "
            "effect on the worse side",
            caption_justify="left",
        )
        for column, justify in (
            ("metric", "left"),
            ("base", "right"),
            ("new", "right"),
            ("change", "right"),
            (f"{comparison.confidence:.0%} interval", "right"),
            ("status", "left"),
            ("why", "left"),
        ):
            table.add_column(column, justify=justify)  # type: ignore[arg-type]
        for change in model.changes:
            table.add_row(
                change.metric,
                format_value(change.base, change.unit),
                format_value(change.new, change.unit),
                change_text(change),
                interval_text(change),
                Text(change.status.value, style=STATUS_STYLE[change.status]),
                change.reason,
            )
        parts.append(table)
        parts.extend(Text(f"• {note}", style="dim") for note in model.notes)
    if comparison.regressed:
        parts.append(Text.assemble("Compare: ", Text("REGRESSION", style="bold red")))
    else:
        parts.append(Text.assemble("Compare: ", Text("no regression", style="bold green")))
    return Group(*parts)
