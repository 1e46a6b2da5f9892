"""The CI examples: the workflow files have the parts users rely on, and the script they call runs
end to end in a real git repository with a base branch, as a pull-request job would."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from conftest import REPO
from mlfit.result import Report
from mlfit.zoo import builders

CI = REPO / "examples" / "ci"
SCRIPT = CI / "mlfit-ci.sh"


def test_github_workflow_publishes_every_report_even_on_failure() -> None:
    workflow = yaml.safe_load((CI / "github-actions.yml").read_text())
    assert "pull_request" in workflow[True]  # YAML 1.1 reads the key `on` as True
    steps = workflow["jobs"]["model-fit"]["steps"]
    check = next(s for s in steps if "mlfit-ci.sh" in s.get("run", ""))
    assert check["env"]["BASE_REF"] == "${{ github.base_ref }}" and "$BASE_REF" in check["run"]
    upload = next(s for s in steps if s.get("uses", "").startswith("actions/upload-artifact"))
    assert upload["if"] == "always()" and upload["with"]["path"] == "reports/"
    assert "GITHUB_STEP_SUMMARY" in SCRIPT.read_text()


def test_gitlab_job_keeps_junit_and_artifacts_even_on_failure() -> None:
    job = yaml.safe_load((CI / "gitlab-ci.yml").read_text())["mlfit"]
    assert job["artifacts"]["when"] == "always"
    assert job["artifacts"]["reports"]["junit"] == "reports/mlfit.xml"
    assert "CI_MERGE_REQUEST_TARGET_BRANCH_NAME" in " ".join(job["script"])


def git(cwd: Path, *args: str) -> None:
    subprocess.run(["git", "-c", "user.name=ci", "-c", "user.email=ci@example.com", *args], cwd=cwd, check=True,
                   capture_output=True, timeout=60)


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A clone whose origin has `main` with a small model and `slower` with a 4x costlier one."""
    root = tmp_path_factory.mktemp("ci")
    origin, clone = root / "origin.git", root / "clone"
    git(root, "init", "--quiet", "--bare", "-b", "main", str(origin))
    git(root, "clone", "--quiet", str(origin), str(clone))
    (clone / "models").mkdir()
    builders.save(builders.mobilenet_v2(width=0.35, resolution=64, classes=10, batch=1), clone / "models/m.onnx")
    git(clone, "add", ".")
    git(clone, "commit", "--quiet", "-m", "model")
    git(clone, "push", "--quiet", "origin", "main")
    git(clone, "checkout", "--quiet", "-b", "slower")
    builders.save(builders.mobilenet_v2(width=0.35, resolution=128, classes=10, batch=1), clone / "models/m.onnx")
    git(clone, "commit", "--quiet", "-am", "bigger input")
    git(clone, "checkout", "--quiet", "main")
    bin_dir = root / "bin"
    bin_dir.mkdir()
    (bin_dir / "mlfit").write_text(f'#!/bin/sh\nexec "{sys.executable}" -m mlfit "$@"\n')
    (bin_dir / "mlfit").chmod(0o755)
    return clone


def run_ci(repo: Path, branch: str) -> tuple[subprocess.CompletedProcess[str], Path]:
    git(repo, "checkout", "--quiet", branch)
    reports = repo / f"reports-{branch}"
    env = {**os.environ, "PATH": f"{repo.parent / 'bin'}:{os.environ['PATH']}", "MLFIT_REPORTS": str(reports),
           "MLFIT_FLAGS": "--threads 1 --min-time 1 --max-time 3 --warmup 5", "COLUMNS": "160"}
    env.pop("GITHUB_STEP_SUMMARY", None)
    run = subprocess.run(["bash", str(SCRIPT), "models/m.onnx", "main", "weak-cpu"], cwd=repo, env=env,
                         capture_output=True, text=True, timeout=300)
    return run, reports


def test_ci_script_fails_the_job_on_a_slower_model(repo: Path) -> None:
    run, reports = run_ci(repo, "slower")
    assert run.returncode == 1, run.stdout + run.stderr
    result = Report.model_validate_json((reports / "mlfit.json").read_text())
    assert result.comparison is not None and result.comparison.regressed
    assert (reports / "baseline.json").is_file()
    assert "🔻 regression" in (reports / "mlfit.md").read_text()
    assert "<failure" in (reports / "mlfit.xml").read_text()
    assert "Change against the baseline" in (reports / "mlfit.html").read_text()
    assert "Traceback" not in run.stderr


def test_ci_script_passes_an_unchanged_model(repo: Path) -> None:
    run, reports = run_ci(repo, "main")
    data = json.loads((reports / "mlfit.json").read_text())
    assert data["comparison"] is not None and data["comparison"]["same_host"]
    regressions = [c for m in data["comparison"]["models"] for c in m["changes"] if c["status"] == "regression"]
    assert regressions == []
    verdict = Report.model_validate(data).verdict.value
    assert run.returncode == (1 if verdict == "FAIL" else 0), run.stdout + run.stderr
