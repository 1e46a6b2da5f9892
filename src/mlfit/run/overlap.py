"""The static analysis beside the worker's start-up (issue 22).

The analysis of an ONNX graph needs onnx's shape inference, and ``import onnx`` alone costs 0.6 s
of CPU (ml_dtypes); the worker needs about as long to start, import its runtime, load the model
and warm up. Nothing the worker is asked to do depends on the analysis when no target is
projected by the roofline alone (GPU targets), no container is emulated, no target is this host
and the default per-phase deadlines hold, so there the analysis runs in a thread of the parent
while the worker starts.

It must not disturb the timed loop: the worker is told a file to wait for (``hold_path``). It
warms up as usual, then waits, idle, until the parent creates that file (the analysis finished,
or failed), warms up again briefly and only then starts timing. On a 2-core host the parent's
analysis and the worker's start-up share the cores; the timed loop never shares them with it.
An analysis that fails after the measurement gives the same error result it gave before it.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable
from concurrent.futures import Future
from pathlib import Path
from typing import Any

HOLD_FILE = "static-analysis.done"

# What the parent imports once the worker has answered (the projection's device fits, the terminal
# and JSON reports, rich's table): imported beside the worker's start-up instead, under the same hold,
# so the time between the worker's answer and the verdict is the parent's work, not its imports.
AFTER_THE_WORKER = ("mlfit.analysis._devicefit", "mlfit.truth.fit", "mlfit.report.terminal", "mlfit.report.json",
                    "mlfit.report.suggestions", "mlfit.report.compact", "rich.table", "mlfit.exits")


class PendingStatic:
    """The static analysis, running in a daemon thread (Ctrl-C never waits for it)."""

    def __init__(self, compute: Callable[[], dict[str, Any] | None]) -> None:
        self._future: Future[dict[str, Any] | None] = Future()
        self._future.set_running_or_notify_cancel()
        threading.Thread(target=self._run, args=(compute,), name="mlfit-static-analysis", daemon=True).start()

    def _run(self, compute: Callable[[], dict[str, Any] | None]) -> None:
        try:
            facts = compute()
        except BaseException as exc:  # handed to whoever waits for the result, as if raised there
            self._future.set_exception(exc)
            return
        import importlib

        from mlfit.result import DEFERRED_MODELS, build_validators

        for name in AFTER_THE_WORKER:
            with contextlib.suppress(ImportError):
                importlib.import_module(name)
        build_validators(*DEFERRED_MODELS)  # the result's models, read and built once the worker answers
        self._future.set_result(facts)

    def done(self) -> bool:
        return self._future.done()

    def result(self) -> dict[str, Any] | None:
        """The facts, or the analysis' own exception (StaticTooLarge, ModelError, ...)."""
        return self._future.result()

    def release_when_done(self, path: Path) -> None:
        """Create ``path`` once the analysis ends (at once if it has): the worker waits for it."""

        def touch(_: object) -> None:
            with contextlib.suppress(OSError):  # the run ended and its scratch folder went first
                path.touch()

        self._future.add_done_callback(touch)
