"""A deployment gate for Airflow: :class:`MlfitCheckOperator` checks a model against targets, pushes
a JSON summary to XCom and fails the task when the model does not fit, so the DAG's promote step
(downstream, default trigger rule) runs only for a model that fits. Example: examples/airflow/.

    check = MlfitCheckOperator(task_id="check_fit", model="models:/detector@candidate",
                               targets=["edge"], strict=True)
    check >> promote

The same gate as a TaskFlow task, over the Python API: ``@task def gate(): return check_gate(...)``.

Needs mlfit with its ``airflow`` extra in Airflow's environment (and ``mlflow`` for ``models:/``
URIs). The model is measured by mlfit's own worker subprocess, as on the command line.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

try:  # Airflow 3 (the Task SDK), then Airflow 2
    from airflow.sdk import BaseOperator
    from airflow.sdk.exceptions import AirflowException, AirflowFailException
except ImportError:  # pragma: no cover - depends on the Airflow installed
    try:
        from airflow.exceptions import AirflowException, AirflowFailException
        from airflow.models import BaseOperator
    except ImportError as exc:
        from mlfit.install import install_hint

        raise ImportError(f"mlfit.integrations.airflow needs Apache Airflow: {install_hint('airflow')}") from exc

from mlfit.api import CheckResult, check
from mlfit.errors import MlfitError, printable
from mlfit.options import MeasureOptions
from mlfit.result import RunResult, Verdict

XCOM_KEY = "mlfit"


def summary(result: RunResult, strict: bool = False) -> dict[str, Any]:
    """The JSON-able summary pushed to XCom: the verdict, the gate's answer (``passed``: what
    ``mlfit check`` would exit 0 for, ``--strict`` as given), each target's checks, the error."""
    targets = {
        t.target: {"verdict": t.verdict.value,
                   "checks": [{"metric": c.metric, "verdict": c.verdict.value, "value": c.value, "limit": c.limit,
                               "unit": c.unit, "provenance": c.provenance.value, "reason": c.reason}
                              for c in t.checks]}
        for t in result.targets}
    error = None if result.error is None else {"message": result.error.message, "hint": result.error.hint,
                                               "exit_code": result.error.exit_code}
    source = None if result.model.source is None else result.model.source.model_dump()
    code = result.exit_code(strict)
    return {"model": result.model.path, "sha256": result.model.sha256, "source": source,
            "verdict": result.verdict.value, "passed": code == 0, "exit_code": code, "strict": strict,
            "targets": targets, "error": error}


def _why(result: RunResult) -> str:
    if result.error is not None:
        hint = f" ({result.error.hint})" if result.error.hint else ""
        return printable(f"{result.error.message}{hint}")
    failing = [f"{t.target} {c.metric} {c.verdict.value}" + (f": {c.reason}" if c.reason else "")
               for t in result.targets for c in t.checks if c.verdict is not Verdict.PASS]
    return printable("; ".join(failing) or result.verdict.value)


def gate(result: RunResult, strict: bool = False) -> None:
    """Raise when the model does not fit: a FAIL or an error fails the task at once
    (AirflowFailException: a retry would measure the same file); INCONCLUSIVE under ``strict``
    raises AirflowException, which the task's retries may try again (the band may narrow)."""
    code = result.exit_code(strict)
    if code == 0:
        return
    message = f"mlfit: {result.model.path} is {result.verdict.value} (exit {code}): {_why(result)}"
    if result.error is None and result.verdict is Verdict.INCONCLUSIVE:
        raise AirflowException(message)
    raise AirflowFailException(message)


