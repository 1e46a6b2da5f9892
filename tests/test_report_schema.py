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
    from mlfit.resultfile import load_report

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
    assert loaded.measurement is not None and loaded.measurement.batch_sweep == []
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


def test_a_schema_7_file_reads_its_load_runs_and_runtime_facts_into_fields(tmp_path) -> None:
    """Schema 7 kept the load runs, the batch sweep and the runtime's facts in ``measurement.extra``
    (a rate-search trial named its value by percentile): they read into the schema-8 fields."""
    from mlfit.resultfile import load_report

    doc = json.loads(report(run_result(0.004)).model_dump_json())
    doc["schema_version"] = 7
    measurement = doc["results"][0]["measurement"]
    for key in ("scenario", "batch_sweep", "runtime_details"):
        measurement.pop(key, None)
    latency = {"n": 400, "min": 0.003, "mean": 0.004, "std": 1e-4, "cv": 0.03, "p50": 0.004, "p90": 0.0045,
               "p95": 0.0047, "p99": None, "max": 0.006, "insufficient": ["p99"],
               "ci95": {"p50": [0.0039, 0.0041], "p90": [0.0044, 0.0046]}}
    measurement["extra"] = {
        "estimator": "Pipeline", "method": "predict_proba", "a_key_since_retired": 1,
        "batch_sweep": [{"batch_size": 2, "n": 30, "latency_p50_s": 0.006, "latency_p90_s": 0.007,
                         "latency_mean_s": 0.006, "latency_max_s": 0.009, "cv": 0.1, "throughput_per_s": 333.0}],
        "scenario": {
            "name": "offline", "callers": 2, "generator": "mlperf-loadgen 5.1",
            "server": [{"qps": 40.0, "callers": 2, "requests": 400, "completed": 400, "kept_up": True, "reason": "",
                        "offered_qps": 41.0, "achieved_qps": 40.5, "duration_s": 9.9, "latency": latency,
                        "queue_delay_p50_s": 1e-4, "queue_delay_max_s": 2e-3, "service_mean_s": 0.004,
                        "generator": "mlperf-loadgen 5.1",
                        "loadgen": {"settings": {"scenario": "Server", "mode": "PerformanceOnly",
                                                 "server_target_qps": 40.0, "min_duration_ms": 10000},
                                    "summary": {"result": "INVALID", "p99_s": 0.005, "p99.9_s": 0.006,
                                                "min_duration_satisfied": False},
                                    "length": {"run_s": 9.9, "share_of_mlperf_minimum": 0.0165},
                                    "latency_timing": "timed by mlfit"}}],
            "max_qps": [{"percentile": "p90", "limit_s": 0.05, "callers": 2, "rate": 80.0, "lower": 80.0,
                         "upper": 160.0, "status": "bracketed", "stopped_by": "tolerance",
                         "trials": [{"qps": 80.0, "verdict": "PASS", "reason": "", "achieved_qps": 79.0,
                                     "kept_up": True, "n": 100, "p90": 0.0045}]}],
            "offline": {"mode": "batched", "batch_size": 8, "callers": 1, "batches": 50, "throughput_per_s": 900.0,
                        "duration_s": 0.4}}}
    path = tmp_path / "v7.json"
    path.write_text(json.dumps(doc))
    m = load_report(path).results[0].measurement
    assert m is not None and m.runtime_details.estimator == "Pipeline" and m.runtime_details.method == "predict_proba"
    assert m.batch_sweep[0].batch_size == 2 and m.batch_sweep[0].throughput_per_s == 333.0
    assert m.scenario is not None and m.scenario.name == "offline"
    server = m.scenario.server[0]
    assert server.latency is not None and server.latency.ci95["p90"] == (0.0044, 0.0046)
    assert server.loadgen is not None and server.loadgen.summary.percentiles_s == {"p99": 0.005, "p99.9": 0.006}
    assert m.scenario.max_qps[0].trials[0].value == 0.0045
    assert m.scenario.offline is not None and m.scenario.offline.throughput_per_s == 900.0
    assert "extra" not in json.loads(m.model_dump_json())  # written back as schema 8
