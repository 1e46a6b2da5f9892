"""`mlfit calibrate`: measures, caches per host fingerprint, re-measures when stale, and
writes a hardware file that the catalog accepts."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import assert_no_traceback, run_cli, run_mlfit
from mlfit.analysis.calibrate import per_thread, thread_counts
from mlfit.catalog.loader import load_hardware_file


@pytest.fixture(scope="module")
def cache_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("xdg-cache")


def test_calibrate_measures_then_caches(cache_home: Path, tmp_path: Path) -> None:
    env = {"XDG_CACHE_HOME": str(cache_home)}
    hw_file = tmp_path / "my-host.yaml"
    first = run_cli("calibrate", "--emit-hardware", hw_file, env=env)
    assert_no_traceback(first)
    assert first.code == 0, first.output
    assert "measured now" in first.stdout and "GEMM" in first.stdout
    cached = list((cache_home / "mlfit").glob("calibration-*.json"))
    assert len(cached) == 1
    data = json.loads(cached[0].read_text())
    assert data["duration_s"] < 20
    assert all(v > 0 for v in data["gemm_flops"].values()) and all(v > 0 for v in data["bandwidth"].values())
    assert data["call_overhead_s"] > 0

    second = run_cli("calibrate", env=env)
    assert second.code == 0 and "cached calibration" in second.stdout, second.output

    # The emitted hardware file validates against the catalog schema, with measured figures.
    hardware = load_hardware_file(hw_file)
    assert hardware.cpu.sustained_fp32 and hardware.cpu.sustained_fp32 <= hardware.cpu.peak_fp32
    assert "measured by mlfit calibrate" in hardware.cpu.source
    assert "measured" in hardware.memory.source

    # A calibration recorded for another fingerprint (or an older format) is stale: measured again.
    data["fingerprint"] = "0000000000000000"
    cached[0].write_text(json.dumps(data))
    third = run_cli("calibrate", "--json", env=env)
    assert third.code == 0, third.output
    assert json.loads(third.stdout)["fingerprint"] != "0000000000000000"


def test_emitted_hardware_is_usable_as_a_target(
    cache_home: Path, tmp_path: Path, small_cnn_model: Path
) -> None:
    env = {"XDG_CACHE_HOME": str(cache_home)}
    hw_file = tmp_path / "host.yaml"
    assert run_cli("calibrate", "--emit-hardware", hw_file, "--id", "my-host", env=env).code == 0
    profile = tmp_path / "here.yaml"
    profile.write_text(
        "schema_version: 1\nid: here\nhardware: host.yaml\nruntimes: [onnxruntime]\nthreads: 1\n"
        "budgets:\n  latency: {p50: 10 s}\n"
    )
    run = run_cli(
        "check",
        small_cnn_model,
        "--target",
        profile,
        "--json",
        "-",
        "--min-time",
        "0.2",
        "--max-time",
        "2",
        "--quiet",
        env=env,
    )
    assert_no_traceback(run)
    report = json.loads(run.stdout)["results"][0]["targets"][0]
    assert report["hardware"] == "my-host"
    assert any("sustained fp32 from its hardware file" in n for n in report["notes"])


def test_thread_scaling_helpers() -> None:
    assert thread_counts(1) == [1]
    assert thread_counts(6) == [1, 2, 4, 6]
    figures = {"1": 100.0, "2": 180.0}
    assert per_thread(figures, 2) == 180.0
    assert 180.0 < per_thread(figures, 4) <= 360.0  # beyond measured: the last step's efficiency
    assert per_thread({"2": 180.0}, 1) == 90.0


@pytest.mark.parametrize(("flags", "vendor", "family", "fpc"), [
    ({"avx512f", "avx2", "fma"}, "GenuineIntel", 6, 64),  # Skylake-SP and later: two 512-bit FMA units
    ({"avx512f", "avx2", "fma"}, "AuthenticAMD", 25, 32),  # Zen 4: a 512-bit FMA on two 256-bit pipes
    ({"avx512f", "avx2", "fma"}, "AuthenticAMD", 26, 64),  # Zen 5 server/desktop: full 512-bit pipes
    ({"avx2", "fma"}, "AuthenticAMD", 25, 32),  # Zen 3
    ({"avx512f", "avx2", "fma"}, "", 0, 64),  # vendor unknown: as before
])  # fmt: skip
def test_peak_flops_per_cycle_knows_half_rate_avx512(flags: set[str], vendor: str, family: int, fpc: int) -> None:
    from mlfit.catalog.hostfacts import flops_per_cycle

    assert flops_per_cycle(flags, "x86_64", vendor, family) == fpc


def test_a_calibration_leaves_nothing_in_the_users_temp_folder(tmp_path: Path) -> None:
    """onnxruntime's official builds write a telemetry session file (`.ses`) into $TMPDIR when imported;
    the calibration imports onnxruntime in the CLI itself, so mlfit turns that telemetry off for the
    processes it runs (ORT_DISABLE_TELEMETRY) and the user's temp folder stays as it was."""
    import os

    assert "ORT_DISABLE_TELEMETRY" not in os.environ  # else this would not test mlfit's own setting
    user_tmp, cache = tmp_path / "tmp", tmp_path / "cache"
    user_tmp.mkdir()
    run = run_mlfit("calibrate", "--force", env={"TMPDIR": str(user_tmp), "XDG_CACHE_HOME": str(cache)})
    assert_no_traceback(run)
    assert run.code == 0, run.output
    assert not list(user_tmp.iterdir()), list(user_tmp.iterdir())
