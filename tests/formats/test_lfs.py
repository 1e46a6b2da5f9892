"""Git LFS pointers (a CI checkout without `lfs: true`): named as such with the fix, for a model
file, a model folder, a --baseline result and the CI script's baseline; never "not a valid onnx file"
nor a run that quietly goes on without its baseline (issue 23, point 6)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import FAST, REPO, assert_no_traceback, run_mlfit
from mlfit.zoo import builders

SCRIPT = REPO / "examples" / "ci" / "mlfit-ci.sh"


def pointer(path: Path, size: int = 5_400_000) -> Path:
    """What `git checkout` leaves in a file's place when the LFS objects were not fetched."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("version https://git-lfs.github.com/spec/v1\n"
                    "oid sha256:4d7a214614ab2935c943f9e0ff69d22eadbb8f32b1258daaa5e2ca24d17e2393\n"
                    f"size {size}\n")
    return path


@pytest.mark.parametrize("command", [["check", "--target", "edge"], ["inspect"]])
def test_a_model_that_is_an_lfs_pointer_is_named_with_the_fix(tmp_path: Path, command: list[str]) -> None:
    run = run_mlfit(*command, pointer(tmp_path / "model.onnx"), env={"COLUMNS": "300"})
    assert_no_traceback(run)
    assert run.code == 3, run.output
    assert "Git LFS pointer to a 5.1 MiB object" in run.output, run.output
    assert "git lfs pull" in run.output and "lfs: true" in run.output
    assert "protobuf" not in run.output  # the old message: "not a valid onnx file (unexpected protobuf field 14)"


def test_a_savedmodel_folder_with_lfs_pointers_is_named(tmp_path: Path) -> None:
    folder = tmp_path / "saved"
    pointer(folder / "saved_model.pb", 80_000)
    run = run_mlfit("inspect", folder, env={"COLUMNS": "300"})
    assert run.code == 3 and "saved_model.pb of the model folder is a Git LFS pointer" in run.output, run.output


def test_a_baseline_that_is_an_lfs_pointer_is_an_error_before_measuring(tiny_model: Path, tmp_path: Path) -> None:
    out = tmp_path / "r.json"
    base = pointer(tmp_path / "base.json", 9000)
    run = run_mlfit("check", tiny_model, "--target", "edge", "--baseline", base, "--json", out, *FAST,
                    env={"COLUMNS": "300"})
    assert_no_traceback(run)
    assert run.code == 2, run.output
    assert "the result file is a Git LFS pointer" in run.output and "git lfs pull" in run.output
    assert not out.exists()  # refused before anything was measured


def _git(cwd: Path, *args: str) -> None:
    subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", *args], cwd=cwd, check=True,
                   capture_output=True, timeout=60)


def test_the_ci_script_stops_on_a_baseline_that_is_an_lfs_pointer(tmp_path: Path) -> None:
    """The base branch's model checked out as a pointer: exit 3 naming MLFIT_LFS / the action's `lfs`
    input, where the script used to say "the baseline run failed; checking without a baseline"."""
    origin, clone = tmp_path / "origin.git", tmp_path / "clone"
    _git(tmp_path, "init", "--quiet", "--bare", "-b", "main", str(origin))
    _git(tmp_path, "clone", "--quiet", str(origin), str(clone))
    pointer(clone / "models" / "model.onnx")
    _git(clone, "add", ".")
    _git(clone, "commit", "--quiet", "-m", "model (an LFS pointer)")
    _git(clone, "push", "--quiet", "origin", "main")
    _git(clone, "checkout", "--quiet", "-b", "pr")
    builders.save(builders.tiny_add(), clone / "models" / "model.onnx")
    wrapper = tmp_path / "mlfit"
    wrapper.write_text(f'#!/bin/sh\nPYTHONPATH={REPO / "src"} exec {sys.executable} -m mlfit "$@"\n')
    wrapper.chmod(0o755)
    env = {**os.environ, "MLFIT": str(wrapper), "MLFIT_REPORTS": str(tmp_path / "reports"),
           "MLFIT_FLAGS": " ".join(FAST)}
    run = subprocess.run(["bash", str(SCRIPT), "models/model.onnx", "main"], cwd=clone, env=env,
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 3, run.stdout + run.stderr
    assert "is a Git LFS pointer" in run.stderr and "MLFIT_LFS=true" in run.stderr
    assert not (tmp_path / "reports" / "mlfit.json").exists()
