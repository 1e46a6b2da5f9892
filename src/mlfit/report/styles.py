"""The terminal's styles and short provenance names, shared by the wide and the compact layouts.

A leaf module: both layouts import it, so neither needs the other to colour a verdict.
"""

from __future__ import annotations

from mlfit.result import ChangeStatus, Provenance, Verdict

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
