"""Labels that say what a figure is (issue 23, point 5): a configuration's p50 names the batch its
calls had, not the configuration's throughput batch; the Markdown report lists each target's notes
under the target's name."""

from __future__ import annotations

import pytest

from conftest import FAST, assert_no_traceback, run_cli
from mlfit.zoo import builders

PROFILE = """\
schema_version: 1
id: batcher
description: batched scoring on the 2-vCPU VM
hardware: weak-cpu-2vcpu
runtimes: [onnxruntime]
threads: 1
batch_size: 8
budgets:
  latency: {p95: 1 s}
"""


@pytest.fixture(scope="module")
def two_configurations(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str]:
    """A free-batch model fixed at batch 1 (--dim batch=1, as the demo does) for a batch-1 and a batch-8
    target: two configurations whose latency is timed on batch-1 calls."""
    root = tmp_path_factory.mktemp("labels")
    model = builders.save(builders.mobilenet_v2(width=0.35, resolution=32, classes=10, batch="batch"),
                          root / "m.onnx")
    profile = root / "batcher.yaml"
    profile.write_text(PROFILE)
    md = root / "r.md"
    run = run_cli("check", model, "--dim", "batch=1", "--target", "edge", "--target", profile,
                    "--output", f"markdown={md}", *FAST[:-1], env={"COLUMNS": "200"})
    assert_no_traceback(run)
    assert run.code in (0, 1, 4), run.output
    return run.stdout, md.read_text()


def test_a_configurations_p50_names_the_batch_of_its_calls(two_configurations: tuple[str, str]) -> None:
    stdout, _ = two_configurations
    line = next(line for line in stdout.splitlines() if "batch 8 (batcher)" in line)
    assert "p50 per call of batch 1" in line, line  # was "batch 8 (batcher): p50 ...", a batch-8 latency
    assert "at batch 8" in line  # the throughput is the batched phase's


def test_markdown_notes_are_grouped_per_target(two_configurations: tuple[str, str]) -> None:
    _, md = two_configurations
    assert "**Notes for edge**" in md and "**Notes for batcher**" in md, md
    edge = md.split("**Notes for edge**", 1)[1].split("**Notes for", 1)[0]
    assert "Raspberry Pi" in edge and "Cloud VM" not in edge  # edge's own notes, not batcher's
