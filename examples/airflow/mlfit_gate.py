"""A deployment gate in Airflow: the model is promoted only when mlfit says it fits the target.

    check_fit (MlfitCheckOperator)  ->  promote
              \\->  record (runs whatever happened)

check_fit measures the model and checks it against the target; on FAIL (or INCONCLUSIVE: strict)
the task fails, so promote never runs (upstream_failed). record writes every verdict, pass or
fail, from the summary check_fit pushed to XCom under the key "mlfit".

Params (trigger with a conf, or edit the defaults):
  model        a model file, or an MLflow URI such as models:/detector@candidate (with mlflow installed)
  target       a built-in target name or a profile YAML path
  release_dir  where promote copies the model and record appends verdicts.jsonl

Run it with Airflow's own test runner, no scheduler (the folder must be Airflow's DAGs folder):
  AIRFLOW__CORE__DAGS_FOLDER=examples/airflow python examples/airflow/mlfit_gate.py '{"target": "edge"}'
It prints one JSON line: the run's state and each task's state. docs/integrations.md has more.
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path
from typing import Any

import pendulum

try:  # Airflow 3
    from airflow.sdk import DAG, Param, task
except ImportError:  # Airflow 2
    from airflow import DAG
    from airflow.decorators import task
    from airflow.models.param import Param

from mlfit.integrations.airflow import XCOM_KEY, MlfitCheckOperator

with DAG(
    dag_id="mlfit_gate",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    params={
        "model": Param("examples/models/mobilenet_v2_example.onnx", type="string"),
        "target": Param("edge", type="string"),
        "release_dir": Param("releases", type="string"),
    },
    tags=["mlfit"],
) as dag:
    check_fit = MlfitCheckOperator(
        task_id="check_fit",
        model="{{ params.model }}",
        targets=["{{ params.target }}"],
        strict=True,  # INCONCLUSIVE does not promote either
        report_dir="{{ params.release_dir }}/reports/{{ run_id | replace(':', '-') }}",
    )

    @task
    def promote(summary: dict[str, Any], params: dict[str, Any] | None = None) -> str:
        """Runs only when check_fit passed. A registered MLflow version gets the 'production' alias;
        a file is copied into the release folder with its verdict beside it."""
        assert params is not None
        source = summary.get("source") or {}
        if source.get("name"):
            import mlflow

            mlflow.MlflowClient().set_registered_model_alias(source["name"], "production", source["version"])
            return f"models:/{source['name']}@production"
        release = Path(params["release_dir"])
        release.mkdir(parents=True, exist_ok=True)
        model = Path(params["model"])
        copy = release / model.name
        (shutil.copytree if model.is_dir() else shutil.copy2)(model, copy)
        (release / f"{model.name}.mlfit.json").write_text(json.dumps(summary, indent=2))
        return str(copy)

    @task(trigger_rule="all_done")
    def record(params: dict[str, Any] | None = None, ti: Any = None) -> None:
        """Every verdict, pass or fail: the summary check_fit pushed before it failed or returned."""
        assert params is not None and ti is not None
        summary = ti.xcom_pull(task_ids="check_fit", key=XCOM_KEY)
        if summary is None:  # check_fit could not even run the check (a bad argument): its log says why
            return
        release = Path(params["release_dir"])
        release.mkdir(parents=True, exist_ok=True)
        with (release / "verdicts.jsonl").open("a") as out:
            out.write(json.dumps({k: summary[k] for k in ("model", "verdict", "passed", "exit_code")}) + "\n")

    promote(check_fit.output)
    check_fit >> record()


if __name__ == "__main__":
    run = dag.test(run_conf=json.loads(sys.argv[1]) if len(sys.argv) > 1 else None)
    states = {ti.task_id: getattr(ti.state, "value", ti.state) for ti in run.get_task_instances()}
    print(json.dumps({"state": getattr(run.state, "value", run.state), "tasks": states}))
