"""Models from a real MLflow registry and results back to it (docs/integrations.md).

A local MLflow store (SQLite, no server) is filled by MLflow's own log_model: an ONNX model from
mlfit.zoo and a pickled scikit-learn model; MLflow's Model class writes the MLmodel files of an
unsupported flavour and of one naming a file outside its folder, and one MLmodel carries a Python
tag. `mlfit check` runs as a real subprocess against it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from conftest import assert_no_traceback, run_cli

mlflow = pytest.importorskip("mlflow", reason="MLflow is in the dev extra (mlfit[mlflow])")
pytest.importorskip("sqlalchemy", reason="a local SQLite MLflow store needs SQLAlchemy (mlfit[mlflow])")

from mlfit.errors import ConfigError  # noqa: E402
from mlfit.integrations.mlflow import key, parse_uri, redact  # noqa: E402
from mlfit.zoo import builders  # noqa: E402

FAST = ("--min-time", "0", "--max-time", "0.3", "--warmup", "0", "-q")


def _profile(folder: Path, name: str, size: str) -> Path:
    """A target judged by the model's size alone: a verdict that no busy machine can flip."""
    path = folder / f"{name}.yaml"
    path.write_text(f"schema_version: 1\nid: {name}\nhardware: weak-cpu-2vcpu\nruntimes: [onnxruntime]\n"
                    f"threads: 1\nbudgets:\n  model_size: {size}\n")
    return path


def _register_folder(client: Any, name: str, folder: Path) -> str:
    """Log a hand-made MLflow model folder as a run's artifact and register it (version 1)."""
    with mlflow.start_run() as run:
        mlflow.log_artifacts(str(folder), "model")
    client.create_registered_model(name)
    return str(client.create_model_version(name, f"runs:/{run.info.run_id}/model", run_id=run.info.run_id).version)


