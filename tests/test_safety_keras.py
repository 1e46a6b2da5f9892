"""The Keras config walk (.keras and .h5) and the SavedModel op scan."""

from __future__ import annotations

from pathlib import Path

import pytest

from conftest import FAST, assert_no_traceback, run_mlfit
from format_models import models
from mlfit.errors import ExitCode, ModelError
from mlfit.formats import ModelFormat
from mlfit.formats.registry import check_model
from mlfit.safety.keras_scan import h5_config, keras_zip_config, walk_config
from mlfit.safety.savedmodel_scan import scan_savedmodel
from mlfit.safety.tf_ops import ALLOWED_OPS


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return models(tmp_path_factory.getbasetemp())


def _layer(cls: str, name: str, module: str | None = "keras.layers", **config: object) -> dict[str, object]:
    return {"module": module, "class_name": cls, "config": {"name": name, **config}}


def test_walk_finds_lambda_unknown_module_and_unsafe_switches() -> None:
    model = {
        "module": "keras",
        "class_name": "Sequential",
        "config": {
            "name": "m",
            "layers": [
                _layer("Dense", "d"),
                _layer("Lambda", "lam"),
                _layer("MyLayer", "custom", module="evil_pkg.layers"),
                {
                    "module": "keras.utils",
                    "class_name": "function",
                    "config": "get_file",
                    "registered_name": "get_file",
                },
                _layer("Dense", "flag", safe_mode=False),
                _layer("Dense", "mention", note="keras.config.enable_unsafe_deserialization()"),
            ],
        },
        "compile_config": {"loss": {"module": "my_losses", "class_name": "Custom", "config": {}}},
    }
    problems = walk_config(model)
    text = "\n".join(problems)
    assert "m (Sequential) > lam (Lambda)" in text
    assert "evil_pkg.layers" in text
    assert "keras.utils" in text
    assert "safe_mode" in text
    assert "enable_unsafe_deserialization" in text
    assert "my_losses" not in text  # compile_config is never deserialized (compile=False)
    assert len(problems) == 5


def test_walk_accepts_plain_keras() -> None:
    model = {
        "module": "keras",
        "class_name": "Functional",
        "config": {
            "name": "f",
            "layers": [
                _layer(
                    "Conv2D",
                    "c",
                    kernel_initializer={
                        "module": "keras.initializers",
                        "class_name": "HeNormal",
                        "config": {},
                    },
                ),
                _layer("Add", "a", module="keras.src.ops.numpy"),
                _layer("Dense", "legacy", module=None),
            ],
        },
    }
    assert walk_config(model) == []


@pytest.mark.parametrize("key", ["lambda_keras", "lambda_h5", "nested_keras", "nested_h5"])
def test_real_lambda_files_are_refused_with_the_layer_path(built: dict[str, Path], key: str) -> None:
    path = built[key]
    config = keras_zip_config(path) if path.suffix == ".keras" else h5_config(path)
    problems = walk_config(config)
    assert problems and "Lambda" in problems[0]
    if key.startswith("nested"):
        assert "outer (Functional) > inner (Sequential) > sneaky (Lambda)" in problems[0]
    fmt = ModelFormat.KERAS if path.suffix == ".keras" else ModelFormat.H5
    with pytest.raises(ModelError):
        check_model(path, fmt, trust_model=False)


def test_clean_keras_files_pass(built: dict[str, Path]) -> None:
    check_model(built["keras"], ModelFormat.KERAS, trust_model=False)
    check_model(built["h5"], ModelFormat.H5, trust_model=False)


@pytest.mark.slow
def test_cli_refuses_nested_lambda_then_trust_model_loads_it(built: dict[str, Path]) -> None:
    run = run_mlfit("check", built["nested_h5"], "--target", "jetson", *FAST)
    assert run.code == ExitCode.MODEL, run.output
    assert_no_traceback(run)
    assert "sneaky (Lambda)" in run.stderr and "--trust-model" in run.stderr
    trusted = run_mlfit(
        "check", built["lambda_keras"], "--target", "jetson", "--dim", "batch=1", "--trust-model", *FAST
    )
    assert trusted.code in (ExitCode.OK, ExitCode.BUDGET_FAILED), trusted.output
    assert "Overall:" in trusted.stdout


def test_savedmodel_scan(built: dict[str, Path]) -> None:
    clean = scan_savedmodel(built["savedmodel"])
    assert clean.problems == []
    # TF2 layout: variables are restored by TensorFlow's own code; the traced save/restore
    # functions in the library are never reached by loading or serving.
    assert clean.layout == "tf2" and "SaveV2" not in clean.ops and clean.functions > 0
    assert "Conv2D" in clean.ops
    hostile = scan_savedmodel(built["writer_savedmodel"])
    assert any("WriteFile" in p for p in hostile.problems)
    assert "WriteFile" not in ALLOWED_OPS and "ReadFile" not in ALLOWED_OPS


