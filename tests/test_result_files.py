"""Result files that cannot crash or forge, and outputs that are written as a set.

- NaN, Infinity and 1e999 in a result JSON are refused when read (exit 2, one line naming the file
  and the field), by `compare`, `report` and `check --baseline` alike; mlfit never writes them.
- A report is never written over any file a target was read from (profile, hardware, manifest).
- Outputs are written as a set: a failed write (a real full tmpfs) changes none of them; a rename
  failing midway names what was replaced and what was not.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from conftest import assert_no_traceback, run_cli
from mlfit.errors import ConfigError
from mlfit.report.outputs import OutputFormat, write_outputs
from mlfit.result import Report

FAST = ("--threads", "1", "--min-time", "0.2", "--max-time", "1", "--warmup", "2", "--quiet")


@pytest.fixture(scope="module")
def result_file(tmp_path_factory: pytest.TempPathFactory, tiny_model: Path) -> Path:
    out = tmp_path_factory.mktemp("result") / "r.json"
    run = run_cli("profile", tiny_model, *FAST, "--json", out)
    assert run.code == 0, run.output
    return out


def _forge(src: Path, dst: Path, literal: str) -> Path:
    """The result with its p50 replaced by a bare JSON literal (NaN, Infinity, 1e999)."""
    data = json.loads(src.read_text())
    data["results"][0]["measurement"]["latency"]["p50"] = "@@"
    dst.write_text(json.dumps(data).replace('"@@"', literal))
    return dst


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity", "1e999"])
def test_non_finite_figures_are_refused_by_compare_and_report(result_file: Path, tmp_path: Path,
                                                               literal: str) -> None:
    forged = _forge(result_file, tmp_path / "forged.json", literal)
    for args in (("compare", result_file, forged), ("compare", forged, forged), ("report", forged)):
        run = run_cli(*args)
        assert_no_traceback(run)
        assert run.code == 2, run.output
        assert "no regression" not in run.output
        line = " ".join(run.stderr.split())  # however the terminal wrapped it
        assert f"{forged}: invalid mlfit result at results.0.measurement.latency.p50" in line, run.stderr


def test_check_refuses_a_nan_baseline_before_measuring(result_file: Path, tiny_model: Path, tmp_path: Path) -> None:
    forged = _forge(result_file, tmp_path / "base.json", "NaN")
    run = run_cli("check", tiny_model, "--target", "edge", "--baseline", forged, *FAST)
    assert_no_traceback(run)
    assert run.code == 2 and "NaN or Infinity" in " ".join(run.stderr.split()), run.output


def test_mlfit_never_builds_or_writes_nan(result_file: Path) -> None:
    from pydantic import ValidationError

    from mlfit.report.json import render_json

    report = Report.model_validate_json(result_file.read_text())
    data = report.model_dump()
    data["results"][0]["measurement"]["latency"]["p50"] = float("nan")
    with pytest.raises(ValidationError):
        Report.model_validate(data)
    # Free-form dicts are beyond pydantic's reach: the writer refuses them as a bug, never writes null.
    result = report.results[0]
    odd = result.model_copy(update={"analysis": {**(result.analysis or {}), "ratio": float("inf")}})
    bad = report.model_copy(update={"results": [odd]})
    with pytest.raises(AssertionError, match=r"analysis\.ratio"):
        render_json(bad)


def test_a_report_never_overwrites_the_hardware_file_of_a_profile(tiny_model: Path, tmp_path: Path) -> None:
    (tmp_path / "board.yaml").write_text((Path(__file__).parents[1] / "hardware" / "rpi4-4gb.yaml").read_text())
    profile = tmp_path / "mine.yaml"
    profile.write_text("schema_version: 1\nid: mine\nhardware: board.yaml\nruntimes: [onnxruntime]\n"
                       "budgets:\n  latency: {p50: 10 s}\n")
    before = (tmp_path / "board.yaml").read_bytes()
    for out in (tmp_path / "board.yaml", tmp_path / "sub" / ".." / "board.yaml"):
        (tmp_path / "sub").mkdir(exist_ok=True)
        run = run_cli("check", tiny_model, "--target", profile, "--output", f"html={out}", *FAST)
        assert_no_traceback(run)
        assert run.code == 2 and "is the input" in " ".join(run.stderr.split()) and "board.yaml" in run.stderr, \
            run.output
    assert (tmp_path / "board.yaml").read_bytes() == before


def test_a_report_never_overwrites_a_built_in_hardware_file(tiny_model: Path, tmp_path: Path) -> None:
    from mlfit.catalog.loader import resolve_target

    target = resolve_target("edge")
    assert any(f.endswith(f"{target.profile.hardware}.yaml") for f in target.files), target.files
    hardware = Path(next(f for f in target.files if "hardware" in f))
    before = hardware.read_bytes()
    try:
        run = run_cli("check", tiny_model, "--target", "edge", "--json", hardware, *FAST)
    finally:  # were the refusal ever lost, the catalog must not stay overwritten
        if hardware.read_bytes() != before:
            hardware.write_bytes(before)
            pytest.fail(f"the report replaced the built-in hardware file {hardware}")
    assert run.code == 2 and "is the input" in " ".join(run.stderr.split()), run.output


@pytest.fixture
def full_tmpfs(tmp_path: Path) -> Iterator[Path]:
    """A real 64 KiB tmpfs, filled up: any write there fails with ENOSPC."""
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("mounting a tmpfs needs root")
    mnt = tmp_path / "full"
    mnt.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(mnt)],
                      capture_output=True).returncode != 0:
        pytest.skip("cannot mount a tmpfs here")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", str(mnt)], check=True)


def test_a_failed_write_changes_no_output(result_file: Path, full_tmpfs: Path, tmp_path: Path) -> None:
    report = Report.model_validate_json(result_file.read_text())
    json_out, html_out = tmp_path / "r.json", full_tmpfs / "r.html"
    json_out.write_text("old json")
    html_out.write_text("old html")
    fd = os.open(full_tmpfs / "filler", os.O_WRONLY | os.O_CREAT)  # fill the rest of the tmpfs
    try:
        with pytest.raises(OSError):
            while True:
                os.write(fd, b"\0" * 4096)
    finally:
        os.close(fd)
    with pytest.raises(ConfigError) as err:
        write_outputs(report, [(OutputFormat.JSON, str(json_out)), (OutputFormat.HTML, str(html_out))])
    assert "No space left on device" in err.value.message and "no output file was changed" in err.value.message
    assert json_out.read_text() == "old json" and html_out.read_text() == "old html"
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".r.")) == []  # no temporary left
    assert sorted(p.name for p in full_tmpfs.iterdir()) == ["filler", "r.html"]


def test_a_failed_rename_names_what_was_replaced(result_file: Path, tmp_path: Path) -> None:
    """The second output became a non-empty folder after the check: its rename fails for real."""
    report = Report.model_validate_json(result_file.read_text())
    first, second, third = tmp_path / "a.json", tmp_path / "b.html", tmp_path / "c.md"
    second.mkdir()
    (second / "keep").write_text("x")
    third.write_text("old md")
    with pytest.raises(ConfigError) as err:
        write_outputs(report, [(OutputFormat.JSON, str(first)), (OutputFormat.HTML, str(second)),
                               (OutputFormat.MARKDOWN, str(third))])
    message = err.value.message
    assert f"could not replace '{second}'" in message
    assert f"new: {first}" in message and f"unchanged: {second}, {third}" in message
    assert json.loads(first.read_text())["schema_version"] and third.read_text() == "old md"
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


_WRITER = """
import sys
from pathlib import Path
from mlfit.report.atomic import write_set
folder = Path(sys.argv[1])
write_set([(folder / f"f{i:04d}.txt", "new" * 2000) for i in range(400)])
"""


@pytest.mark.parametrize("delay", [0.0, 0.05, 0.2, -1.0])  # -1: as soon as the first rename is seen
def test_ctrl_c_never_splits_a_set(tmp_path: Path, delay: float) -> None:
    """A real SIGINT while a set of outputs is written: afterwards every file is old or every file is
    new, and no temporary file is left (the renames hold Ctrl-C until the last one)."""
    import signal
    import sys
    import time

    for i in range(400):
        (tmp_path / f"f{i:04d}.txt").write_text("old")
    proc = subprocess.Popen([sys.executable, "-c", _WRITER, str(tmp_path)],
                            env={**os.environ, "PYTHONPATH": str(Path(__file__).parents[1] / "src")},
                            stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while not any(p.name.startswith(".f") for p in tmp_path.iterdir()) and proc.poll() is None:
        assert time.monotonic() < deadline
        time.sleep(0.001)
    first = tmp_path / "f0000.txt"
    while delay < 0 and first.read_text() == "old" and proc.poll() is None:
        assert time.monotonic() < deadline
    time.sleep(max(0.0, delay))
    proc.send_signal(signal.SIGINT)
    proc.communicate(timeout=60)
    contents = {p.read_text() for p in tmp_path.iterdir() if p.name.startswith("f")}
    assert len(contents) == 1, "a mix of old and new outputs"
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".f")]


def test_a_report_never_overwrites_a_compose_file_named_without_yaml(tiny_model: Path, tmp_path: Path) -> None:
    """A target read from `deploy/compose` (no suffix): the file it was read from is an input too."""
    deploy = tmp_path / "deploy"
    deploy.mkdir()
    compose = deploy / "compose"
    compose.write_text("services:\n  model:\n    image: m:1\n    cpus: 1\n    mem_limit: 1g\n")
    before = compose.read_bytes()
    run = run_cli("check", tiny_model, "--target", compose, "--json", compose, *FAST)
    assert_no_traceback(run)
    assert run.code == 2 and "is the input" in " ".join(run.stderr.split()), run.output
    assert compose.read_bytes() == before