def _odd_model(tmp: Path, name: str, flavour: str, **conf: Any) -> Path:
    """An MLflow model folder whose MLmodel file (written by MLflow's own Model class) lists ``flavour``."""
    from mlflow.models import Model

    folder = tmp / name
    folder.mkdir()
    (folder / "model.bin").write_bytes(b"\0" * 16)
    model = Model()
    model.add_flavor(flavour, **conf)
    model.save(str(folder / "MLmodel"))
    return folder


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A SQLite MLflow store with registered versions: tiny (ONNX, alias 'champion'), pickled
    (sklearn, cloudpickle), torchy (an unsupported flavour), escape (an MLmodel naming a file outside
    its folder) and tagged (an MLmodel with a Python tag); and the run that logged tiny."""
    from sklearn.linear_model import LogisticRegression

    tmp = tmp_path_factory.mktemp("mlflow")
    uri = f"sqlite:///{tmp / 'mlflow.db'}"
    mlflow.set_tracking_uri(uri)
    client = mlflow.MlflowClient(tracking_uri=uri)
    experiment = client.create_experiment("gate", artifact_location=(tmp / "artifacts").as_uri())
    mlflow.set_experiment(experiment_id=experiment)
    # pip_requirements given: MLflow would otherwise infer them in a subprocess (seconds, nothing to test)
    with mlflow.start_run() as run:
        mlflow.onnx.log_model(builders.tiny_add(), name="model", registered_model_name="tiny",
                              pip_requirements=["onnxruntime"])
    client.set_registered_model_alias("tiny", "champion", "1")
    x = [[0.1 * i, 0.2, 0.3, 0.4] for i in range(20)]
    classifier = LogisticRegression().fit(x, [i % 2 for i in range(20)])
    with mlflow.start_run():
        mlflow.sklearn.log_model(classifier, name="model", registered_model_name="pickled",
                                 serialization_format="cloudpickle", pip_requirements=["scikit-learn"])
    _register_folder(client, "torchy", _odd_model(tmp, "torchy", "pytorch", model_data="model.bin"))
    _register_folder(client, "escape", _odd_model(tmp, "escape", "onnx", data="../../../../etc/hostname"))
    tagged = tmp / "tagged"  # an MLmodel that would run a command if read with an unsafe YAML loader
    tagged.mkdir()
    (tagged / "MLmodel").write_text("flavors:\n  onnx:\n    data: !!python/object/apply:os.system ['touch pwned']\n")
    _register_folder(client, "tagged", tagged)
    # Where the API test logs; made here so that its artifacts stay in tmp (MLflow's default is ./mlruns)
    client.create_experiment("api-checks", artifact_location=(tmp / "api-artifacts").as_uri())
    fits, tight = _profile(tmp, "roomy", "10 MB"), _profile(tmp, "tight", "10 B")
    return {"uri": uri, "env": {"MLFLOW_TRACKING_URI": uri, "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false"},
            "run_id": run.info.run_id, "fits": fits, "tight": tight, "tmp": tmp, "client": client}


def _error_lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.startswith("mlfit: error:")]


def test_a_registered_version_is_checked_and_carries_the_verdict_and_reports(store: dict[str, Any],
                                                                              tmp_path: Path) -> None:
    out = tmp_path / "r.json"
    run = run_cli("check", "models:/tiny/1", "-t", store["fits"], "--json", out, "--mlflow-log", *FAST,
                    env=store["env"])
    assert run.code == 0, run.output
    assert_no_traceback(run)
    result = json.loads(out.read_text())["results"][0]
    assert result["model"]["path"] == "models:/tiny/1"
    source = result["model"]["source"]
    assert source["registry"] == store["uri"] and source["flavour"] == "onnx" and source["file"] == "model.onnx"
    assert source["version"] == "1" and source["run_id"] == store["run_id"]

    client = store["client"]
    tags = client.get_model_version("tiny", "1").tags
    assert tags["mlfit.verdict"] == "PASS" and tags["mlfit.verdict.roomy"] == "PASS" and tags["mlfit.passed"] == "true"
    assert tags["mlfit.model_sha256"] == result["model"]["sha256"]
    logged = client.get_run(tags["mlfit.run_id"])
    assert logged.info.experiment_id == client.get_run(store["run_id"]).info.experiment_id
    assert logged.data.metrics["mlfit.roomy.model.size_bytes"] == result["model"]["size_bytes"]
    assert "mlfit.host.latency.p50_s" in logged.data.metrics
    files = sorted(a.path for a in client.list_artifacts(logged.info.run_id, "mlfit"))
    assert files == ["mlfit/mlfit-report.html", "mlfit/mlfit-report.json", "mlfit/mlfit-report.md"]
    # The report behind the version's mlfit.report tag names the version, as the one on disk does.
    html = Path(mlflow.artifacts.download_artifacts(tags["mlfit.report"], dst_path=str(tmp_path / "dl")))
    assert "models:/tiny/1" in html.read_text()


def test_an_alias_is_resolved_to_its_version_and_a_failure_is_logged(store: dict[str, Any], tmp_path: Path) -> None:
    out = tmp_path / "r.json"
    run = run_cli("check", "models:/tiny@champion", "-t", store["tight"], "--json", out, "--mlflow-log", *FAST,
                    env=store["env"])
    assert run.code == 1, run.output
    result = json.loads(out.read_text())["results"][0]
    assert result["model"]["path"] == "models:/tiny/1"
    source = result["model"]["source"]
    assert source["alias"] == "champion" and source["uri"] == "models:/tiny@champion"
    tags = store["client"].get_model_version("tiny", "1").tags
    assert tags["mlfit.verdict"] == "FAIL" and tags["mlfit.verdict.tight"] == "FAIL" and tags["mlfit.passed"] == "false"


def test_a_runs_uri_is_checked_and_logged_onto_its_run(store: dict[str, Any]) -> None:
    uri = f"runs:/{store['run_id']}/model"
    run = run_cli("check", uri, "-t", store["fits"], "--mlflow-log", *FAST, env=store["env"])
    assert run.code == 0, run.output
    logged = store["client"].get_run(store["run_id"])
    assert logged.data.tags["mlfit.verdict"] == "PASS" and "mlfit.roomy.model.size_bytes" in logged.data.metrics
    assert "mlfit/mlfit-report.json" in [a.path for a in store["client"].list_artifacts(store["run_id"], "mlfit")]


@pytest.mark.parametrize(("uri", "code", "words"), [
    ("models:/no-such-model/1", 2, "no such registered model version"),
    ("models:/tiny/99", 2, "no such registered model version"),
    ("models:/tiny@nobody", 2, "alias nobody not found"),
    ("runs:/0123456789abcdef/model", 2, "no such run"),
    ("models:/torchy/1", 2, "flavour pytorch is not supported; mlfit measures the onnx, keras, tensorflow, sklearn"),
    ("models:/escape/1", 3, "outside the model folder; refused"),
    ("models:/pickled/1", 3, "refusing to load a pickle"),
    ("models:/tagged/1", 2, "tag 'tag:yaml.org,2002:python/object/apply:os.system' is not allowed"),
])
def test_bad_registry_input_is_one_line(store: dict[str, Any], uri: str, code: int, words: str) -> None:
    run = run_cli("check", uri, "-t", store["fits"], *FAST, env=store["env"])
    assert run.code == code, run.output
    assert_no_traceback(run)
    lines = _error_lines(run.stderr)
    assert len(lines) == 1 and words in lines[0], run.stderr


def test_a_pickled_flavour_is_measured_with_trust_model_in_the_worker(store: dict[str, Any], tmp_path: Path) -> None:
    out = tmp_path / "r.json"
    run = run_cli("check", "models:/pickled/1", "-t", "weak-cpu", "--trust-model", "--json", out, *FAST,
                    env=store["env"])
    assert run.code in (0, 1), run.output  # measured; weak-cpu may lack scikit-learn (a verdict, not an error)
    result = json.loads(out.read_text())["results"][0]
    assert result["error"] is None and result["measurement"]["runtime"] == "sklearn"
    assert result["model"]["source"]["flavour"] == "sklearn" and result["model"]["source"]["file"] == "model.pkl"


def test_the_python_api_checks_a_uri_and_logs_the_result(store: dict[str, Any],
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    import mlfit
    from mlfit.integrations.mlflow import log_result
    from mlfit.options import MeasureOptions

    monkeypatch.setenv("MLFLOW_TRACKING_URI", store["uri"])
    result = mlfit.check("models:/tiny@champion", [str(store["fits"])],
                         options=MeasureOptions(min_time=0.0, max_time=0.3, warmup=0))
    assert result.passed and result.model.path == "models:/tiny/1"
    (run_id,) = log_result(result, experiment="api-checks")
    logged = store["client"].get_run(run_id)
    assert logged.data.tags["mlfit.verdict"] == "PASS"
    assert store["client"].get_experiment(logged.info.experiment_id).name == "api-checks"


def test_the_cli_starts_without_importing_mlflow() -> None:
    proc = subprocess.run([sys.executable, "-X", "importtime", "-m", "mlfit", "--help"], capture_output=True,
                          text=True, timeout=120, env={**os.environ, "COLUMNS": "200"})
    assert proc.returncode == 0
    imported = {line.rsplit("|", 1)[-1].strip().split(".")[0] for line in proc.stderr.splitlines() if "|" in line}
    assert "mlfit" in imported and not imported & {"mlflow", "airflow", "sqlalchemy"}


def test_uri_forms_and_redaction() -> None:
    assert parse_uri("models:/a/b/3").name == "a/b" and parse_uri("models:/a/b/3").version == "3"
    assert parse_uri("models:/det@prod").alias == "prod"
    assert parse_uri("runs:/abc123/sub/model").path == "sub/model"
    for bad in ("models:/", "models:/name", "runs:/", "runs:/../x"):
        with pytest.raises(ConfigError, match=r"not a registered model version|expected runs:/RUN_ID/PATH"):
            parse_uri(bad)
    assert redact("https://user:secret@host:5000/x?token=t") == "https://host:5000/x"
    assert redact("sqlite:////tmp/m.db") == "sqlite:////tmp/m.db"
    assert key("rpi 4/b..c") == "rpi_4_b_c"
