"""One temp folder for the whole test run, shared by every pytest-xdist worker.

Each xdist worker has its own base temp folder (``.../pytest-N/popen-gwK``); their parent is the
run's. Expensive, read-only fixtures (TensorFlow models built in a subprocess) are built there once,
under a file lock, instead of once per worker.
"""

from __future__ import annotations

import os
from pathlib import Path


def shared_folder(base: Path) -> Path:
    """The folder every worker of this run sees: ``base`` itself without xdist, its parent with it."""
    return base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base
