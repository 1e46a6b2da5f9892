"""Hostile and broken model files: each refused with a one-line reason, the right exit code,
an error entry in the report, and no code run that was not trusted (issue 6, cases 1-5)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from _hostile import (
    custom_op_model,
    external_model,
    hostile_pickle,
    load_report,
    sparse_file,
    zip_with_pickle,
)
from conftest import FAST, assert_no_traceback, run_cli, run_mlfit
from mlfit.errors import ConfigError, ModelError
from mlfit.formats.onnx.safety import PROTOBUF_LIMIT, onnxruntime_version, validate_onnx

# --- 1. broken files -------------------------------------------------------------------------


@pytest.mark.parametrize(("name", "content", "expected"), [
    ("empty.onnx", b"", "not a valid onnx file (it is empty)"),
    ("random.onnx", bytes(range(7, 250)) * 40, "not a valid onnx file"),
    ("tiny.tflite", b"\x00\x01\x02\x03\x04\x05\x06\x07", "not a valid tflite file"),
])
def test_broken_file_is_refused_with_exit_3(tmp_path: Path, name: str, content: bytes, expected: str) -> None:
    path = tmp_path / name
    path.write_bytes(content)
    out = tmp_path / "report.json"
    run = run_cli("check", path, "--target", "edge", "--json", out, *FAST)
    assert_no_traceback(run)
    assert run.code == 3, run.output
    assert expected in run.stderr
    assert len(run.stderr.strip().splitlines()) == 1  # one line: cause and fix
    error = load_report(out)["results"][0]["error"]  # the report names the model and the error
    assert expected in error["message"] and error["exit_code"] == 3


def test_truncated_onnx_names_the_truncation(tmp_path: Path, tiny_model: Path) -> None:
    data = tiny_model.read_bytes()
    path = tmp_path / "truncated.onnx"
    path.write_bytes(data[: len(data) // 2])
    run = run_cli("check", path, "--target", "edge", *FAST)
    assert_no_traceback(run)
    assert run.code == 3
    assert "not a valid onnx file (truncated" in run.stderr


# --- 2. content decides, never unpickled -----------------------------------------------------


def test_pickle_named_onnx_is_never_unpickled(tmp_path: Path) -> None:
    marker = tmp_path / "unpickled.txt"
    path = hostile_pickle(tmp_path / "model.onnx", marker)
    out = tmp_path / "report.json"
    run = run_mlfit("check", path, "--target", "edge", "--json", out, *FAST)
    assert_no_traceback(run)
    assert run.code == 3, run.output
    assert "refusing to load a pickle" in run.stderr
    assert "the suffix says onnx but the content is pickle" in run.stderr  # the mismatch is reported
    assert not marker.exists()
    assert load_report(out)["results"][0]["model"]["format"] == "pickle"


def test_zip_named_h5_is_decided_by_content(tmp_path: Path) -> None:
    marker = tmp_path / "unpickled.txt"
    path = zip_with_pickle(tmp_path / "weights.h5", marker)
    run = run_cli("check", path, "--target", "edge", *FAST)
    assert_no_traceback(run)
    assert run.code == 3
    assert "not a valid h5 file (a zip archive" in run.stderr
    assert not marker.exists()


# --- 3. external data ------------------------------------------------------------------------


@pytest.mark.parametrize(("location", "why"), [
    ("../outside.bin", "a path with '..'"),
    ("data/../../outside.bin", "a path with '..'"),
    ("/etc/passwd", "an absolute path"),
    ("C:\\Windows\\win.ini", "an absolute path"),
    ("~/.ssh/id_rsa", "an absolute path"),
    ("", "an empty location"),
])
def test_external_data_outside_the_folder_is_refused(tmp_path: Path, location: str, why: str) -> None:
    (tmp_path / "outside.bin").write_bytes(b"\0" * 64)
    model = external_model(tmp_path / "model", location)
    with pytest.raises(ModelError) as info:
        validate_onnx(model)
    assert why in info.value.message
    assert "refused" in info.value.message


def test_external_data_symlink_out_of_the_folder_is_refused(tmp_path: Path) -> None:
    secret = tmp_path / "secret.bin"
    secret.write_bytes(b"\0" * 64)
    model = external_model(tmp_path / "model", "weights.bin")
    (tmp_path / "model" / "weights.bin").symlink_to(secret)
    with pytest.raises(ModelError) as info:
        validate_onnx(model)
    assert "symlink leading out of the model's folder" in info.value.message


def test_external_data_symlink_inside_the_folder_is_fine(tmp_path: Path) -> None:
    model = external_model(tmp_path / "model", "link.bin")
    (tmp_path / "model" / "real.bin").write_bytes(b"\0" * 64)
    (tmp_path / "model" / "link.bin").symlink_to(tmp_path / "model" / "real.bin")
    assert validate_onnx(model).external_bytes == 64


def test_missing_external_data_names_path_and_size(tmp_path: Path) -> None:
    model = external_model(tmp_path, "weights.bin", elements=1000)
    out = tmp_path / "report.json"
    run = run_cli("check", model, "--target", "edge", "--json", out, *FAST)
    assert_no_traceback(run)
    assert run.code == 3
    assert f"expected {tmp_path.resolve() / 'weights.bin'} (4000 bytes)" in run.stderr
    assert load_report(out)["results"][0]["error"]["kind"] == "load"


def test_truncated_external_data_is_refused(tmp_path: Path) -> None:
    model = external_model(tmp_path, "weights.bin", elements=1000)
    (tmp_path / "weights.bin").write_bytes(b"\0" * 100)
    with pytest.raises(ModelError, match=r"is truncated: tensor 'w' needs bytes 0\.\.4000, the file has 100"):
        validate_onnx(model)


def test_valid_external_data_model_runs(tmp_path: Path) -> None:
    model = external_model(tmp_path, "weights.bin", elements=16)
    (tmp_path / "weights.bin").write_bytes(b"\0" * 64)
    run = run_cli("profile", model, *FAST)
    assert_no_traceback(run)
    assert run.code == 0, run.output


# --- 4. sizes: protobuf's limit, the target's memory, the host's memory ---------------------


def test_single_file_over_2gb_is_refused_without_loading(tmp_path: Path) -> None:
    path = sparse_file(tmp_path / "huge.onnx", PROTOBUF_LIMIT + 2**21)
    run = run_mlfit("check", path, "--target", "edge", *FAST)
    assert_no_traceback(run)
    assert run.code == 3
    assert "over protobuf's 2 GiB limit" in run.stderr and "save_as_external_data=True" in run.stderr
    run = run_mlfit("inspect", path)
    assert_no_traceback(run)
    assert run.code == 3 and "over protobuf's 2 GiB limit" in run.stderr


def test_parameters_over_the_targets_memory_do_not_fit(tmp_path: Path) -> None:
    # 5 GB of float32 weights (a sparse file): more than a Pi 4 has; decided without loading.
    elements = 5 * 10**9 // 4
    model = external_model(tmp_path, "weights.bin", elements=elements)
    sparse_file(tmp_path / "weights.bin", elements * 4)
    out = tmp_path / "report.json"
    run = run_cli("check", model, "--target", "edge", "--target", "weak-cpu", "--json", out, *FAST)
    assert_no_traceback(run)
    assert run.code == 1, run.output  # a budget failed: a verdict, not a crash
    result = load_report(out)["results"][0]
    assert result["measurement"] is None  # never loaded
    for target in result["targets"]:
        assert target["verdict"] == "FAIL"
        check = next(c for c in target["checks"] if c["metric"] == "memory.parameters")
        assert check["provenance"] == "static" and check["reason"].startswith("does not fit")
    assert "does not fit" in run.stdout


def test_model_larger_than_host_memory_is_not_loaded(tmp_path: Path) -> None:
    import psutil

    elements = (psutil.virtual_memory().total * 2) // 4
    model = external_model(tmp_path, "weights.bin", elements=elements)
    sparse_file(tmp_path / "weights.bin", elements * 4)
    run = run_mlfit("profile", model, *FAST)
    assert_no_traceback(run)
    assert run.code == 3
    assert "more than this host's free memory" in run.stderr and "not loaded" in run.stderr


# --- 5. custom operators ---------------------------------------------------------------------


@pytest.mark.parametrize(("domain", "shown"), [("my.custom", "my.custom::FancyOp"), ("", "ai.onnx::FancyOp")])
def test_custom_operator_without_library_is_named(tmp_path: Path, domain: str, shown: str) -> None:
    model = custom_op_model(tmp_path / "custom.onnx", domain=domain)
    # A library lying next to the model is never picked up on its own.
    (tmp_path / "libcustom_ops.so").write_bytes(b"\x7fELF")
    run = run_cli("check", model, "--target", "edge", *FAST)
    assert_no_traceback(run)
    assert run.code == 3
    assert f"custom operator {shown} is not available in onnxruntime {onnxruntime_version()}" in run.stderr
    assert "--custom-op-library PATH" in run.stderr


def test_custom_op_library_must_exist(tmp_path: Path) -> None:
    model = custom_op_model(tmp_path / "custom.onnx")
    with pytest.raises(ConfigError, match=r"--custom-op-library .*does not exist"):
        validate_onnx(model, [str(tmp_path / "nope.so")])
    run = run_cli("check", model, "--target", "edge", "--custom-op-library", tmp_path / "nope.so", *FAST)
    assert_no_traceback(run)
    assert run.code == 2


def test_explicit_custom_op_library_is_the_one_loaded(tmp_path: Path) -> None:
    model = custom_op_model(tmp_path / "custom.onnx")
    bogus = tmp_path / "libnot_really.so"
    bogus.write_bytes(b"not a shared library")
    run = run_cli("check", model, "--target", "edge", "--custom-op-library", bogus, *FAST)
    assert_no_traceback(run)
    assert run.code == 3
    assert f"cannot load custom op library '{os.fspath(bogus)}'" in run.stderr


def test_static_fit_check_applies_per_target() -> None:
    """3 GB of parameters: does not fit the weak-cpu target (2 GiB), fits the Pi 4 (4 GiB); a
    measured report for the Pi is left alone, the weak-cpu one gets a static FAIL."""
    from mlfit.api import resolve_targets
    from mlfit.checks.fit import add_fit_check, fit_check
    from mlfit.result import Check, Provenance, TargetReport, Verdict

    edge, weak = resolve_targets(["edge", "weak-cpu"])
    assert fit_check(edge, 3 * 10**9) is None
    check = fit_check(weak, 3 * 10**9)
    assert check is not None and check.provenance is Provenance.STATIC and check.verdict is Verdict.FAIL
    measured = TargetReport(target="weak-cpu", hardware="x", hardware_name="x", source="built-in",
                            verdict=Verdict.PASS, checks=[Check(metric="latency.p95", budget="<= 1 s",
                                                                verdict=Verdict.PASS,
                                                                provenance=Provenance.MEASURED_ON_HOST)])
    combined = add_fit_check(measured, check)
    assert combined.verdict is Verdict.FAIL and [c.metric for c in combined.checks][-1] == "memory.parameters"
    assert add_fit_check(measured, None) == measured


def test_pickle_claiming_a_petabyte_object_is_refused(tmp_path: Path) -> None:
    """Found by tests/test_fuzz.py: BYTEARRAY8 with a length of 2^56 made the scan run out of memory."""
    path = tmp_path / "model.pkl"
    path.write_bytes(b"\x80\x05\x96" + (2**56).to_bytes(8, "little") + b"xx.")
    run = run_mlfit("check", path, "--target", "edge", *FAST)
    assert_no_traceback(run)
    assert run.code == 3
    # The scan reads in bounded chunks, so it finds the 2 bytes that are there instead of allocating.
    assert "cannot be scanned (expected 72057594037927936 bytes" in run.stderr


@pytest.mark.parametrize(("config", "words"), [
    ('{"class_name": ["Lambda"], "config": {}}', "malformed class_name entry"),
    ("[" * 100_000, "nested too deeply"),
])
def test_crafted_keras_config_is_refused(tmp_path: Path, config: str, words: str) -> None:
    """Found by tests/test_fuzz.py: a list as class_name, or deep nesting, crashed the Keras scan."""
    import zipfile

    path = tmp_path / "model.keras"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("config.json", config)
        archive.writestr("metadata.json", "{}")
    run = run_cli("check", path, "--target", "edge", *FAST)
    assert_no_traceback(run)
    assert run.code == 3
    assert words in run.stderr


_PEAK_OF_CHILD = """
import resource, subprocess, sys
proc = subprocess.run([sys.executable, "-m", "mlfit", *sys.argv[1:]], capture_output=True, text=True)
sys.stderr.write(proc.stderr)
print(proc.returncode, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024)
"""


def test_static_analysis_of_a_long_vector_stays_small(tmp_path: Path) -> None:
    """A 1-D weight of 10^8 elements (external, never read): onnx's data propagation would spell
    it out as 10^8 shape dims, about 1.7 GB in the parent (17 GB per GB of weights). Inspecting it
    must stay small."""
    import subprocess
    import sys

    elements = 10**8
    model = external_model(tmp_path, "weights.bin", elements=elements)
    sparse_file(tmp_path / "weights.bin", elements * 4)
    proc = subprocess.run([sys.executable, "-c", _PEAK_OF_CHILD, "inspect", str(model)], capture_output=True,
                          text=True, timeout=120, stdin=subprocess.DEVNULL)
    assert "Traceback" not in proc.stderr, proc.stderr[-2000:]
    code, peak = (int(x) for x in proc.stdout.split())
    assert code == 0
    assert peak < 600 * 2**20, f"inspect peaked at {peak / 2**20:.0f} MiB"
