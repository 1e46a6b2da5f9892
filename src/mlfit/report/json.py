"""The JSON reporter: the full result, versioned (see ``mlfit.result.RESULT_SCHEMA_VERSION``)."""

from __future__ import annotations

from mlfit.result import Report


def render_json(report: Report) -> str:
    return report.model_dump_json(indent=2) + "\n"
