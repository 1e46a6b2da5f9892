"""mlfit.lifeline.run_child: the one way a short child (converter, calibration, shape inference)
is started. Real processes: a timeout kills the whole group, output is kept to a bounded tail."""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import pytest

from mlfit.lifeline import ChildTimeout, run_child


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie awaiting its reaper is gone for our purpose
        return Path(f"/proc/{pid}/stat").read_text().split(") ")[1][0] != "Z"
    except OSError:
        return False


def test_a_timeout_kills_the_child_and_what_it_started(tmp_path: Path) -> None:
    pid_file = tmp_path / "grandchild"
    code = ("import subprocess, sys, time; "
            "p = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(600)']); "
            f"open({str(pid_file)!r}, 'w').write(str(p.pid)); time.sleep(600)")
    start = time.monotonic()
    with pytest.raises(ChildTimeout):
        run_child([sys.executable, "-c", code], 3.0)
    assert time.monotonic() - start < 60
    grandchild = int(pid_file.read_text())
    deadline = time.monotonic() + 10
    while _alive(grandchild) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not _alive(grandchild)


def test_output_is_kept_to_a_bounded_tail() -> None:
    code = ("import sys; sys.stderr.write('x' * (5 << 20) + '\\nthe last line\\n'); "
            "print('out'); sys.exit(3)")
    done = run_child([sys.executable, "-c", code], 60.0, limit=1 << 16)
    assert done.returncode == 3
    assert len(done.stderr) <= 1 << 16
    assert done.stderr.splitlines()[-1] == "the last line"
    assert done.stdout == "out\n"


@pytest.mark.parametrize("request_, answer", [
    ({"format": "onnx", "destination": "tflite"},  # an MlfitError: its message and hint
     {"error": "no conversion from onnx to tflite", "hint": None}),
    ({"format": "keras"},  # any other failure: its type and first line (a KeyError here)
     {"error": "KeyError: 'destination'"}),
])
def test_a_child_answers_its_request_or_the_reason_it_could_not(tmp_path: Path, request_: dict[str, str],
                                                                 answer: dict[str, object]) -> None:
    """mlfit.lifeline.answer_request, the main of the convert and --suggest children, run as the parent runs it."""
    request, out = tmp_path / "request.json", tmp_path / "answer.json"
    request.write_text(json.dumps(request_))
    done = run_child([sys.executable, "-m", "mlfit.convert", str(request), str(out)], 120.0)
    assert done.returncode == 0, done.stderr
    assert json.loads(out.read_text()) == answer