def _run(model: str | Path, targets: Sequence[str], strict: bool, report_dir: str | Path | None,
         mlflow_log: bool, options: MeasureOptions | None,
         inputs: Mapping[str, Any]) -> tuple[RunResult, dict[str, Any]]:
    """Check, write the reports, log to MLflow: the result and its summary."""
    try:
        result: CheckResult = check(model, targets, options=options, **inputs)
    except MlfitError as exc:  # a bad argument (an unknown target, a missing file): mlfit's one line
        raise AirflowFailException(f"mlfit: {exc.one_line()}") from None
    out = summary(result, strict)
    if report_dir is not None:
        folder = Path(report_dir)
        folder.mkdir(parents=True, exist_ok=True)
        for fmt, name in (("html", "mlfit-report.html"), ("json", "mlfit-report.json"),
                          ("markdown", "mlfit-report.md")):
            result.write(fmt, folder / name)
        out["report_dir"] = str(folder)
    if mlflow_log:
        from mlfit.integrations.mlflow import log_result

        try:
            out["mlflow_run_ids"] = log_result(result, strict=strict)
        except MlfitError as exc:
            raise AirflowFailException(f"mlfit: {exc.one_line()}") from None
    return result, out


def check_gate(model: str | Path, targets: Sequence[str] = ("edge",), *, strict: bool = False,
               report_dir: str | Path | None = None, mlflow_log: bool = False,
               options: MeasureOptions | None = None, **inputs: Any) -> dict[str, Any]:
    """The gate as a plain function, for a TaskFlow ``@task``: check ``model`` (a path or an MLflow
    URI) against ``targets``, write the reports to ``report_dir`` (HTML, JSON, Markdown) and log to
    MLflow when asked; return the JSON-able :func:`summary` (the task's XCom), or raise as
    :func:`gate` says. ``inputs`` are :func:`mlfit.check`'s (dims, shapes, values, ranges, data, batch)."""
    result, out = _run(model, targets, strict, report_dir, mlflow_log, options, inputs)
    gate(result, strict)
    return out


class MlfitCheckOperator(BaseOperator):
    """Check a model against deployment targets; fail the task when it does not fit.

    :param model: a model file, SavedModel folder, or MLflow URI (templated)
    :param targets: built-in target names or profile YAML paths (templated)
    :param strict: also fail on INCONCLUSIVE (as ``mlfit check --strict``)
    :param report_dir: write HTML, JSON and Markdown reports there (templated)
    :param mlflow_log: log the verdict, figures and reports to MLflow (``--mlflow-log``)
    :param dims: fill symbolic dims, e.g. ``{"batch": 1}``; ``shapes``, ``values``, ``ranges``, ``data``
        and ``batch`` as for :func:`mlfit.check`
    :param measure: MeasureOptions fields, e.g. ``{"min_time": 2.0, "trust_model": False}``

    The summary (see :func:`summary`) is the task's return value (XCom ``return_value``) and is also
    pushed under the key ``mlfit`` before a failing task raises, for a notification downstream.
    """

    template_fields: Sequence[str] = ("model", "targets", "report_dir")
    ui_color = "#e8f4ea"

    def __init__(self, *, model: str, targets: Sequence[str] = ("edge",), strict: bool = False,
                 report_dir: str | None = None, mlflow_log: bool = False, dims: Mapping[str, int] | None = None,
                 shapes: Mapping[str, Sequence[int]] | None = None, values: Mapping[str, float] | None = None,
                 ranges: Mapping[str, tuple[float, float]] | None = None, data: str | None = None,
                 batch: int | None = None, measure: Mapping[str, Any] | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.model = model
        self.targets = list(targets)
        self.strict = strict
        self.report_dir = report_dir
        self.mlflow_log = mlflow_log
        self.inputs = {k: v for k, v in {"dims": dims, "shapes": shapes, "values": values, "ranges": ranges,
                                         "data": data, "batch": batch}.items() if v is not None}
        self.measure = dict(measure or {})

    def execute(self, context: Any) -> dict[str, Any]:
        options = MeasureOptions(**self.measure) if self.measure else None
        result, out = _run(self.model, self.targets, self.strict, self.report_dir, self.mlflow_log, options,
                           self.inputs)
        context["ti"].xcom_push(key=XCOM_KEY, value=out)
        self.log.info("mlfit: %s is %s (passed=%s)", out["model"], out["verdict"], out["passed"])
        gate(result, self.strict)
        return out
