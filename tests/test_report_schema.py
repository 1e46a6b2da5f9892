"""The JSON Schema file for result documents: generated from the models, and results validate against it."""

from __future__ import annotations

import json

import pytest

from conftest import REPO
from mlfit.compare import compare_reports, with_comparison
from mlfit.result import Report
from reportdata import failed_result, report, run_result

SCHEMA = REPO / "schemas" / "report.schema.json"
REGENERATE = "regenerate it: PYTHONPATH=src python -m mlfit schema --kind report > schemas/report.schema.json"


def test_schema_file_matches_the_models() -> None:
    assert SCHEMA.is_file(), REGENERATE
    assert json.loads(SCHEMA.read_text()) == Report.model_json_schema(), f"{SCHEMA} is out of date; {REGENERATE}"


def test_results_validate_against_the_schema_file() -> None:
    jsonschema = pytest.importorskip("jsonschema", reason="jsonschema is in the dev extra")
    schema = json.loads(SCHEMA.read_text())
    base = report(run_result(0.004), failed_result())
    new = report(run_result(0.005, seed=2), failed_result())
    for document in (base, with_comparison(new, compare_reports(base, new, "base.json"))):
        jsonschema.validate(json.loads(document.model_dump_json()), schema)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({"schema_version": 1, "results": "nope"}, schema)
