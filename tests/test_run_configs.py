"""Deployment configurations: which worker runs a check plans (mlfit.run.configs), table-driven."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import FAST, assert_no_traceback, run_cli
from mlfit.catalog.loader import Target, resolve_target
from mlfit.catalog.schema import Runtime
from mlfit.options import SKLEARN_THROUGHPUT_BATCH, MeasureOptions
from mlfit.run.configs import plan_configurations


def _target(name: str, threads: int, batch: int) -> Target:
    base = resolve_target("edge")
    profile = base.profile.model_copy(update={"id": name, "threads": threads, "batch_size": batch})
    return Target(profile, base.hardware, "test")


ORT, SK = Runtime.ONNXRUNTIME, Runtime.SKLEARN
# (targets as (name, threads, batch), runtime, options, usable cores) -> [(threads, batch, names)]
CASES = [
    pytest.param([("a", 4, 1)], ORT, MeasureOptions(), 2, [(2, 1, ("a",))], id="one target, threads capped"),
    pytest.param([("a", 4, 1), ("b", 2, 1), ("c", 8, 1), ("d", 1, 1), ("e", 3, 1)], ORT, MeasureOptions(), 2,
                 [(2, 1, ("a", "b", "c", "e")), (1, 1, ("d",))], id="five targets, two configurations"),
    pytest.param([("edge", 4, 1), ("h100", 8, 64), ("t4", 4, 8), ("pi5", 4, 1)], ORT, MeasureOptions(), 2,
                 [(2, 1, ("edge", "pi5")), (2, 64, ("h100",)), (2, 8, ("t4",))], id="batches split, order kept"),
    pytest.param([("a", 4, 1), ("b", 2, 1)], ORT, MeasureOptions(), 8,
                 [(4, 1, ("a",)), (2, 1, ("b",))], id="threads split on a bigger host"),
    pytest.param([("a", 4, 1), ("b", 2, 8)], ORT, MeasureOptions(threads=3), 8,
                 [(3, 1, ("a",)), (3, 8, ("b",))], id="--threads overrides every configuration"),
    pytest.param([("a", 4, 1), ("b", 2, 8)], ORT, MeasureOptions(threads=1, batch_size=4), 8,
                 [(1, 4, ("a", "b"))], id="--threads and --batch collapse to one"),
    pytest.param([("a", 2, 1), ("b", 2, 16)], SK, MeasureOptions(), 2,
                 [(2, SKLEARN_THROUGHPUT_BATCH, ("a",)), (2, 16, ("b",))], id="sklearn batch 1 is timed batched"),
    pytest.param([], ORT, MeasureOptions(), 2, [(2, 1, ())], id="profile without targets: the host's"),
    pytest.param([], SK, MeasureOptions(threads=1), 4, [(1, SKLEARN_THROUGHPUT_BATCH, ())], id="profile sklearn"),
]


@pytest.mark.parametrize(("targets", "runtime", "options", "cores", "expected"), CASES)
def test_plan_configurations(targets: list[tuple[str, int, int]], runtime: Runtime, options: MeasureOptions,
                             cores: int, expected: list[tuple[int, int, tuple[str, ...]]]) -> None:
    plan = plan_configurations([_target(*t) for t in targets], runtime, options, cores)
    assert [(c.threads, c.batch, c.targets) for c in plan] == expected
    assert all(c.runtime is runtime for c in plan)
    assert len({c.key for c in plan}) == len(plan)  # each configuration once


def test_a_fixed_batch_dim_does_not_split_configurations() -> None:
    """A model whose leading dims are fixed runs at its own batch: the targets' batches are moot."""
    targets = [_target("edge", 4, 1), _target("t4", 4, 8), _target("h100", 8, 64)]
    plan = plan_configurations(targets, ORT, MeasureOptions(), 2, batch_free=False)
    assert [(c.threads, c.batch, c.targets) for c in plan] == [(2, 1, ("edge", "t4", "h100"))]
    plan = plan_configurations(targets, ORT, MeasureOptions(), 8, batch_free=False)
    assert [(c.threads, c.batch, c.targets) for c in plan] == [(4, 1, ("edge", "t4")), (8, 1, ("h100",))]


def test_every_builtin_target_lands_in_exactly_one_configuration() -> None:
    from mlfit.catalog.loader import builtin_targets

    targets = builtin_targets()
    plan = plan_configurations(targets, ORT, MeasureOptions(), 2)
    names = [n for c in plan for n in c.targets]
    assert sorted(names) == sorted(t.name for t in targets)
    assert {c.batch for c in plan} == {t.profile.batch_size for t in targets}


# ---------------------------------------------------------------- real worker runs


def _peaks(report: dict[str, object]) -> dict[str, float]:
    """memory.peak value per target, from a result JSON."""
    result = report["results"][0]  # type: ignore[index]
    return {t["target"]: next(c["value"] for c in t["checks"] if c["metric"] == "memory.peak")
            for t in result["targets"]}


