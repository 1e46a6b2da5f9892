"""The HTML report in a real headless browser (Debian's chromium; `make test` installs it).

It must load without console errors (there is no script, and nothing may be fetched) and its
screenshot must show the page. The screenshot is kept for a person to look at.
"""

from __future__ import annotations

import os
import re
import shutil
import struct
import subprocess
from pathlib import Path

import pytest

from conftest import FAST, run_mlfit
from mlfit.compare import compare_reports, with_comparison
from mlfit.report.html import render_html
from reportdata import RICH_ANALYSIS, RICH_EXTRA, failed_result, report, run_result

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync", "--hide-scrollbars",
         "--enable-logging=stderr", "--v=0"]
# What chromium logs for a page's console messages, uncaught errors and failed fetches.
CONSOLE = re.compile(r":CONSOLE[:(]|Uncaught|Failed to load resource|net::ERR_", re.I)


def chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found:
        return found
    if os.geteuid() == 0:  # CI runs as root: `make test` installs chromium, so missing is a failure
        pytest.fail("chromium is not installed; run `make test` (it installs Debian's chromium via apt-get)")
    pytest.skip("chromium is not installed and installing it needs root: apt-get install chromium")


def browse(page: Path, tmp_path: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    profile = tmp_path / f"profile-{len(list(tmp_path.iterdir()))}"
    profile.mkdir()
    return subprocess.run([chromium(), *FLAGS, f"--user-data-dir={profile}", *extra, page.as_uri()],
                          capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)


def console_errors(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if CONSOLE.search(line)]


def png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    width, height = struct.unpack(">II", data[16:24])
    return width, height


def test_console_scan_catches_errors(tmp_path: Path) -> None:
    """The detector itself: a page with a broken script must be caught, or the real test proves nothing."""
    bad = tmp_path / "bad.html"
    bad.write_text('<html><body><p>x</p><script>console.error("boom"); notDefined();</script></body></html>')
    errors = console_errors(browse(bad, tmp_path, "--dump-dom").stderr)
    assert any("boom" in e for e in errors) and any("notDefined" in e for e in errors)


def rich_page(tmp_path: Path) -> Path:
    base = report(run_result(0.004), failed_result())
    new = report(run_result(0.006, seed=4, extra=RICH_EXTRA, analysis=RICH_ANALYSIS), failed_result())
    page = tmp_path / "rich.html"
    page.write_text(render_html(with_comparison(new, compare_reports(base, new, "base.json"))))
    return page


@pytest.fixture(scope="module")
def real_page(tmp_path_factory: pytest.TempPathFactory, small_cnn_model: Path) -> Path:
    out = tmp_path_factory.mktemp("browser")
    page = out / "report.html"
    run = run_mlfit("check", small_cnn_model, "--target", "edge", "--target", "gpu-server", *FAST,
                    "--output", f"html={page}")
    assert run.code in (0, 1), run.output
    return page


@pytest.mark.parametrize("which", ["real", "rich"])
def test_report_loads_without_console_errors(which: str, real_page: Path, tmp_path: Path) -> None:
    page = real_page if which == "real" else rich_page(tmp_path)
    result = browse(page, tmp_path, "--dump-dom")
    assert result.returncode == 0, result.stderr[-2000:]
    assert console_errors(result.stderr) == []
    dom = result.stdout
    assert dom.count("<svg") >= 4 and "<table" in dom and "Verdicts per target" in dom
    assert "Latency histogram" in dom and "Latency CDF" in dom and "Peak resident memory per phase" in dom
    if which == "real":  # a real onnxruntime run: per-op costs from its node profile, latency per target
        assert "Per-op costs" in dom and "beside each target" in dom and "Notes for edge" in dom


@pytest.mark.parametrize("which", ["real", "rich"])
def test_report_screenshot_shows_the_page(which: str, real_page: Path, tmp_path: Path) -> None:
    page = real_page if which == "real" else rich_page(tmp_path)
    shot = page.with_suffix(f".{which}.png")
    result = browse(page, tmp_path, "--window-size=1280,3000", f"--screenshot={shot}")
    assert result.returncode == 0, result.stderr[-2000:]
    assert console_errors(result.stderr) == []
    assert png_size(shot) == (1280, 3000)
    # A blank or unstyled page compresses to a few kB; tables, badges and charts do not.
    assert shot.stat().st_size > 60_000, shot.stat().st_size
    keep = os.environ.get("MLFIT_SCREENSHOT_DIR")
    if keep:
        shutil.copy(shot, Path(keep) / shot.name)
