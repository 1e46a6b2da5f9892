"""The calibration cache as a file others may touch: a private folder, entries validated when read
(a malformed one is measured again, with a note, never a traceback), and a lock so that concurrent
first runs calibrate once. Real `mlfit` processes, real flocks, real ownership."""

from __future__ import annotations

import fcntl
import json
import os
import re
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import assert_no_traceback, run_cli


def _folder(xdg: Path) -> Path:
    return xdg / "mlfit"


def _entries(xdg: Path) -> list[Path]:
    return sorted(_folder(xdg).glob("calibration-*.json"))


@pytest.fixture(scope="module")
def entry(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str]:
    """A real calibration of this host: (file name, text)."""
    xdg = tmp_path_factory.mktemp("xdg")
    run = run_cli("calibrate", env={"XDG_CACHE_HOME": str(xdg)})
    assert run.code == 0, run.output
    (path,) = _entries(xdg)
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700  # created private
    return path.name, path.read_text()


def _seed(xdg: Path, entry: tuple[str, str], text: str | None = None) -> Path:
    _folder(xdg).mkdir(parents=True, mode=0o700, exist_ok=True)
    path = _folder(xdg) / entry[0]
    path.write_text(entry[1] if text is None else text)
    return path


def _malformed(entry: tuple[str, str], how: str) -> str:
    data = json.loads(entry[1])
    if how == "not json":
        return "{not json"
    if how == "a list":
        return "[1, 2]"
    if how == "string figure":
        data["gemm_flops"] = {"1": "fast"}
    elif how == "no 1-thread figure":
        data["gemm_flops"] = {"2": 1e9}
    elif how == "missing bandwidth":
        del data["bandwidth"]
    elif how == "nan":
        return json.dumps(data).replace(str(data["call_overhead_s"]), "NaN", 1)
    return json.dumps(data)


@pytest.mark.parametrize("how", ["not json", "a list", "string figure", "no 1-thread figure", "missing bandwidth",
                                 "nan"])
def test_a_malformed_entry_is_measured_again(entry: tuple[str, str], tmp_path: Path, how: str) -> None:
    path = _seed(tmp_path, entry, _malformed(entry, how))
    run = run_cli("calibrate", env={"XDG_CACHE_HOME": str(tmp_path)})
    assert_no_traceback(run)
    assert run.code == 0, run.output
    assert f"ignored the malformed calibration cache {path}" in run.stderr and "measured now" in run.stdout
    assert json.loads(path.read_text())["gemm_flops"]["1"] > 0  # replaced by a good entry


def test_check_recalibrates_over_a_malformed_entry(entry: tuple[str, str], tmp_path: Path, tiny_model: Path) -> None:
    """`mlfit check` once died with a KeyError traceback and exit 1 (a failed budget, to CI)."""
    _seed(tmp_path, entry, _malformed(entry, "no 1-thread figure"))
    run = run_cli("check", tiny_model, "--target", "edge", "--threads", "1", "--min-time", "0.2", "--max-time",
                    "1", "--quiet", env={"XDG_CACHE_HOME": str(tmp_path)})
    assert_no_traceback(run)
    assert run.code in (0, 4), run.output
    assert "ignored the malformed calibration cache" in run.stderr


def test_an_open_folder_is_made_private(entry: tuple[str, str], tmp_path: Path) -> None:
    _seed(tmp_path, entry)
    os.chmod(_folder(tmp_path), 0o777)
    run = run_cli("calibrate", env={"XDG_CACHE_HOME": str(tmp_path)})
    assert run.code == 0 and "cached calibration" in run.stdout, run.output
    assert "made it 0700" in run.stderr
    assert stat.S_IMODE(_folder(tmp_path).stat().st_mode) == 0o700


def test_a_folder_of_another_user_is_refused(entry: tuple[str, str], tmp_path: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("giving a folder to another user needs root")
    _seed(tmp_path, entry)
    os.chown(_folder(tmp_path), 65534, 65534)
    run = run_cli("calibrate", env={"XDG_CACHE_HOME": str(tmp_path)})
    assert_no_traceback(run)
    assert run.code == 2 and "belongs to another user (uid 65534)" in " ".join(run.stderr.split()), run.output
    assert "XDG_CACHE_HOME" in run.stderr


def test_an_entry_of_another_user_is_ignored(entry: tuple[str, str], tmp_path: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("giving a file to another user needs root")
    path = _seed(tmp_path, entry)
    os.chown(path, 65534, 65534)
    run = run_cli("calibrate", env={"XDG_CACHE_HOME": str(tmp_path)})
    assert run.code == 0 and "belongs to another user" in run.stderr and "measured now" in run.stdout, run.output
    assert path.stat().st_uid == os.geteuid()


def test_concurrent_first_runs_calibrate_once(tmp_path: Path) -> None:
    env = {**os.environ, "XDG_CACHE_HOME": str(tmp_path), "COLUMNS": "200"}
    procs = [subprocess.Popen([sys.executable, "-m", "mlfit", "calibrate"], env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL) for _ in range(3)]
    outs = [p.communicate(timeout=300) for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0], outs
    measured = [out for out, _ in outs if "measured now" in out]
    assert len(measured) == 1, outs  # the others waited and read its entry
    assert sum("cached calibration" in out for out, _ in outs) == 2
    assert len(_entries(tmp_path)) == 1
    stamps = {m for out, _ in outs for m in re.findall(r"\d{4}-\d\d-\d\dT[\d:]+[+-]\d{4}", out)}
    assert len(stamps) == 1, outs  # one calibration, read by all three


def test_a_waiter_past_the_bound_calibrates_without_writing(tmp_path: Path) -> None:
    from mlfit.measure.host import host_info

    folder = _folder(tmp_path)
    folder.mkdir(mode=0o700)
    lock = folder / f"calibration-{host_info().fingerprint}.lock"
    with lock.open("w") as held:
        fcntl.flock(held.fileno(), fcntl.LOCK_EX)  # a stuck calibration holds the lock
        run = run_cli("calibrate", env={"XDG_CACHE_HOME": str(tmp_path), "MLFIT_CALIBRATION_WAIT_S": "1"})
    assert_no_traceback(run)
    assert run.code == 0 and "measured now" in run.stdout, run.output
    assert "calibrating without writing the cache" in run.stderr
    assert _entries(tmp_path) == [] and not list(folder.glob("*.new"))
