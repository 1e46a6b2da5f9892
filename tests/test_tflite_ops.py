"""TFLite custom and Flex (Select TF) ops judged against allowlists from the flatbuffer itself
(issue 11: "the same allowlist thinking for TFLite custom/Flex ops")."""

from __future__ import annotations

import contextlib
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from conftest import FAST, assert_no_traceback, run_cli
from mlfit.errors import ExitCode, ModelError
from mlfit.formats import ModelFormat
from mlfit.formats.registry import check_model
from mlfit.safety.tflite_scan import TFLiteScanError, scan_tflite, scan_tflite_bytes
from test_fuzz import FUZZ


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    from savedmodel_models import models

    return models(tmp_path_factory.getbasetemp())


@pytest.fixture(scope="module")
def formats(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    from format_models import models

    return models(tmp_path_factory.getbasetemp())


@pytest.mark.slow
def test_flex_ops_are_judged_by_the_nodedef_they_run(built: dict[str, Path]) -> None:
    hostile = scan_tflite(built["flex_write"])
    assert hostile.refused == ["WriteFile"] and "AsString" in hostile.flex_ops  # AsString computes: allowed
    benign = scan_tflite(built["flex_benign"])
    assert benign.problems == [] and {"AsString", "ReduceJoin", "StringLength"} <= set(benign.flex_ops)
    custom = scan_tflite(built["custom_write"])
    assert custom.refused == ["AsString", "WriteFile"]  # unknown custom ops: the interpreter has no kernel


@pytest.mark.slow
def test_builtin_tflite_models_pass(formats: dict[str, Path]) -> None:
    for key in ("tflite", "tflite_int8"):
        scan = scan_tflite(formats[key])
        assert scan.problems == [] and not scan.custom_ops and not scan.flex_ops
        check_model(formats[key], ModelFormat.TFLITE, trust_model=False)


@pytest.mark.slow
@pytest.mark.parametrize("case", ["flex_write", "custom_write"])
def test_cli_refuses_hostile_tflite(built: dict[str, Path], case: str) -> None:
    run = run_cli("check", built[case], "--target", "edge", *FAST)
    assert_no_traceback(run)
    assert run.code == ExitCode.MODEL, run.output
    assert len(run.stderr.strip().splitlines()) == 1
    assert "WriteFile" in run.stderr and "--trust-model" in run.stderr
    assert not Path(built["sentinel_tflite"]).exists()


def test_broken_flatbuffers_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "m.tflite"
    path.write_bytes(b"\x10\x00\x00\x00TFL3" + b"\xff" * 40)
    with pytest.raises(ModelError, match="cannot check the TFLite model"):
        check_model(path, ModelFormat.TFLITE, trust_model=False)


def test_tflite_reader_on_random_bytes() -> None:
    @FUZZ
    @given(st.binary(min_size=0, max_size=400))
    def check(data: bytes) -> None:
        with contextlib.suppress(TFLiteScanError):  # a judgement or mlfit's own error, nothing else
            scan_tflite_bytes(b"\x0c\x00\x00\x00TFL3" + data)

    check()