@pytest.mark.slow
def test_memory_peak_is_the_targets_own_alone_or_beside_a_big_batch(cnn_model: Path, tmp_path: Path) -> None:
    """A target's memory.peak comes from its own configuration's run: the same alone and beside a
    batch-32 target (before, one run at the largest batch gave every target its memory)."""
    big = tmp_path / "big-batch.yaml"
    big.write_text("schema_version: 1\nid: big-batch\nhardware: weak-cpu-2vcpu\nruntimes: [onnxruntime]\n"
                   "threads: 4\nbatch_size: 32\nbudgets:\n  latency: {p50: 10 s}\n  peak_memory: 64 GiB\n")
    alone, together = tmp_path / "alone.json", tmp_path / "together.json"
    run = run_cli("check", cnn_model, "--dim", "batch=1", "--target", "edge", "--json", alone, *FAST)
    assert_no_traceback(run)
    assert run.code in (0, 1), run.output
    run = run_cli("check", cnn_model, "--dim", "batch=1", "--target", "edge", "--target", big,
                    "--target", "edge-pi5", "--json", together, *FAST)
    assert_no_traceback(run)
    assert run.code in (0, 1), run.output
    first, second = json.loads(alone.read_text()), json.loads(together.read_text())
    assert len(first["results"][0]["configurations"]) == 1
    configs = second["results"][0]["configurations"]
    assert [c["batch"] for c in configs] == [1, 32]  # edge and edge-pi5 (batch 1) share the first run
    assert "edge" in configs[0]["targets"] and "edge-pi5" in configs[0]["targets"]
    assert configs[1]["targets"] == ["big-batch"] and configs[1]["measurement"]["throughput"]["batch_size"] == 32
    reports = {t["target"]: t for t in second["results"][0]["targets"]}
    assert reports["edge"]["configuration"] == configs[0]["label"] != reports["big-batch"]["configuration"]
    edge_alone, peaks = _peaks(first)["edge"], _peaks(second)
    assert abs(peaks["edge"] - edge_alone) <= 0.10 * edge_alone, (edge_alone, peaks)
    # The batch-32 run really holds more: its figure is its own, not the batch-1 run's.
    big_peak = configs[1]["measurement"]["memory"]["peak_bytes"]
    assert big_peak > second["results"][0]["measurement"]["memory"]["peak_bytes"]


def test_results_without_configurations_still_read(tmp_path: Path) -> None:
    """A version-1/2 file has no `configurations`: it reads, and its one measurement served every target."""
    import reportdata
    from mlfit.result import ConfigurationRun
    from mlfit.resultfile import load_report

    old = reportdata.report(reportdata.run_result()).model_dump(mode="json")
    old["schema_version"] = 1
    for result in old["results"]:
        del result["configurations"]
        for target in result["targets"]:
            del target["configuration"]
    path = tmp_path / "v1.json"
    path.write_text(json.dumps(old))
    result = load_report(path).results[0]
    assert result.configurations == [] and result.measurement is not None
    assert result.measurement_for(result.targets[0].target) is result.measurement
    # A v3 result: each target's own configuration's measurement.
    other = reportdata.measurement(peak=900 * 2**20)
    current = result.model_copy(update={"configurations": [
        ConfigurationRun(label="a", runtime="onnxruntime", threads=2, batch=1, targets=["x"]),
        ConfigurationRun(label="b", runtime="onnxruntime", threads=2, batch=64, targets=["y"], measurement=other)]})
    assert current.measurement_for("x") is current.measurement and current.measurement_for("y") is other


def test_plan_sizes_each_run_for_its_own_targets(cnn_model: Path) -> None:
    """Each run collects the samples its own targets' percentiles need; a run whose targets are all
    GPU targets projected by the roofline does not use host samples; node profiling only in the first."""
    from mlfit.modelref import identify
    from mlfit.run.plan import plan_measurement

    edge, h100 = resolve_target("edge"), resolve_target("gpu-h100")
    plan = plan_measurement(identify(cnn_model), [edge, h100], MeasureOptions(), roofline=True)
    assert [(p.config.batch, p.settings.batch_size) for p in plan] == [(1, None), (64, 64)]
    assert plan[0].settings.min_samples == 130 and plan[1].settings.min_samples == 1
    assert plan[0].settings.min_time_s == 1.0 and plan[1].settings.min_time_s <= 0.25
    assert plan[0].settings.profile_nodes and not plan[1].settings.profile_nodes
    assert plan[0].settings.profile_threads and not plan[1].settings.profile_threads
    # Without the static graph the GPU target falls back to host figures: full sample count.
    plan = plan_measurement(identify(cnn_model), [edge, h100], MeasureOptions(), roofline=False)
    assert plan[1].settings.min_samples == 662


@pytest.mark.slow
def test_a_later_configuration_failing_keeps_the_targets_already_judged(cnn_model: Path, tmp_path: Path) -> None:
    """The batch-64 run exceeds a memory limit the batch-1 run fits: edge keeps its report, the
    result carries the batch-64 run's error naming its configuration, exit 3, marked incomplete."""
    out = tmp_path / "r.json"
    run = run_cli("check", cnn_model, "--dim", "batch=1", "--target", "edge", "--target", "gpu-h100",
                    "--memory-limit", "180MiB", "--json", out, *FAST)
    assert_no_traceback(run)
    assert run.code == 3, run.output
    report = json.loads(out.read_text())
    (result,) = report["results"]
    assert report["complete"] is False and result["error"]["kind"] == "memory"
    message = result["error"]["message"]
    assert message.startswith("onnxruntime, ") and "batch 64 (gpu-h100)" in message
    assert [t["target"] for t in result["targets"]] == ["edge"]
    assert result["targets"][0]["configuration"] == result["configurations"][0]["label"]
    assert [c["batch"] for c in result["configurations"]] == [1, 64]
    assert result["measurement"] is not None and result["configurations"][1]["measurement"] is None
