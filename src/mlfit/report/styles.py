"""The terminal's styles and short provenance names, shared by the wide and the compact layouts.

A leaf module: both layouts import it, so neither needs the other to colour a verdict.
"""

from __future__ import annotations

import re

from mlfit.result import ChangeStatus, Check, Provenance, Verdict

VERDICT_STYLE = {
    Verdict.PASS: "bold green",
    Verdict.FAIL: "bold red",
    Verdict.INCONCLUSIVE: "bold yellow",
    Verdict.ERROR: "bold magenta",
}
PROVENANCE_SHORT = {
    Provenance.MEASURED_ON_HOST: "host",
    Provenance.MEASURED_ON_TARGET: "target",
    Provenance.EMULATED: "emulated",
    Provenance.PROJECTED: "projected",
    Provenance.STATIC: "static",
}
STATUS_STYLE = {
    ChangeStatus.REGRESSION: "bold red",
    ChangeStatus.IMPROVEMENT: "bold green",
    ChangeStatus.UNCHANGED: "",
    ChangeStatus.INCONCLUSIVE: "yellow",
    ChangeStatus.NOT_TESTED: "dim",
}


def method_tag(check: Check) -> str:
    """A projected figure's estimator, compactly: ``dm`` (the device model fitted on published
    measurements), ``host`` (this host's uncontended per-node time scaled to the target), ``dm+host x8.1``
    (both, that far apart: the band spans them) or ``roofline`` (a GPU); "" for any other figure."""
    if check.provenance is not Provenance.PROJECTED:
        return ""
    method = check.method or ""
    both = re.match(r"device model \+ host-scaled, x([0-9.]+) apart", method)
    if both:
        return f"dm+host x{both.group(1)}"
    if method.startswith("device model"):
        return "dm"
    if method.startswith("host-scaled"):
        return "host"
    return "roofline" if "roofline" in method else ""


def source_text(check: Check, labels: dict[Provenance, str] = PROVENANCE_SHORT, narrow: bool = False) -> str:
    """Where a figure comes from, with a projected figure's estimator: ``projected (dm)``; ``narrow``
    (the compact layout): ``proj:dm``, ``proj:host``, ``proj:dm+host`` (the reasons give how far apart)."""
    tag = method_tag(check)
    if narrow and tag:
        return "proj:" + tag.split(" ")[0]
    return f"{labels[check.provenance]} ({tag})" if tag else labels[check.provenance]
