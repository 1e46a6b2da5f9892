"""Every command and exit code, as a user runs them: a pass and a fail through a real subprocess
(the program's own exit), the rest in this process through the same entry (conftest.run_cli), and
one test that the two agree."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from conftest import FAST, assert_no_traceback, run_cli, run_mlfit
from mlfit.result import RESULT_SCHEMA_VERSION


def _profile(tmp_path: Path, name: str, budgets: str) -> Path:
    path = tmp_path / f"{name}.yaml"
    path.write_text(f"schema_version: 1\nid: {name}\nhardware: weak-cpu-2vcpu\nruntimes: [onnxruntime]\n"
                    f"threads: 1\nbudgets:\n{budgets}")
    return path


def test_help_lists_commands_and_exit_codes() -> None:
    run = run_cli("--help")
    assert run.code == 0
    for word in ("check", "profile", "inspect", "targets", "schema", "Exit codes", "130 interrupted"):
        assert word in run.stdout
    check_help = run_cli("check", "--help")
    assert check_help.code == 0 and "--dim" in check_help.stdout and "4 inconclusive" in check_help.stdout


def test_cli_process_never_imports_a_runtime(tmp_path: Path) -> None:
    script = ("import runpy, sys\n"
              "for argv in (['mlfit', '--help'], ['mlfit', 'targets'], ['mlfit', 'targets', 'show', 'edge']):\n"
              "    sys.argv = argv\n"
              "    try:\n        runpy.run_module('mlfit', run_name='__main__')\n"
              "    except SystemExit:\n        pass\n"
              "print(sorted(m for m in ('onnxruntime', 'tensorflow', 'sklearn', 'onnx') if m in sys.modules))\n")
    import subprocess

    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert out.stdout.strip().splitlines()[-1] == "[]", out.stdout + out.stderr


def test_targets_listing_and_version_import_no_pydantic() -> None:
    """Start-up (issue 22): pydantic and the catalog models are a tenth of a second of CPU; listing the
    built-in targets, --version and --help need neither."""
    script = ("import runpy, sys\n"
              "argv = sys.argv[1:]\n"
              "sys.argv = ['mlfit', *argv]\n"
              "try:\n    runpy.run_module('mlfit', run_name='__main__')\n"
              "except SystemExit:\n    pass\n"
              "print('pydantic' in sys.modules)\n")
    import subprocess

    for argv in (["targets"], ["--version"], ["--help"], ["targets", "--help"]):
        out = subprocess.run([sys.executable, "-c", script, *argv], capture_output=True, text=True, timeout=60)
        assert out.stdout.strip().splitlines()[-1] == "False", (argv, out.stdout + out.stderr)


def test_targets_list_show_validate(tmp_path: Path) -> None:
    listing = run_cli("targets")
    assert listing.code == 0
    for name in ("weak-cpu", "edge", "gpu-server", "rpi4-4gb"):
        assert name in listing.stdout
    shown = run_cli("targets", "show", "edge")
    assert shown.code == 0 and "Cortex-A72" in shown.stdout and "p95" in shown.stdout
    good = _profile(tmp_path, "good", "  latency: {p95: 10 ms}\n")
    bad = _profile(tmp_path, "bad", "  latncy: {p95: 10 ms}\n")
    assert run_cli("targets", "validate", good).code == 0
    rejected = run_cli("targets", "validate", good, bad)
    assert rejected.code == 2
    assert f"{bad}:7:3: unknown key 'budgets.latncy' (did you mean 'latency'?)" in rejected.stderr
    assert_no_traceback(rejected)
    assert run_cli("targets", "show", "nope").code == 2


def test_schema_is_json_schema() -> None:
    run = run_cli("schema")
    doc = json.loads(run.stdout)
    assert set(doc) == {"hardware", "profile"}
    assert "budgets" in doc["profile"]["properties"]


def test_inspect_without_running(cnn_model: Path) -> None:
    run = run_cli("inspect", cnn_model)
    assert run.code == 0
    assert "opset 17" in run.stdout and "Conv" in run.stdout and "[batch, 3, 160, 160]" in run.stdout
    facts = json.loads(run_cli("inspect", cnn_model, "--json").stdout)
    assert facts["parameters"] > 1_000_000 and facts["ops"]["Conv"] >= 50


def test_check_pass_exit_0_and_json(small_cnn_model: Path, tmp_path: Path) -> None:
    profile = _profile(tmp_path, "loose", "  latency: {p50: 10 s}\n  peak_memory: 1 GiB\n  model_size: 100 MB\n")
    out = tmp_path / "r.json"
    run = run_mlfit("check", small_cnn_model, "--target", profile, "--json", out, *FAST)
    assert run.code == 0, run.output
    assert "Measured on this host" in run.stdout and "projected" in run.stdout and "PASS" in run.stdout
    report = json.loads(out.read_text())
    assert report["schema_version"] == RESULT_SCHEMA_VERSION and report["kind"] == "mlfit-report"
    result = report["results"][0]
    assert len(result["model"]["sha256"]) == 64 and result["model"]["format"] == "onnx"
    assert result["model"]["inputs_used"][0]["shape"] == [1, 3, 64, 64]
    m = result["measurement"]
    assert m["latency"]["n"] == len(m["latency"]["samples_ns"]) >= 1
    assert m["memory"]["peak_bytes"] >= m["memory"]["runtime_baseline_bytes"] > 0
    assert m["cold_start"]["load_s"] > 0 and m["threads"] == 1
    assert result["host"]["cpu_model"] and result["host"]["fingerprint"]
    checks = {c["metric"]: c for c in result["targets"][0]["checks"]}
    p50 = checks["latency.p50"]
    assert p50["provenance"] == "projected" and p50["lower"] <= p50["value"] <= p50["upper"]
    assert checks["model.size"]["provenance"] == "static"


def test_check_fail_exit_1(small_cnn_model: Path, tmp_path: Path) -> None:
    profile = _profile(tmp_path, "tight", "  latency: {p50: 1 ns}\n  model_size: 1 kB\n")
    run = run_mlfit("check", small_cnn_model, "--target", profile, *FAST)
    assert run.code == 1, run.output
    assert "FAIL" in run.stdout
    assert_no_traceback(run)


def test_insufficient_samples_are_never_filled_in(cnn_model: Path, tmp_path: Path) -> None:
    profile = _profile(tmp_path, "p99", "  latency: {p99: 10 s}\n")
    out = tmp_path / "r.json"
    run = run_cli("check", cnn_model, "--dim", "batch=1", "--target", profile, "--json", out, "--min-time", "0",
                    "--max-time", "0.1", "--warmup", "0", "-q")
    result = json.loads(out.read_text())["results"][0]
    if result["measurement"]["latency"]["n"] < 662:
        assert result["measurement"]["latency"]["p99"] is None
        check = next(c for c in result["targets"][0]["checks"] if c["metric"] == "latency.p99")
        assert check["verdict"] == "INCONCLUSIVE" and "insufficient samples" in check["reason"]
        assert "bounds do not decide" in check["reason"] and "--max-time " in check["reason"]
        assert run.code == 0 and "INCONCLUSIVE" in run.stderr
        strict = run_cli("check", cnn_model, "--dim", "batch=1", "--target", profile, "--min-time", "0",
                           "--max-time", "0.1", "--warmup", "0", "-q", "--strict")
        assert strict.code == 4


def test_dynamic_dims_message_then_flags_work(transformer_model: Path, tmp_path: Path) -> None:
    run = run_cli("check", transformer_model, "--target", "weak-cpu", *FAST)
    assert run.code == 2
    assert "input_ids int64[1, seq]" in run.stderr and "--dim seq=N" in run.stderr
    assert_no_traceback(run)
    out = tmp_path / "t.json"
    ok = run_cli("profile", transformer_model, "--dim", "seq=16", "--range", "input_ids=0:500", "--json", out,
                   *FAST)
    assert ok.code == 0, ok.output
    assert json.loads(out.read_text())["results"][0]["model"]["inputs_used"][0]["shape"] == [1, 16]


def test_runtime_error_on_first_inference_names_a_flag(transformer_model: Path) -> None:
    # Token ids beyond the embedding table: the runtime's own message and a hint about --range.
    run = run_cli("profile", transformer_model, "--dim", "seq=8", "--range", "input_ids=100000:200000", *FAST)
    assert run.code == 3
    assert "first inference" in run.stderr and "--range" in run.stderr
    assert_no_traceback(run)


@pytest.mark.parametrize(("args", "code", "fragment"), [
    (("check", "missing.onnx", "--target", "edge"), 2, "does not exist"),
    (("check", "{model}", "--target", "edgy"), 2, "did you mean 'edge'"),
    (("check", "{model}", "--target", "edge", "--dim", "nope=3"), 2, "not a symbolic dim"),
    (("check", "{model}", "--target", "edge", "--json", "/nonexistent/dir/r.json"), 2, "does not exist"),
    (("check", "{garbage}", "--target", "edge"), 3, "not a valid onnx file"),
    (("check", "{model}"), 2, "Missing option '--target'"),
])
def test_bad_input_exit_codes(small_cnn_model: Path, tmp_path: Path, args: tuple[str, ...], code: int,
                              fragment: str) -> None:
    garbage = tmp_path / "garbage.onnx"
    garbage.write_bytes(b"\x13\x37" * 100)
    real = [a.format(model=small_cnn_model, garbage=garbage) for a in args]
    run = run_cli(*real, *FAST)
    assert run.code == code, run.output
    assert fragment in run.stderr
    assert_no_traceback(run)


@pytest.mark.parametrize("args", [("targets", "show", "nope"), ("check", "missing.onnx", "--target", "edge"),
                                  ("check", "--target", "edge", "--min-time", "-1", "m.onnx"), ("inspect",)])
def test_in_process_runs_are_the_programs_runs(tmp_path: Path, args: tuple[str, ...]) -> None:
    """run_cli, which most tests use to save a fresh interpreter per run, gives what the program
    gives: the same exit code and the same output, byte for byte."""
    program, here = run_mlfit(*args, cwd=tmp_path), run_cli(*args, cwd=tmp_path)
    assert (here.code, here.stdout, here.stderr) == (program.code, program.stdout, program.stderr)
    assert program.code == 2 and program.stderr
