"""Shared fixtures: real models built with onnx.helper, and the CLI run as a real subprocess."""

from __future__ import annotations

import os
import subprocess
import sys
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


def assert_no_traceback(run: Run) -> None:
    assert "Traceback (most recent call last)" not in run.output, run.output


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
