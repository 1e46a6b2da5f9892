"""The JSON reporter: the full result, versioned (see ``mlfit.result.RESULT_SCHEMA_VERSION``)."""

from __future__ import annotations

from mlfit.result import Report
from mlfit.safeio import non_finite_field


def render_json(report: Report) -> str:
    """The result as JSON. A NaN or Infinity (possible only in the free-form dicts) is a bug in
    mlfit: raised, never written (pydantic would write null, and a reader would take it for "absent")."""
    bad = non_finite_field(report.model_dump())
    if bad is not None:
        raise AssertionError(f"mlfit bug: the result holds NaN or Infinity at {bad}; refusing to write it")
    return report.model_dump_json(indent=2) + "\n"
