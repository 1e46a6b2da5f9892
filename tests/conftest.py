"""Shared fixtures: real models built with onnx.helper, and the CLI run as a real subprocess."""

from __future__ import annotations

import contextlib
import io
import os
import signal
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pytest

from mlfit.zoo import builders

REPO = Path(__file__).resolve().parents[1]


@dataclass
class Run:
    code: int
    stdout: str
    stderr: str

    @property
    def output(self) -> str:
        return self.stdout + self.stderr


def run_mlfit(*args: str | Path, env: dict[str, str] | None = None, timeout: float = 300,
              cwd: Path | None = None) -> Run:
    """Run ``python -m mlfit ARGS`` in a fresh process, as a user would."""
    full_env = {**os.environ, "COLUMNS": "200", **(env or {})}
    proc = subprocess.run([sys.executable, "-m", "mlfit", *map(str, args)], capture_output=True, text=True,
                          timeout=timeout, env=full_env, cwd=cwd, stdin=subprocess.DEVNULL)
    return Run(proc.returncode, proc.stdout, proc.stderr)


def run_cli(*args: str | Path, env: dict[str, str] | None = None, cwd: Path | None = None) -> Run:
    """Run mlfit's command in this process: the same parsing, errors, exit codes and output as
    ``python -m mlfit ARGS`` (mlfit.cli.app.main), without the ~0.3 CPU-s of a fresh interpreter's
    imports (issue 22: the suite is CPU-bound on start-ups). For what the process boundary is not
    the point of; tests of signals, start-up, isolation, memory bounds or a hostile model's code
    keep :func:`run_mlfit`. A measurement still runs in its own worker process."""
    from mlfit.cli.app import main

    saved_env, saved_cwd, saved_hook, saved_tmp = dict(os.environ), os.getcwd(), sys.unraisablehook, tempfile.tempdir
    saved_signals = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
    saved_mask = signal.pthread_sigmask(signal.SIG_BLOCK, ())  # inherited by every process started later
    out, err = io.StringIO(), io.StringIO()
    os.environ.update({"COLUMNS": "200", **(env or {})})
    tempfile.tempdir = None  # found again from this run's TMPDIR, as a new process would
    try:
        if cwd is not None:
            os.chdir(cwd)
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            main([str(a) for a in args])
        code = 0
    except SystemExit as exc:  # how main ends, as the program would with this code
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    finally:
        os.chdir(saved_cwd)
        os.environ.clear()
        os.environ.update(saved_env)
        tempfile.tempdir = saved_tmp
        sys.unraisablehook = saved_hook
        for signum, handler in saved_signals.items():
            signal.signal(signum, handler)
        signal.pthread_sigmask(signal.SIG_SETMASK, saved_mask)
    return Run(code, out.getvalue(), err.getvalue())


def assert_no_traceback(run: Run) -> None:
    assert "Traceback (most recent call last)" not in run.output, run.output

def reshape_by_input_model(path: Path) -> Path:
    """A Reshape whose target shape is an int64 input (`rows`): the MatMul's FLOPs downstream need its
    value (`--value rows=8`)."""
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    graph = helper.make_graph(
        [helper.make_node("Reshape", ["x", "rows"], ["r"]), helper.make_node("MatMul", ["r", "w"], ["y"])], "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 64]),
         helper.make_tensor_value_info("rows", TensorProto.INT64, [2])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
        [numpy_helper.from_array(np.ones((8, 16), np.float32), "w")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


@pytest.fixture(scope="session")
def models_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("models")


@pytest.fixture(scope="session")
def tiny_model(models_dir: Path) -> Path:
    """A single Add with fixed shapes: the smallest real model."""
    return builders.save(builders.tiny_add(), models_dir / "tiny_add.onnx")


@pytest.fixture(scope="session")
def cnn_model(models_dir: Path) -> Path:
    """The example MobileNetV2 (width 0.5, 160x160) with a symbolic batch dim."""
    return builders.save(builders.example_model(), models_dir / "mobilenet_v2_example.onnx")


@pytest.fixture(scope="session")
def small_cnn_model(models_dir: Path) -> Path:
    """A small MobileNetV2 (width 0.35, 64x64, fixed batch 1): quick to measure."""
    return builders.save(builders.mobilenet_v2(width=0.35, resolution=64, classes=10, batch=1),
                         models_dir / "mobilenet_v2_small.onnx")


@pytest.fixture(scope="session")
def transformer_model(models_dir: Path) -> Path:
    """Token ids (int64) with a symbolic sequence length: needs --dim seq=N and a --range."""
    return builders.save(builders.transformer_block(d_model=64, heads=2, ff=128, vocab=500),
                         models_dir / "transformer.onnx")


FAST = ("--min-time", "0.2", "--max-time", "2", "--warmup", "2", "--quiet")
