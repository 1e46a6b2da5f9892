"""The built-in catalog ships inside the wheel: an installed mlfit lists targets from any folder."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

from conftest import REPO


def test_wheel_ships_the_catalog_and_runs_elsewhere(tmp_path: Path) -> None:
    wheel_dir = tmp_path / "dist"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "-w", str(wheel_dir), str(REPO)],
                   check=True, timeout=300, capture_output=True)
    wheel = next(wheel_dir.glob("mlfit-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    assert "mlfit/_catalog/profiles/edge.yaml" in names
    assert "mlfit/_catalog/hardware/rpi4-4gb.yaml" in names
    assert "mlfit/report/templates/report.html" in names  # the HTML report template
    site = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "--quiet", "--target", str(site), str(wheel)],
                   check=True, timeout=300, capture_output=True)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {**os.environ, "PYTHONPATH": str(site), "COLUMNS": "200"}
    out = subprocess.run([sys.executable, "-m", "mlfit", "targets"], cwd=elsewhere, env=env, capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert "gpu-server" in out.stdout and "edge" in out.stdout
    where = subprocess.run([sys.executable, "-c", "import mlfit; print(mlfit.__file__)"], cwd=elsewhere, env=env,
                           capture_output=True, text=True, timeout=60)
    assert where.stdout.startswith(str(site))
