"""Bounded inputs (issue 18 items 2, 4 and 7): cpusets checked when read, rates and load plans
bounded at parse time, large manifests refused while they are parsed. Each bad input is exit 2
with one line; none reaches a cgroup or the worker."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from conftest import FAST, assert_no_traceback, run_cli
from mlfit.catalog import units
from mlfit.catalog.yamlload import MAX_COMPOSED, load_yaml_documents
from mlfit.errors import ConfigError
from mlfit.measure.scenarios import MAX_REQUESTS, requests_for


def _compose(tmp_path: Path, cpuset: str, cpus: str = "0.5") -> Path:
    path = tmp_path / "compose.yaml"
    path.write_text(f"services:\n  model:\n    image: m:1\n    cpus: {cpus}\n    cpuset: \"{cpuset}\"\n")
    return path


def _error_lines(run: object) -> list[str]:
    return [line for line in run.stderr.splitlines() if line.strip()]  # type: ignore[attr-defined]


@pytest.mark.parametrize(("cpuset", "words"), [
    ("3-1", "range '3-1' runs backwards"),
    ("4096", "CPU 4096 is beyond any host"),
    ("99999999999999999999", "is not a CPU number"),
    ("0,0", "CPU 0 is named twice"),
    ("0-2,1", "CPU 1 is named twice"),
    ("", "cpuset is empty"),
    ("0-", "is not a CPU number"),
])
def test_bad_cpuset_in_compose_file_is_refused_with_its_position(tmp_path: Path, tiny_model: Path, cpuset: str,
                                                                 words: str) -> None:
    path = _compose(tmp_path, cpuset)
    run = run_cli("check", tiny_model, "--target", path, *FAST)
    assert_no_traceback(run)
    assert run.code == 2, run.output
    assert f"{path}:5:13: cpuset: " in run.stderr and words in run.stderr, run.stderr


def test_bad_cpuset_in_profile_is_refused_with_its_position(tmp_path: Path) -> None:
    from mlfit.catalog.loader import resolve_target

    profile = tmp_path / "p.yaml"
    profile.write_text("schema_version: 1\nid: p\nhardware: host\nruntimes: [onnxruntime]\n"
                       "container:\n  cpu: 1\n  cpuset: '5-2'\n")
    with pytest.raises(ConfigError) as err:
        resolve_target(str(profile))
    assert f"{profile}:7:11" in err.value.message and "runs backwards" in err.value.message


def test_cpuset_the_host_lacks_is_exit_2_before_any_cgroup(tmp_path: Path, tiny_model: Path) -> None:
    """The red team's compose file: a 10m quota and a CPU this host does not have. Today it is a
    forged PASS; it must be exit 2 with one line, and no cgroup is made for it."""
    missing = max(os.sched_getaffinity(0)) + 1
    path = _compose(tmp_path, str(missing), cpus="0.01")
    run = run_cli("check", tiny_model, "--target", path, *FAST)
    assert_no_traceback(run)
    assert run.code == 2, run.output
    lines = _error_lines(run)
    assert len(lines) <= 2, run.stderr  # the message, and at most its hint
    assert f"cpuset '{missing}'" in run.stderr and f"CPU {missing}" in run.stderr, run.stderr
    assert "PASS" not in run.stdout


def test_cpuset_parsing_keeps_the_kernel_spelling() -> None:
    assert units.parse_cpuset("0-2,5") == frozenset({0, 1, 2, 5})
    assert units.format_cpuset(units.parse_cpuset("5,0,1,2")) == "0-2,5"
    assert units.parse_cpuset(3) == frozenset({3})


def test_an_absurd_sustained_rate_is_refused_at_once(tiny_model: Path) -> None:
    started = time.monotonic()
    run = run_cli("check", tiny_model, "--target", "edge", "--budget", "sustains=1e18/s", *FAST)
    elapsed = time.monotonic() - started
    assert_no_traceback(run)
    assert run.code == 2, run.output
    assert len(_error_lines(run)) <= 2, run.stderr
    assert "--budget 'sustains=1e18/s'" in run.stderr and "above 1000000/s" in run.stderr, run.stderr
    assert elapsed < 60  # refused while parsing flags: no worker ran out of memory on a request list


@pytest.mark.parametrize("flag", [["--qps", "1e9"], ["--qps", "nan"], ["--budget", "sustains=500000/s"]])
def test_load_rates_beyond_the_generator_are_refused(tiny_model: Path, flag: list[str]) -> None:
    run = run_cli("check", tiny_model, "--target", "edge", *flag, *FAST)
    assert_no_traceback(run)
    assert run.code == 2, run.output
    assert "request rate" in run.stderr, run.stderr


def test_a_big_legal_rate_schedules_a_bounded_request_list() -> None:
    # 100000/s over a 600 s minimum would be 60 million arrivals: capped at MAX_REQUESTS.
    assert requests_for(100_000.0, 130, 600.0, 3600.0) == MAX_REQUESTS
    assert requests_for(50.0, 130, 1.0, 30.0) == 130  # an ordinary plan is unchanged
    assert requests_for(1.0, 662, 1.0, 30.0) == 30  # never more than the window holds at the rate


def test_durations_from_flags_are_bounded(tiny_model: Path) -> None:
    run = run_cli("check", tiny_model, "--target", "edge", "--min-time", "1e18", "--quiet")
    assert_no_traceback(run)
    assert run.code == 2 and "--min-time" in run.output


def _big_manifest(path: Path) -> Path:
    lines = ["apiVersion: v1", "kind: Pod", "metadata: {name: x}", "spec:", "  containers:", "    - name: m",
             "      image: i", "      resources: {limits: {cpu: 500m}}", "      env:"]
    size, i = sum(len(line) + 1 for line in lines), 0
    while size < (1 << 20) - 64:
        line = f"        - {{name: V{i}, value: '{i}'}}"
        lines.append(line)
        size += len(line) + 1
        i += 1
    path.write_text("\n".join(lines) + "\n")
    return path


def test_a_1mib_manifest_is_refused_while_parsing(tmp_path: Path, tiny_model: Path) -> None:
    """Counted after composition, this took 67 s to refuse; counted while composing, the loader
    stops at the bound, a fraction of the file in."""
    path = _big_manifest(tmp_path / "big.yaml")
    assert path.stat().st_size <= 1 << 20  # within the byte cap: the node bound must refuse it
    started = time.monotonic()
    with pytest.raises(ConfigError) as err:
        load_yaml_documents(path)
    in_process = time.monotonic() - started
    assert f"more than {MAX_COMPOSED} keys and values" in err.value.message
    started = time.monotonic()
    run = run_cli("check", tiny_model, "--target", path, *FAST)
    wall = time.monotonic() - started
    assert_no_traceback(run)
    assert run.code == 2 and f"{path}:" in run.stderr, run.output
    assert in_process < 15 and wall < 15, (in_process, wall)


@pytest.mark.parametrize("relative", [True, False])
def test_a_report_never_overwrites_the_profiles_hardware_file(tmp_path: Path, tiny_model: Path,
                                                              relative: bool) -> None:
    """Outputs over inputs: the hardware file a profile names is an input too (item 6)."""
    from mlfit.catalog.loader import catalog_dir

    hardware = tmp_path / "hw" / "board.yaml"
    hardware.parent.mkdir()
    original = (catalog_dir("hardware") / "rpi4-4gb.yaml").read_text()
    hardware.write_text(original)
    profile = tmp_path / "p.yaml"
    ref = "hw/board.yaml" if relative else str(hardware)
    profile.write_text(f"schema_version: 1\nid: p\nhardware: {ref}\nruntimes: [onnxruntime]\n")
    run = run_cli("check", tiny_model, "--target", profile, "--json", hardware, *FAST)
    assert_no_traceback(run)
    assert run.code == 2, run.output
    assert "is the input" in run.stderr and "board.yaml" in run.stderr, run.stderr
    assert hardware.read_text() == original
