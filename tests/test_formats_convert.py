"""Content sniffing of every format, and --convert measuring a converted artefact."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from conftest import FAST, assert_no_traceback, run_cli
from format_models import models
from mlfit.catalog.schema import Runtime
from mlfit.convert import plan
from mlfit.errors import ExitCode
from mlfit.formats import ModelFormat, sniff, suffix_mismatch


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return models(tmp_path_factory.getbasetemp())


@pytest.mark.parametrize(("key", "fmt"), [
    ("keras", ModelFormat.KERAS), ("h5", ModelFormat.H5), ("savedmodel", ModelFormat.SAVEDMODEL),
    ("tflite", ModelFormat.TFLITE), ("tflite_int8", ModelFormat.TFLITE), ("skops", ModelFormat.SKOPS),
    ("joblib", ModelFormat.PICKLE), ("joblib_zlib", ModelFormat.PICKLE), ("joblib_gzip", ModelFormat.PICKLE),
    ("joblib_bz2", ModelFormat.PICKLE), ("joblib_xz", ModelFormat.PICKLE),
    ("joblib_lzma", ModelFormat.PICKLE), ("hostile_pkl", ModelFormat.PICKLE),
])  # fmt: skip
def test_sniff_by_content(built: dict[str, Path], key: str, fmt: ModelFormat) -> None:
    assert sniff(built[key]) is fmt


def test_content_wins_over_suffix(built: dict[str, Path], tmp_path: Path) -> None:
    renamed = tmp_path / "model.onnx"
    shutil.copy(built["skops"], renamed)
    assert sniff(renamed) is ModelFormat.SKOPS
    assert "content is skops" in (suffix_mismatch(renamed, ModelFormat.SKOPS) or "")


def test_every_format_maps_to_a_runtime() -> None:
    from mlfit.formats.registry import get

    for fmt in ModelFormat:
        assert get(fmt).kind is fmt and isinstance(get(fmt).runtime, Runtime)


def test_plan_follows_the_target_and_skips_when_not_needed() -> None:
    from mlfit.catalog.loader import resolve_target

    edge, jetson, weak = resolve_target("edge"), resolve_target("jetson"), resolve_target("weak-cpu")
    assert plan(Runtime.TENSORFLOW, [jetson]) is None  # jetson runs tensorflow: nothing to convert
    chosen = plan(Runtime.SKLEARN, [edge])
    assert chosen is not None and chosen.destination is Runtime.ONNXRUNTIME
    assert plan(Runtime.SKLEARN, [weak]) is None
    tf_plan = plan(Runtime.TENSORFLOW, [edge])
    assert tf_plan is not None and tf_plan.destination in (Runtime.ONNXRUNTIME, Runtime.TFLITE)


@pytest.mark.slow
@pytest.mark.parametrize("key", ["skops", "keras"])
def test_convert_measures_the_converted_artefact(built: dict[str, Path], tmp_path: Path, key: str) -> None:
    out = tmp_path / "r.json"
    run = run_cli(
        "check", built[key], "--target", "edge", "--dim", "batch=1", "--convert", "--json", out, *FAST
    )
    assert run.code in (ExitCode.OK, ExitCode.BUDGET_FAILED), run.output
    assert_no_traceback(run)
    result = json.loads(out.read_text())["results"][0]
    model = result["model"]
    assert model["path"] == str(built[key].resolve())
    assert model["artefact"] and "converted from" in model["artefact"]
    assert (
        model["runtime"] in ("onnxruntime", "tflite") and result["measurement"]["runtime"] == model["runtime"]
    )
    assert not any(c["metric"] == "compat.runtime" for c in result["targets"][0]["checks"])
    assert "measured artefact:" in run.stdout
    # The converted artefact's structure is read (ONNX or TFLite), so the device model projects it.
    assert result["analysis"] and result["analysis"]["nodes"]
    assert result["targets"][0]["projection"]["method"].startswith("device model"), result["targets"][0]


@pytest.mark.slow
def test_conversion_errors_are_one_clear_line(built: dict[str, Path]) -> None:
    run = run_cli(
        "check",
        built["savedmodel"],
        "--target",
        "edge",
        "--dim",
        "batch=1",
        "--convert",
        "--signature",
        "nope",
        *FAST,
    )
    assert run.code == ExitCode.MODEL, run.output
    assert_no_traceback(run)
    assert run.stderr.startswith("mlfit: error: --convert:") and "nope" in run.stderr


def test_plan_refuses_formats_without_a_converter(tmp_path: Path) -> None:
    from mlfit.catalog.loader import resolve_target
    from mlfit.errors import ConfigError

    with pytest.raises(ConfigError, match="no converter for onnxruntime"):
        plan(Runtime.ONNXRUNTIME, [])
    profile = tmp_path / "tflite-only.yaml"
    profile.write_text("schema_version: 1\nid: tflite-only\nhardware: rpi4-4gb\nruntimes: [tflite, tensorflow]\n")
    with pytest.raises(ConfigError, match="no converter for onnxruntime") as caught:
        plan(Runtime.ONNXRUNTIME, [resolve_target(str(profile))])
    # the hint names the profile line that would let the target run the model as it is (issue 23)
    assert "`runtimes: [tflite, tensorflow, onnxruntime]`" in (caught.value.hint or ""), caught.value.hint


def test_tflite_converts_to_onnx_for_an_onnxruntime_only_target() -> None:
    from mlfit.catalog.loader import resolve_target

    chosen = plan(Runtime.TFLITE, [resolve_target("weak-cpu")])  # weak-cpu: onnxruntime, sklearn
    assert chosen is not None and chosen.destination is Runtime.ONNXRUNTIME and chosen.tool == "tf2onnx"


@pytest.mark.slow
def test_a_tflite_model_is_measured_converted_by_tf2onnx(built: dict[str, Path], tmp_path: Path) -> None:
    """Without --convert, weak-cpu FAILs the runtime check and says --convert helps; with it, tf2onnx
    converts the flatbuffer and the ONNX artefact is measured and judged."""
    out = tmp_path / "plain.json"
    run = run_cli("check", built["tflite"], "--target", "weak-cpu", "--json", out, *FAST)
    assert_no_traceback(run)
    check = next(c for c in json.loads(out.read_text())["results"][0]["targets"][0]["checks"]
                 if c["metric"] == "compat.runtime")
    assert check["verdict"] == "FAIL" and "--convert measures it converted to onnxruntime" in check["reason"]
    out = tmp_path / "converted.json"
    run = run_cli("check", built["tflite"], "--target", "weak-cpu", "--dim", "batch=1", "--convert",
                    "--json", out, *FAST)
    assert run.code in (ExitCode.OK, ExitCode.BUDGET_FAILED), run.output
    result = json.loads(out.read_text())["results"][0]
    assert "converted from convnet.tflite by tf2onnx" in result["model"]["artefact"], result["model"]
    assert result["measurement"]["runtime"] == "onnxruntime" and result["measurement"]["latency"]["n"] > 0
    assert not any(c["metric"] == "compat.runtime" for c in result["targets"][0]["checks"])


def test_a_runtime_no_converter_reaches_names_the_profile_line(tiny_model: Path, tmp_path: Path) -> None:
    """An ONNX model on a TFLite-only target: the runtime check's reason names the line to add."""
    profile = tmp_path / "tflite-only.yaml"
    profile.write_text("schema_version: 1\nid: tflite-only\nhardware: rpi4-4gb\nruntimes: [tflite]\n")
    out = tmp_path / "r.json"
    run = run_cli("check", tiny_model, "--target", profile, "--json", out, *FAST)
    assert_no_traceback(run)
    check = next(c for c in json.loads(out.read_text())["results"][0]["targets"][0]["checks"]
                 if c["metric"] == "compat.runtime")
    assert f"add it to its profile ({profile})" in check["reason"], check["reason"]
    assert "`runtimes: [tflite, onnxruntime]`" in check["reason"]
