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


def test_a_schema_3_file_reads_into_the_typed_records(tmp_path) -> None:
    """Schema 3 kept the memory timeline in ``measurement.extra`` and the node profile and each
    projection as open dicts: they read into the schema-4 records, figures unchanged."""
    from mlfit.result import load_report

    doc = json.loads(report(run_result(0.004)).model_dump_json())
    doc["schema_version"] = 3
    result = doc["results"][0]
    timeline = {"source": "RSS polled", "samples": [[0.0, 1024], [0.1, 2048]], "phases": [["load", 0.05]]}
    result["measurement"].pop("memory_timeline", None)
    result["measurement"]["extra"] = {"memory_timeline": timeline, "batch_sweep": []}
    result["node_profile"] = {"runtime_version": "1.20.0", "nodes": {"c": {"op": "Conv"}},
                              "by_threads": {"1": {"nodes_us": 5.0, "node_us": {"c": 5.0}}}}
    result["targets"][0]["projection"] = {
        "method": "per-node scaling", "latency": {"p50": {"value": 2.0, "lower": 1.0, "upper": 3.0}},
        "top_ops": [{"op": "Conv", "seconds": 0.002, "share": 1.0}],
        "details": {"target_threads": 2, "factor": {"value": 2.0, "lower": 1.0, "upper": 3.0},
                    "a_key_since_retired": 1}}
    result["calibration"] = {"schema_version": 2, "gemm_flops": {"1": 1e11}, "bandwidth": {"1": 2e10},
                             "a_key_since_retired": True}
    path = tmp_path / "v3.json"
    path.write_text(json.dumps(doc))
    loaded = load_report(path).results[0]
    assert loaded.measurement is not None and loaded.measurement.extra == {"batch_sweep": []}
    assert loaded.measurement.memory_timeline is not None
    assert loaded.measurement.memory_timeline.samples == [(0.0, 1024), (0.1, 2048)]
    assert loaded.measurement.memory_timeline.phases == [("load", 0.05)]
    assert loaded.node_profile is not None and loaded.node_profile.by_threads["1"].node_us == {"c": 5.0}
    assert loaded.node_profile.by_threads["1"].nodes_us_low is None  # older profiles: no uncontended figures
    projection = loaded.targets[0].projection
    assert projection is not None and projection.top_ops[0].op == "Conv"
    assert projection.details.target_threads == 2 and projection.details.factor is not None
    assert projection.details.factor.upper == 3.0
    assert loaded.calibration is not None and loaded.calibration.gemm_flops == {"1": 1e11}
