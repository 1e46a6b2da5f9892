"""Mistaken flags and targets (issue 6, case 10): exit 2 with the precise reason, no traceback."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from _hostile import save_npz
from conftest import FAST, assert_no_traceback, run_cli
from mlfit.catalog.loader import builtin_names


def test_unknown_target_lists_the_known_ones(tiny_model: Path) -> None:
    run = run_cli("check", tiny_model, "--target", "edgy", *FAST)
    assert_no_traceback(run)
    assert run.code == 2
    assert "unknown target 'edgy'" in run.stderr and "did you mean 'edge'?" in run.stderr
    assert "known targets: " + ", ".join(builtin_names("profiles")) in run.stderr


def test_profile_referencing_missing_hardware(tmp_path: Path, tiny_model: Path) -> None:
    profile = tmp_path / "p.yaml"
    profile.write_text("schema_version: 1\nid: p\nhardware: rpi9-64gb\nruntimes: [onnxruntime]\n")
    run = run_cli("check", tiny_model, "--target", profile, *FAST)
    assert_no_traceback(run)
    assert run.code == 2
    assert f"{profile}: unknown hardware 'rpi9-64gb'" in run.stderr
    assert "rpi4-4gb" in run.stderr  # the hint names what exists


def test_dim_the_model_does_not_have(tiny_model: Path, tmp_path: Path) -> None:
    out = tmp_path / "r.json"
    run = run_cli("check", tiny_model, "--target", "edge", "--dim", "batch=1", "--json", out, *FAST)
    assert_no_traceback(run)
    assert run.code == 2
    assert "--dim names 'batch', which is not a symbolic dim of this model" in run.stderr
    assert "symbolic dims: none (all dims are fixed)" in run.stderr


def test_shape_rank_mismatch(tiny_model: Path) -> None:
    run = run_cli("check", tiny_model, "--target", "edge", "--shape", "x=1x16x1", *FAST)
    assert_no_traceback(run)
    assert run.code == 2
    assert "--shape x: rank 3 does not match the model's rank 2" in run.stderr
    assert "x float32[1, 16]" in run.stderr


def test_shape_for_an_input_the_model_does_not_have(tiny_model: Path) -> None:
    run = run_cli("check", tiny_model, "--target", "edge", "--shape", "image=1x3", *FAST)
    assert_no_traceback(run)
    assert run.code == 2
    assert "--shape names input 'image', which the model does not have" in run.stderr


@pytest.mark.parametrize(("array", "words"), [
    (np.zeros((1, 16), np.float64), "--data 'x' has dtype float64, the model expects float32"),
    (np.zeros((1, 8), np.float32), "dim 1 must be 16"),
    (np.zeros((2, 3, 4, 5), np.float32), "the model expects rank 2"),
])
def test_data_with_wrong_dtype_or_shape(tmp_path: Path, tiny_model: Path, array: np.ndarray,
                                        words: str) -> None:
    data = save_npz(tmp_path / "samples.npz", x=array)
    run = run_cli("check", tiny_model, "--target", "edge", "--data", data, *FAST)
    assert_no_traceback(run)
    assert run.code == 2, run.output
    assert words in run.stderr


def test_data_that_is_not_an_npz(tmp_path: Path, tiny_model: Path) -> None:
    data = tmp_path / "samples.npz"
    data.write_bytes(b"not a zip")
    run = run_cli("check", tiny_model, "--target", "edge", "--data", data, *FAST)
    assert_no_traceback(run)
    assert run.code == 2
    assert "not a readable .npz" in run.stderr


@pytest.mark.parametrize(("flags", "words"), [
    (["--dim", "batch=abc"], "'abc' is not a whole number"),
    (["--dim", "batch=0"], "out of range"),
    (["--shape", "x=1xfoo"], "'foo' is not a whole number"),
    (["--range", "x=5:1"], "LOW must be below HIGH"),
    (["--value", "x=nan"], "value must be finite"),
    (["--data", "/nonexistent/samples.npz"], "file does not exist"),
    (["--output", "pdf=r.pdf"], "unknown format 'pdf'"),
    (["--memory-limit", "lots"], "--memory-limit 'lots'"),
    (["--runtime", "pytorch"], "unknown runtime 'pytorch'"),
    (["--timeout", "0"], "--timeout"),
    (["--threads", "0"], "--threads"),
    (["--no-such-flag"], "No such option"),
    (["extra-argument.onnx"], "model 'extra-argument.onnx' does not exist"),  # several models are allowed
])
def test_malformed_flags_exit_2(tiny_model: Path, flags: list[str], words: str) -> None:
    run = run_cli("check", tiny_model, "--target", "edge", *flags, *FAST)
    assert_no_traceback(run)
    assert run.code == 2, run.output
    assert words in run.stderr


def test_memory_limit_target_needs_a_target(tiny_model: Path) -> None:
    run = run_cli("profile", tiny_model, "--memory-limit", "target", *FAST)
    assert_no_traceback(run)
    assert run.code == 2
    assert "--memory-limit target: no --target" in run.stderr


def test_missing_model_path(tmp_path: Path) -> None:
    run = run_cli("check", tmp_path / "nope.onnx", "--target", "edge", *FAST)
    assert_no_traceback(run)
    assert run.code == 2
    assert "does not exist" in run.stderr
