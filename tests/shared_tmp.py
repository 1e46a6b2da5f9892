"""One temp folder for the whole test run, shared by every pytest-xdist worker.

Each xdist worker has its own base temp folder (``.../pytest-N/popen-gwK``); their parent is the
run's. Expensive, read-only fixtures (TensorFlow models built in a subprocess) are built there once,
under a file lock, instead of once per worker.
"""

from __future__ import annotations

import fcntl
import json
import os
import subprocess
import sys
from pathlib import Path


def shared_folder(base: Path) -> Path:
    """The folder every worker of this run sees: ``base`` itself without xdist, its parent with it."""
    return base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base


def built_once(base: Path, name: str, builder: str, timeout: float) -> dict[str, Path]:
    """Run ``python BUILDER FOLDER`` once for the whole test run (TensorFlow stays out of pytest) and
    return its ``index.json`` by name. xdist workers share one build: the first takes the lock and
    builds, the others wait and reuse it."""
    folder = shared_folder(base) / name
    index = folder / "index.json"
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder.parent / f"{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not index.is_file():
            env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "CUDA_VISIBLE_DEVICES": ""}
            proc = subprocess.run([sys.executable, builder, str(folder)], capture_output=True, text=True, env=env,
                                  timeout=timeout)
            assert proc.returncode == 0, proc.stderr[-4000:]
    return {k: Path(v) for k, v in json.loads(index.read_text()).items()}
