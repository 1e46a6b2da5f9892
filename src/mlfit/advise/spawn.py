"""Start the ``--suggest`` child (:mod:`mlfit.advise.child`) and read its answer; the parent side,
which never imports a runtime.

The child leads its own process group (one ``killpg`` stops it and whatever a converter
started), dies with mlfit (:mod:`mlfit.lifeline`), writes its temporary files in the run's scratch
folder, and its answer is read with a size bound. A child that fails, hangs past its time or dies
gives an error message, never an exception the search does not expect: a variant that cannot be
built is listed with its reason.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

from mlfit.errors import ModelError
from mlfit.lifeline import die_with_parent
from mlfit.safeio import loads_bounded, read_bounded


def _stop(proc: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


def run_child(request: dict[str, Any], folder: Path, name: str, timeout: float) -> dict[str, Any]:
    """Run one child request in ``folder``; its answer, or ModelError with the reason it gave none."""
    request_path, answer_path, log_path = (folder / f"{name}.request.json", folder / f"{name}.answer.json",
                                           folder / f"{name}.log")
    request_path.write_text(json.dumps(request))
    env = {**os.environ, "TMPDIR": str(folder), "PYTHONUNBUFFERED": "1"}
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    with log_path.open("wb") as log:
        proc = subprocess.Popen([sys.executable, "-m", "mlfit.advise.child", str(request_path), str(answer_path)],
                                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                start_new_session=True, env=env, preexec_fn=die_with_parent())
    try:
        code = proc.wait(timeout=max(1.0, timeout))
    except subprocess.TimeoutExpired:
        _stop(proc)
        raise ModelError(f"did not finish within {timeout:.0f} s", "raise --suggest-time") from None
    except BaseException:  # Ctrl-C: the child goes with the search
        _stop(proc)
        raise
    if not answer_path.is_file():
        tail = [line for line in log_path.read_bytes()[-2000:].decode("utf-8", "replace").splitlines() if line.strip()]
        died = f"killed by signal {-code}" if code < 0 else f"exit code {code}"
        raise ModelError(f"the child process gave no answer ({died}){': ' + tail[-1][:200] if tail else ''}")
    answer = loads_bounded(read_bounded(answer_path, "report", "the child's answer"), answer_path,
                           "the child's answer")
    if not isinstance(answer, dict):
        raise ModelError("the child's answer is not a JSON object")
    if "error" in answer:
        raise ModelError(str(answer["error"]), answer.get("hint"))
    return answer
