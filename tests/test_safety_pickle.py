"""The static pickle scan: globals listed without unpickling; hostile files never run."""

from __future__ import annotations

import io
import pickle
from pathlib import Path

import pytest

from conftest import FAST, assert_no_traceback, run_mlfit
from format_models import models
from mlfit.errors import ExitCode, ModelError
from mlfit.formats import ModelFormat, sniff
from mlfit.safety import check_model, dangerous
from mlfit.safety.pickle_scan import PickleScanError, scan_pickle


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return models(tmp_path_factory.getbasetemp())


def test_hostile_pickle_lists_os_system_and_never_runs(built: dict[str, Path]) -> None:
    scan = scan_pickle(built["hostile_pkl"])
    assert any(g.endswith(".system") for g in scan.globals), scan.globals
    for key in ("hostile_pkl", "hostile_joblib"):
        run = run_mlfit("check", built[key], "--target", "weak-cpu", *FAST)
        assert run.code == ExitCode.MODEL, run.output
        assert_no_traceback(run)
        assert "system" in run.stderr and "--trust-model" in run.stderr and "skops" in run.stderr
        assert len(run.stderr.strip().splitlines()) == 1
    assert not built["sentinel"].exists()


@pytest.mark.parametrize(
    "key", ["joblib", "joblib_zlib", "joblib_gzip", "joblib_bz2", "joblib_xz", "joblib_lzma"]
)
def test_joblib_files_scan_to_their_estimators(built: dict[str, Path], key: str) -> None:
    assert sniff(built[key]) is ModelFormat.PICKLE
    scan = scan_pickle(built[key])
    assert "sklearn.linear_model._logistic.LogisticRegression" in scan.globals
    assert "sklearn.pipeline.Pipeline" in scan.globals
    assert scan.arrays > 0  # raw array bytes were stepped over, not parsed as opcodes
    assert (scan.compression is None) == (key == "joblib")
    assert not any(dangerous(g) for g in scan.globals)


def test_plain_joblib_is_refused_with_its_globals(built: dict[str, Path]) -> None:
    with pytest.raises(ModelError) as info:
        check_model(built["joblib"], ModelFormat.PICKLE, trust_model=False)
    assert "LogisticRegression" in info.value.message
    assert info.value.exit_code == ExitCode.MODEL
    check_model(built["joblib"], ModelFormat.PICKLE, trust_model=True)  # trusted: no scan, no error


def test_object_array_nested_pickle_is_scanned(tmp_path: Path) -> None:
    import joblib
    import numpy as np

    path = tmp_path / "objects.joblib"
    joblib.dump({"a": np.array([io.BytesIO, 1], dtype=object), "b": np.arange(5.0)}, path)
    scan = scan_pickle(path)
    assert "_io.BytesIO" in scan.globals  # found inside the object array's nested pickle
    assert scan.arrays == 2


def test_stack_global_and_protocols(tmp_path: Path) -> None:
    for protocol in range(0, pickle.HIGHEST_PROTOCOL + 1):
        path = tmp_path / f"p{protocol}.pkl"
        path.write_bytes(pickle.dumps({"f": print, "x": [1, 2.5, "s"]}, protocol=protocol))
        assert sniff(path) is ModelFormat.PICKLE
        assert "builtins.print" in scan_pickle(path).globals


def test_truncated_and_garbage_pickles_are_refused(tmp_path: Path) -> None:
    data = pickle.dumps({"x": list(range(50))}, protocol=4)
    cut = tmp_path / "cut.pkl"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(PickleScanError):
        scan_pickle(cut)
    with pytest.raises(ModelError, match="cannot be scanned"):
        check_model(cut, ModelFormat.PICKLE, trust_model=False)


def test_scan_never_imports_the_modules_it_names(tmp_path: Path) -> None:
    import sys

    path = tmp_path / "fake.pkl"
    # A global in a module that does not exist: a real unpickler would try to import it.
    path.write_bytes(b"\x80\x04\x95\x00\x00\x00\x00\x00\x00\x00\x00\x8c\x0fno_such_mod_xyz\x8c\x01f\x93)R.")
    assert scan_pickle(path).globals == ["no_such_mod_xyz.f"]
    assert "no_such_mod_xyz" not in sys.modules