@pytest.mark.slow
def test_cli_refuses_a_savedmodel_that_writes_files(built: dict[str, Path]) -> None:
    run = run_mlfit("check", built["writer_savedmodel"], "--target", "jetson", "--dim", "batch=1", *FAST)
    assert run.code == ExitCode.MODEL, run.output
    assert_no_traceback(run)
    assert "WriteFile" in run.stderr
    assert not Path(built["writer_target"]).exists()


def test_keras_archive_with_escaping_member_is_refused(built: dict[str, Path], tmp_path: Path) -> None:
    import zipfile

    hostile = tmp_path / "escape.keras"
    with zipfile.ZipFile(built["keras"]) as src, zipfile.ZipFile(hostile, "w") as dst:
        for item in src.infolist():
            dst.writestr(item, src.read(item))
        dst.writestr("assets/../../../evil.txt", b"x")
    with pytest.raises(ModelError, match="outside the archive"):
        check_model(hostile, ModelFormat.KERAS, trust_model=False)


def _with_config(source: Path, target: Path, edit: object) -> Path:
    """``source`` (a real .keras archive) with its config.json passed through ``edit``."""
    import json
    import zipfile

    with zipfile.ZipFile(source) as src, zipfile.ZipFile(target, "w") as dst:
        for item in src.infolist():
            data = src.read(item)
            if item.filename == "config.json":
                config = json.loads(data)
                edit(config)  # type: ignore[operator]
                data = json.dumps(config).encode()
            dst.writestr(item, data)
    return target


def _lookup_config(config: dict[str, object]) -> dict[str, object]:
    for layer in config["config"]["layers"]:  # type: ignore[index]
        if layer["class_name"] == "StringLookup":
            return layer["config"]  # type: ignore[no-any-return]
    raise AssertionError("no StringLookup in the built model")


def test_a_vocabulary_read_from_outside_the_archive_is_refused(built: dict[str, Path], tmp_path: Path) -> None:
    """Issue 18 item 10: a StringLookup whose vocabulary is a path makes Keras read any local
    file; mlfit's own scan refuses it, and the hint never offers --trust-model for it."""
    check_model(built["lookup_keras"], ModelFormat.KERAS, trust_model=False)  # inline: accepted
    secret = tmp_path / "secret.txt"
    secret.write_text("cat\ndog\n")
    hostile = _with_config(built["lookup_keras"], tmp_path / "leak.keras",
                           lambda c: _lookup_config(c).update(vocabulary=str(secret)))
    with pytest.raises(ModelError) as caught:
        check_model(hostile, ModelFormat.KERAS, trust_model=False)
    err = caught.value
    assert "lookup (StringLookup)" in err.message and "outside the archive" in err.message
    assert secret.name in err.message  # a long path loses its middle, never the file's name
    assert "--trust-model" not in (err.hint or "") and "inline" in (err.hint or "")
    # Trust covers the model's code, never a local file it names: refused with --trust-model too,
    # while a trusted Lambda model and the inline vocabulary still pass.
    with pytest.raises(ModelError, match="outside the archive"):
        check_model(hostile, ModelFormat.KERAS, trust_model=True)
    check_model(built["lookup_keras"], ModelFormat.KERAS, trust_model=True)
    check_model(built["lambda_keras"], ModelFormat.KERAS, trust_model=True)
    run = run_mlfit("check", hostile, "--target", "jetson", "--trust-model", *FAST)
    assert run.code == ExitCode.MODEL, run.output
    assert_no_traceback(run)
    assert "outside the archive" in run.stderr and "trust-model" not in run.stderr


@pytest.mark.parametrize("value", ["https://example.com/v.txt", 7, {"path": "/etc/passwd"}])
def test_only_inline_vocabularies_pass(value: object) -> None:
    layer = _layer("StringLookup", "lookup", vocabulary=value)
    problems = walk_config({"module": "keras", "class_name": "Sequential", "config": {"layers": [layer]}})
    assert len(problems) == 1 and "outside the archive" in problems[0]
    for inline in (None, ["a", "b"], {"class_name": "__numpy__", "config": {"value": [1, 2], "dtype": "int64"}}):
        assert walk_config(_layer("IntegerLookup", "ok", vocabulary=inline)) == []


def test_a_tfsm_layer_loading_another_model_is_refused() -> None:
    layer = _layer("TFSMLayer", "outer_model", filepath="/tmp/elsewhere/saved_model")
    problems = walk_config(layer)
    assert problems and "loads another model" in problems[0] and "outside the archive" in problems[0]
