"""The CLI and the worker end without the interpreter's teardown (mlfit.exits, issue 22): it took
0.3-0.5 s per process on the 2-core host, after the report or the answer was already written. What
a normal exit does that matters still happens: atexit handlers, flushed output, the exit code; and
code that runs mlfit's main from Python still gets a SystemExit it can catch."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

# Imported by the interpreter at start-up (PYTHONPATH): marks the atexit handlers and the teardown.
_SITECUSTOMIZE = """
import atexit, os
_fd = os.open(os.environ["MLFIT_TEST_MARKS"], os.O_WRONLY | os.O_APPEND)
class _Teardown:
    def __del__(self, write=os.write, fd=_fd):  # runs only when the interpreter frees this module
        write(fd, b"teardown\\n")
_kept = _Teardown()
atexit.register(lambda: os.write(_fd, b"atexit\\n"))
"""


def _run(tmp_path: Path, *args: str) -> tuple[subprocess.CompletedProcess[str], list[str]]:
    site = tmp_path / "site"
    site.mkdir(exist_ok=True)
    (site / "sitecustomize.py").write_text(_SITECUSTOMIZE)
    marks = tmp_path / "marks"
    marks.write_text("")
    env = {**os.environ, "MLFIT_TEST_MARKS": str(marks),
           "PYTHONPATH": os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")])}
    run = subprocess.run([sys.executable, *args], capture_output=True, text=True, timeout=120, cwd=REPO, env=env,
                         stdin=subprocess.DEVNULL)
    return run, marks.read_text().split()


def test_the_cli_exits_without_teardown(tmp_path: Path) -> None:
    run, marks = _run(tmp_path, "-m", "mlfit", "targets")
    assert run.returncode == 0 and "edge" in run.stdout  # output flushed
    assert marks == ["atexit"]  # was: ["atexit", "teardown"]
    run, marks = _run(tmp_path, "-m", "mlfit", "check", "/nonexistent/model.onnx", "--target", "edge")
    assert run.returncode == 2 and "does not exist" in run.stderr and marks == ["atexit"]  # the exit code kept


def test_the_worker_exits_without_teardown(tmp_path: Path) -> None:
    run, marks = _run(tmp_path, "-m", "mlfit.measure.worker", "--wait")  # a spare whose parent closed stdin
    assert run.returncode == 0 and marks == ["atexit"]


def test_main_run_from_python_still_raises_systemexit(tmp_path: Path) -> None:
    code = "import sys\nfrom mlfit.cli.entry import main\nsys.argv = ['mlfit', '--version']\n" \
           "try:\n    main()\nexcept SystemExit as exc:\n    print('caught', exc.code)\n"
    run, marks = _run(tmp_path, "-c", code)
    assert run.returncode == 0 and "caught 0" in run.stdout and marks == ["atexit", "teardown"]
