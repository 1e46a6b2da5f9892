"""The verdict table per target, its notes, and the measured-versus-projected figures."""

from __future__ import annotations

from mlfit.report.common import (
    PROVENANCE_LABEL,
    budget_text,
    format_value,
    margin_text,
    value_text,
)
from mlfit.report.html.page import badge, e, table
from mlfit.result import Provenance, RunResult


def _verdict_table(result: RunResult) -> str:
    rows: list[list[str]] = []
    classes: list[str] = []
    for target in result.targets:
        for i, check in enumerate(target.checks):
            rows.append(
                [
                    e(target.target) if i == 0 else "",
                    f"<code>{e(check.metric)}</code>",
                    e(budget_text(check)),
                    e(value_text(check)),
                    e(margin_text(check)),
                    e(PROVENANCE_LABEL[check.provenance]),
                    badge(check.verdict.value, check.verdict.value),
                    e(check.reason),
                ]
            )
            classes.append("")
        rows.append(
            [
                "",
                "overall",
                f"on {e(target.hardware_name)}",
                "",
                "",
                "",
                badge(target.verdict.value, target.verdict.value),
                "",
            ]
        )
        classes.append("overall")
    return table(
        ["target", "check", "budget", "value [band]", "margin", "source", "verdict", "reason"],
        rows,
        {3, 4},
        classes,
        "verdicts",
    )


def _notes(result: RunResult) -> str:
    """The notes of each target under its own name: a band widened for the Pi is not the VM's."""
    out = []
    for target in result.targets:
        if target.notes:
            out.append(
                f'<div class="notes"><h4>Notes for {e(target.target)} <span class="muted">on '
                f"{e(target.hardware_name)}</span></h4>"
                '<ul class="reasons muted">' + "".join(f"<li>{e(n)}</li>" for n in target.notes) + "</ul></div>"
            )
    return "".join(out)


def _projection_table(result: RunResult) -> str:
    rows = []
    for target in result.targets:
        for check in target.checks:
            if check.provenance is Provenance.PROJECTED:
                band = (
                    f"{format_value(check.lower, check.unit)} – {format_value(check.upper, check.unit)}"
                    if check.lower is not None and check.upper is not None
                    else "-"
                )
                rows.append(
                    [
                        e(target.target),
                        f"<code>{e(check.metric)}</code>",
                        e(format_value(check.value, check.unit)),
                        e(band),
                        e(check.budget),
                        badge(check.verdict.value, check.verdict.value),
                        e(check.method),
                    ]
                )
    if not rows:
        return ""
    return (
        "<p>Projected figures are carried from this host to the target's hardware by the stated method; "
        "PASS needs the conservative end of the band to fit, FAIL means even the optimistic end does not.</p>"
        + table(["target", "check", "projected", "band", "budget", "verdict", "method"], rows, {2, 3})
    )
