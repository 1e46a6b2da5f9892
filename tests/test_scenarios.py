"""Load scenarios: the server loop, the rate search, batch sweeps, load budgets and their checks.

The scenario functions take any ``run(feed)`` callable; the unit tests drive them with a
service that sleeps a known time (sleep releases the GIL like a runtime call does), so the
capacity is known by construction and no test depends on how fast this machine is. The CLI
tests run real ONNX models in the real worker subprocess.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

from conftest import FAST, assert_no_traceback, run_cli
from mlfit.catalog.loader import load_profile_file
from mlfit.catalog.schema import Budgets, Percentile
from mlfit.checks.load import best_batch_check, latency_at_rate_check
from mlfit.errors import ConfigError
from mlfit.measure.loadplan import parse_batch_sizes, plan_load
from mlfit.measure.scenarios import (
    LatencyGoal,
    Scenario,
    find_max_qps,
    percentile_interval,
    requests_for,
    serve,
    trial_verdict,
)
from mlfit.result import Provenance, Verdict
from mlfit.zoo import builders


def sleeper(seconds: float) -> Any:
    def run(_feed: object) -> None:
        time.sleep(seconds)

    return run


# ---------------------------------------------------------------- server loop


def test_server_keeps_up_below_capacity_and_counts_latency_from_arrival() -> None:
    # 4 callers x 2 ms service = 2000/s capacity; offer 100/s.
    result = serve(sleeper(0.002), [None], rate=100, n_requests=80, callers=4, max_time_s=5)
    assert result["kept_up"], result["reason"]
    assert result["completed"] == 80
    latency = result["latency"]
    # Latency runs from the scheduled arrival, so it can never be shorter than the service time.
    assert latency["min"] >= 0.002
    assert 0.5 * result["offered_qps"] <= result["achieved_qps"] <= 1.5 * result["offered_qps"]


def test_server_overloaded_does_not_keep_up_and_queueing_shows_in_latency() -> None:
    # 1 caller x 10 ms = 100/s capacity; offer 400/s: the backlog grows every request.
    result = serve(sleeper(0.010), [None], rate=400, n_requests=60, callers=1, max_time_s=5)
    assert not result["kept_up"]
    assert "served" in result["reason"] or "growing" in result["reason"]
    # The last requests waited behind the earlier ones: far longer than one service time.
    assert result["latency"]["max"] > 5 * 0.010
    assert result["achieved_qps"] < 0.9 * result["offered_qps"]


def test_server_stops_at_max_time_and_reports_unserved_requests() -> None:
    result = serve(sleeper(0.05), [None], rate=1000, n_requests=500, callers=1, max_time_s=0.3)
    assert not result["kept_up"]
    assert result["completed"] < 500
    assert "never served" in result["reason"]


def test_requests_for_respects_samples_and_time_bounds() -> None:
    assert requests_for(rate=1000, min_samples=662, min_time_s=0.1, max_time_s=10) == 662
    assert requests_for(rate=10, min_samples=662, min_time_s=1, max_time_s=2) == 20  # capped by max time
    assert requests_for(rate=100, min_samples=1, min_time_s=3, max_time_s=10) == 300


# ---------------------------------------------------------------- confidence and verdicts


def test_percentile_interval_brackets_the_percentile_and_narrows_with_samples() -> None:
    few = sorted(float(i) for i in range(100))
    many = sorted(float(i) / 10 for i in range(1000))
    low, high = percentile_interval(few, 0.9)
    assert low <= 89 <= high
    low_m, high_m = percentile_interval(many, 0.9)
    assert low_m <= 89.9 <= high_m
    # Relative width shrinks with ten times the samples.
    assert (high_m - low_m) / 100 < (high - low) / 100


def _run(kept_up: bool, p90: float | None, ci: tuple[float, float] | None, n: int = 200) -> dict[str, Any]:
    latency: dict[str, Any] = {"n": n, "p90": p90, "ci95": {"p90": list(ci)} if ci else {}}
    return {
        "qps": 100.0,
        "kept_up": kept_up,
        "reason": "" if kept_up else "served 50/s of 100/s",
        "latency": latency,
        "callers": 4,
        "achieved_qps": 100.0 if kept_up else 50.0,
    }


@pytest.mark.parametrize(
    ("run", "expected"),
    [
        (_run(True, 0.004, (0.003, 0.0045)), "PASS"),
        (_run(True, 0.008, (0.006, 0.010)), "FAIL"),
        (_run(True, 0.005, (0.004, 0.006)), "INCONCLUSIVE"),
        (_run(True, None, None, n=20), "INCONCLUSIVE"),
        (_run(False, 0.001, (0.001, 0.001)), "FAIL"),
    ],
)
def test_trial_verdict_is_three_way(run: dict[str, Any], expected: str) -> None:
    verdict, reason = trial_verdict(run, LatencyGoal(percentile=Percentile.P90, limit_s=0.005))
    assert verdict == expected
    assert (reason == "") == (expected == "PASS")


def test_find_max_qps_brackets_the_capacity_of_a_known_service() -> None:
    # 2 callers x 5 ms = 400/s capacity at best; with p90 <= 30 ms the limit lies below that.
    result = find_max_qps(
        sleeper(0.005),
        [None],
        LatencyGoal(percentile=Percentile.P90, limit_s=0.030),
        callers=2,
        start_rate=100,
        min_time_s=0.2,
        time_budget_s=8,
        max_trials=7,
    )
    assert result["lower"] is not None and result["lower"] > 0, result
    assert result["lower"] <= 400 * 1.1, result
    if result["upper"] is not None:
        assert result["upper"] > result["lower"]
    verdicts = {t["verdict"] for t in result["trials"]}
    assert "PASS" in verdicts
    # Conservative: the reported rate is a rate that was proven to pass.
    assert any(t["qps"] == result["rate"] and t["verdict"] == "PASS" for t in result["trials"])


def test_run_scenarios_searches_even_for_a_microsecond_model() -> None:
    from mlfit.measure.scenarios import ScenarioSettings, run_scenarios

    settings = ScenarioSettings(
        scenario=Scenario.SERVER,
        find_max_qps=[LatencyGoal(percentile=Percentile.P50, limit_s=0.010)],
        search_trials=3,
    )
    extra, _ = run_scenarios(
        lambda _feed: None,
        [None],
        lambda _size: None,
        settings,
        single_stream_mean_s=1e-6,
        usable_cores=2,
        threads=1,
        min_samples=1,
        min_time_s=0.1,
        max_time_s=2.0,
    )
    search = extra["scenario"]["max_qps"][0]
    assert search["trials"], search  # the start rate is capped below the search's ceiling
    assert search["trials"][0]["qps"] <= 5000


# ---------------------------------------------------------------- budgets, plans, checks


def test_profile_load_budgets_parse_with_units(tmp_path: Path) -> None:
    path = tmp_path / "svc.yaml"
    path.write_text(
        "schema_version: 1\nid: svc\nhardware: weak-cpu-2vcpu\nruntimes: [onnxruntime]\n"
        "budgets:\n  load_latency: {at: 6000/min, p99: 50 ms}\n  sustains: 30/s\n"
    )
    budgets = load_profile_file(path).budgets
    assert budgets.load_latency[0].at == pytest.approx(100.0)
    assert budgets.load_latency[0].limits() == {Percentile.P99: pytest.approx(0.05)}
    assert budgets.sustains == pytest.approx(30.0)


def test_bad_load_budget_names_file_line_and_fix(tmp_path: Path) -> None:
    path = tmp_path / "svc.yaml"
    path.write_text(
        "schema_version: 1\nid: svc\nhardware: weak-cpu-2vcpu\nruntimes: [onnxruntime]\n"
        "budgets:\n  load_latency: {at: 100/s}\n"
    )
    with pytest.raises(ConfigError) as err:
        load_profile_file(path)
    assert "svc.yaml:6" in err.value.message and "percentile limit" in err.value.message


def test_plan_adds_rates_from_budgets_and_refuses_bad_flags(tmp_path: Path) -> None:
    from mlfit.api import resolve_targets

    path = tmp_path / "svc.yaml"
    path.write_text(
        "schema_version: 1\nid: svc\nhardware: weak-cpu-2vcpu\nruntimes: [onnxruntime]\n"
        "budgets:\n  load_latency: {at: 40/s, p90: 50 ms}\n  sustains: 30/s\n"
    )
    targets = resolve_targets([str(path)])
    plan = plan_load(targets, qps=[10])
    assert plan.scenario is Scenario.SERVER and plan.server_rates == [10.0, 30.0, 40.0]
    assert plan_load(resolve_targets(["edge"])).active is False
    with pytest.raises(ConfigError, match="needs a request rate"):
        plan_load(resolve_targets(["edge"]), scenario="server")
    with pytest.raises(ConfigError, match="unknown --scenario"):
        plan_load(targets, scenario="burst")
    with pytest.raises(ConfigError, match="batch size"):
        parse_batch_sizes("1,0,4")
    assert parse_batch_sizes("8, 1,2,2") == (1, 2, 8)


def test_latency_at_rate_check_uses_the_interval_and_keeping_up() -> None:
    from mlfit.records import ServerRun

    def check(run: dict[str, Any] | None) -> Verdict:
        typed = ServerRun.model_validate(run) if run is not None else None  # as the worker records it
        return latency_at_rate_check(
            typed, Percentile.P90, 0.005, 100.0, Provenance.MEASURED_ON_HOST, "m"
        ).verdict

    assert check(_run(True, 0.004, (0.003, 0.0045))) is Verdict.PASS
    assert check(_run(True, 0.008, (0.006, 0.010))) is Verdict.FAIL
    assert check(_run(True, 0.005, (0.004, 0.006))) is Verdict.INCONCLUSIVE
    assert check(_run(False, 0.001, (0.001, 0.001))) is Verdict.FAIL
    assert check(None) is Verdict.INCONCLUSIVE


def test_best_batch_is_the_smallest_that_meets_the_throughput_budget() -> None:
    from mlfit.api import resolve_targets
    from mlfit.records import BatchPoint
    from mlfit.result import Measurement

    target = resolve_targets(["weak-cpu"])[0]  # throughput budget 10/s
    rows = [
        {"batch_size": b, "throughput_per_s": t, "latency_p50_s": b / t}
        for b, t in ((1, 5.0), (2, 12.0), (4, 20.0))
    ]
    fake = Measurement.model_construct(batch_sweep=[BatchPoint.model_validate(r) for r in rows])
    check = best_batch_check(target, fake, Provenance.MEASURED_ON_HOST, "m")
    assert check is not None and check.verdict is Verdict.PASS and "batch 2" in check.reason
    fake = Measurement.model_construct(batch_sweep=[BatchPoint.model_validate(rows[0])])
    check = best_batch_check(target, fake, Provenance.MEASURED_ON_HOST, "m")
    assert check is not None and check.verdict is Verdict.FAIL
    assert Budgets().load_latency == [] and Budgets().sustains is None


def _swept_measurement() -> Any:
    """A real-shaped measurement with a batch sweep and a server run at 40/s (typed fields, schema 8)."""
    from mlfit.measure.stats import latency_stats
    from mlfit.result import ColdStart, Measurement, MemoryPhases, Throughput

    samples = [int(4e6 * (1 + 0.02 * (i % 7))) for i in range(700)]
    latency = {"n": 400, "p90": 0.004, "ci95": {"p90": [0.0035, 0.0045]}}
    return Measurement(
        runtime="onnxruntime", runtime_version="1.32.0", threads=2, execution_provider="CPUExecutionProvider",
        cold_start=ColdStart(import_s=0.1, load_s=0.05, first_inference_s=0.01), latency=latency_stats(samples),
        memory=MemoryPhases(method="test", interpreter_bytes=20 << 20, runtime_baseline_bytes=60 << 20,
                            load_peak_bytes=80 << 20, inference_peak_bytes=90 << 20, peak_bytes=90 << 20),
        throughput=Throughput(single_stream_per_s=250.0),
        batch_sweep=[{"batch_size": 1, "throughput_per_s": 250.0, "latency_p50_s": 0.004},
                     {"batch_size": 4, "throughput_per_s": 309.5, "latency_p50_s": 0.013}],
        scenario={"server": [{"qps": 40.0, "kept_up": True, "achieved_qps": 40.0, "callers": 4,
                              "latency": latency}]},
    )


def test_host_load_figures_never_judge_a_projected_target(tmp_path: Path) -> None:
    """--batch-sizes and load runs on this host judge a target only where this host is the target."""
    from mlfit.analysis.project import Band, Projection
    from mlfit.api import resolve_targets
    from mlfit.checks.engine import evaluate
    from mlfit.result import ModelInfo

    path = tmp_path / "svc.yaml"
    path.write_text("schema_version: 1\nid: svc\nhardware: weak-cpu-2vcpu\nruntimes: [onnxruntime]\n"
                    "budgets:\n  throughput: 10/s\n  load_latency: {at: 40/s, p90: 50 ms}\n")
    target = resolve_targets([str(path)])[0]
    m = _swept_measurement()
    model = ModelInfo(path="m.onnx", sha256="0", format="onnx", runtime="onnxruntime", size_bytes=1 << 20)
    band = Band(0.012, 0.010, 0.015)
    projection = Projection(target="svc", method="test projection", latency={Percentile.P90: band},
                            cold_start=None, memory_peak=None, throughput=Band(2.0, 1.5, 2.5),
                            throughput_basis="single stream")
    projected = evaluate(target, model, m, None, projection)
    metrics = {c.metric for c in projected.checks}
    assert "batch.best" not in metrics and not any(x.startswith("load.") for x in metrics)
    assert all(c.provenance is not Provenance.MEASURED_ON_HOST for c in projected.checks)
    # The projected throughput (2/s) fails the budget; the host's 309.5/s batch does not rescue it.
    assert projected.verdict is Verdict.FAIL
    note = next(n for n in projected.notes if n.startswith("not judged on"))
    assert "--batch-sizes" in note and "p90 <= 50.00 ms at 40.0/s" in note
    # Without calibration (no projection): host figures still never judge the load budgets.
    unprojected = evaluate(target, model, m, None, None)
    assert not {"batch.best", "load.p90@40/s"} & {c.metric for c in unprojected.checks}
    # On the target's own hardware the same figures are the target's: judged.
    on_target = evaluate(target, model, m, None, on_target=True)
    judged = {c.metric: c for c in on_target.checks}
    assert judged["batch.best"].verdict is Verdict.PASS and judged["load.p90@40/s"].verdict is Verdict.PASS
    assert judged["batch.best"].provenance is Provenance.MEASURED_ON_TARGET


# ---------------------------------------------------------------- the CLI, real worker


@pytest.fixture(scope="module")
def free_batch_model(models_dir: Path) -> Path:
    return builders.save(
        builders.mobilenet_v2(width=0.35, resolution=64, classes=10, batch="batch"),
        models_dir / "mobilenet_v2_free_batch.onnx",
    )


@pytest.fixture(scope="module")
def service_profile(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("profiles") / "svc.yaml"
    path.write_text(
        "schema_version: 1\nid: svc\nhardware: weak-cpu-2vcpu\nruntimes: [onnxruntime]\nthreads: 1\n"
        "budgets:\n  latency: {p90: 50 ms}\n  load_latency: {at: 40/s, p90: 50 ms}\n"
        "  sustains: 20/s\n  throughput: 10/s\n"
    )
    return path


def test_cli_server_scenario_reports_latency_under_load(tiny_model: Path, tmp_path: Path) -> None:
    out = tmp_path / "r.json"
    run = run_cli(
        "check",
        "--scenario",
        "server",
        "--qps",
        "50",
        tiny_model,
        "--target",
        "gpu-server",
        "--json",
        out,
        *FAST,
    )
    assert_no_traceback(run)
    assert run.code in (0, 1), run.output
    assert "server at 50.0/s" in run.stdout  # the host's figures, shown as this host's
    # gpu-server is projected: the host's latency under load is not held against its budget.
    assert "load.p99@50/s" not in run.stdout and "not judged on" in run.stdout
    measurement = json.loads(out.read_text())["results"][0]["measurement"]
    server = measurement["scenario"]["server"][0]
    assert server["qps"] == 50 and server["completed"] > 0 and "kept_up" in server
    assert server["latency"]["n"] == server["completed"]


def test_cli_find_max_qps_gives_a_rate_with_bounds(
    free_batch_model: Path, service_profile: Path, tmp_path: Path
) -> None:
    out = tmp_path / "r.json"
    run = run_cli(
        "check",
        free_batch_model,
        "--dim",
        "batch=1",
        "--target",
        service_profile,
        "--find-max-qps",
        "--batch-sizes",
        "1,2,4",
        "--json",
        out,
        *FAST,
    )
    assert_no_traceback(run)
    assert run.code in (0, 1), run.output
    assert "max rate with p90 <= 50.00 ms" in run.stdout
    report = json.loads(out.read_text())["results"][0]
    search = report["measurement"]["scenario"]["max_qps"][0]
    assert search["percentile"] == "p90" and search["trials"]
    if search["lower"] is not None and search["upper"] is not None:
        assert search["lower"] < search["upper"]
    sweep = report["measurement"]["batch_sweep"]
    assert [row["batch_size"] for row in sweep] == [1, 2, 4]
    assert all(row["throughput_per_s"] > 0 and row["latency_p50_s"] > 0 for row in sweep)
    # svc is projected (weak-cpu hardware, not this host): its load budgets and the sweep's best batch
    # are host figures, so they are left out of its verdict with the reason, never judged.
    target = report["targets"][0]
    metrics = {c["metric"] for c in target["checks"]}
    assert not {"load.sustains", "load.p90@40/s", "batch.best"} & metrics
    assert all(c["provenance"] != "measured-on-host" for c in target["checks"])
    note = next(n for n in target["notes"] if n.startswith("not judged on"))
    assert "p90 <= 50.00 ms at 40.0/s" in note and "sustains >= 20.0/s" in note and "--batch-sizes" in note


def test_cli_offline_and_fixed_batch_sweep_says_why(small_cnn_model: Path, tmp_path: Path) -> None:
    out = tmp_path / "r.json"
    run = run_cli(
        "check",
        small_cnn_model,
        "--target",
        "weak-cpu",
        "--scenario",
        "offline",
        "--batch-sizes",
        "1,2",
        "--json",
        out,
        *FAST,
    )
    assert_no_traceback(run)
    measurement = json.loads(out.read_text())["results"][0]["measurement"]
    offline = measurement["scenario"]["offline"]
    assert offline["throughput_per_s"] > 0 and offline["mode"].startswith("concurrent callers")
    assert measurement["batch_sweep"] == []
    assert any("batch sweep skipped" in w for w in measurement["warnings"])


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--scenario", "burst"), "unknown --scenario 'burst'"),
        (("--scenario", "server"), "--scenario server needs a request rate"),
        (("--batch-sizes", "1,x"), "is not a batch size"),
        (("--qps", "0"), "must be greater than zero"),
    ],
)
def test_cli_bad_load_flags_exit_2_with_one_line(
    tiny_model: Path, args: tuple[str, ...], message: str
) -> None:
    run = run_cli("check", tiny_model, "--target", "edge", *args, *FAST)
    assert_no_traceback(run)
    assert run.code == 2, run.output
    assert message in run.stderr


# ---------------------------------------------------------------- MLPerf LoadGen (where installed)


def test_loadgen_server_and_offline_give_the_builtin_fields_and_state_their_length() -> None:
    pytest.importorskip("mlperf_loadgen", reason="mlcommons-loadgen is not installed")
    from mlfit.measure.scenarios import Scenario, ScenarioSettings, run_scenarios

    def batch_feeds(size: int) -> list[Any] | None:
        return [None]

    settings = ScenarioSettings(scenario=Scenario.OFFLINE, server_rates=[100.0], callers=2)
    extra, warnings = run_scenarios(sleeper(0.002), [None], batch_feeds, settings, 0.002, 2, 1, 130, 0.5, 3.0)
    scenario = extra["scenario"]
    assert scenario["generator"].startswith("mlperf-loadgen")
    server = scenario["server"][0]
    assert server["completed"] == server["requests"] == 130 and server["latency"]["n"] == 130
    assert server["latency"]["p50"] >= 0.002  # at least the service time
    assert 50 < server["achieved_qps"] < 200 and server["kept_up"], server.get("reason")
    record = server["loadgen"]
    assert record["settings"]["scenario"] == "Server" and record["settings"]["server_target_qps"] == 100
    assert record["summary"]["result"] in ("VALID", "INVALID") and record["summary"]["p99_s"] > 0
    # A CI-sized run is a fraction of LoadGen's own minimum duration and of the MLPerf rules' 600 s.
    assert record["length"]["loadgen_default_min_duration_s"] > 0
    assert record["length"]["share_of_mlperf_minimum"] < 0.05
    offline = scenario["offline"]
    assert offline["loadgen"]["settings"]["scenario"] == "Offline" and offline["throughput_per_s"] > 0
    assert not warnings
    # The built-in generator stays the fallback, with the same fields.
    builtin, _ = run_scenarios(sleeper(0.002), [None], batch_feeds, settings.model_copy(update={"use_loadgen": False}),
                               0.002, 2, 1, 130, 0.5, 3.0)
    assert builtin["scenario"]["generator"] == "built-in"
    assert set(builtin["scenario"]["server"][0]) <= set(server) | {"loadgen", "generator"}
    # What both generators write validates into the result's typed records (schema 8).
    from mlfit.records import ScenarioRuns

    typed = ScenarioRuns.model_validate(scenario)
    assert typed.server[0].loadgen is not None and typed.server[0].loadgen.summary.percentiles_s["p99"] > 0
    assert typed.offline is not None and typed.offline.loadgen is not None
    assert ScenarioRuns.model_validate(builtin["scenario"]).server[0].latency is not None
