"""Deployment configurations: which worker runs a check plans (mlfit.run.configs), table-driven."""

from __future__ import annotations

import pytest

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


def test_every_builtin_target_lands_in_exactly_one_configuration() -> None:
    from mlfit.catalog.loader import builtin_targets

    targets = builtin_targets()
    plan = plan_configurations(targets, ORT, MeasureOptions(), 2)
    names = [n for c in plan for n in c.targets]
    assert sorted(names) == sorted(t.name for t in targets)
    assert {c.batch for c in plan} == {t.profile.batch_size for t in targets}
