"""Where ML teams already work: MLflow and Airflow (docs/integrations.md).

- :mod:`mlfit.integrations.mlflow`: ``models:/`` and ``runs:/`` URIs resolved through MLflow's own
  client into a private folder and checked like any file; verdicts, figures and reports logged back.
- :mod:`mlfit.integrations.airflow`: a deployment gate operator for a DAG.

Each imports its library only when used (the extras ``mlfit[mlflow]`` and ``mlfit[airflow]``); this
package imports nothing, so ``mlfit --help`` stays fast.
"""

from __future__ import annotations

from pathlib import PurePath

# MLflow's own URI schemes for a registered model version and a run's artifact. A local path that
# happens to start with one of them is written ./models:/... to be read as a path.
MODEL_URI_SCHEMES = ("models:/", "runs:/")


def is_model_uri(model: object) -> bool:
    """True for an MLflow ``models:/`` or ``runs:/`` URI (a str, or a Path the CLI made of one)."""
    text = model.as_posix() if isinstance(model, PurePath) else str(model)
    return text.startswith(MODEL_URI_SCHEMES)
